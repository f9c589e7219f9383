#!/usr/bin/env python3
"""Checks that a safetensors file (kiln's save / save_weights output) reads in Python.

    scripts/check-safetensors.py FILE [FILE ...]

Loads each file with the `safetensors` package (safetensors.torch.load_file) when it and
torch are installed, else with the small spec parser below (8-byte little-endian header
length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}},
data_offsets relative to the first byte after the header), and prints the metadata and
each tensor's name, dtype and shape. With torch installed, every tensor is also rebuilt
with torch.frombuffer from the parser's bytes and compared bit for bit with what the
loader gave. Exits 1 when a file does not parse or a comparison fails.
"""
import argparse
import json
import struct
import sys

# Spec dtype -> (bytes per element, torch dtype name).
DTYPES = {"F64": (8, "float64"), "F32": (4, "float32"), "F16": (2, "float16"), "BF16": (2, "bfloat16"),
          "I64": (8, "int64"), "I32": (4, "int32"), "I16": (2, "int16"), "I8": (1, "int8"),
          "U8": (1, "uint8"), "BOOL": (1, "bool")}


def parse(path):
    """The spec, by hand: returns (metadata, {name: (dtype, shape, raw bytes)}) in file order."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes, too short for the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    data = blob[8 + n:]
    tensors, end = {}, 0
    for name, e in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        begin, stop = e["data_offsets"]
        count = 1
        for d in e["shape"]:
            count *= d
        if begin != end or stop - begin != count * DTYPES[e["dtype"]][0]:
            raise ValueError(f"{path}: tensor {name!r}: data_offsets {e['data_offsets']} do not follow "
                             f"the previous tensor (ends at {end}) or do not fit {e['dtype']} {e['shape']}")
        tensors[name], end = (e["dtype"], list(e["shape"]), data[begin:stop]), stop
    if end != len(data):
        raise ValueError(f"{path}: the tensors cover {end} of {len(data)} data bytes")
    order = [k for k in header]  # the header's order, as the file lists them
    return metadata, {k: tensors[k] for k in order}


def load_with_safetensors(path):
    """safetensors' own loader, or None when it (or torch) is not installed."""
    try:
        import safetensors
        from safetensors.torch import load_file
    except ImportError:
        return None, None
    return load_file(path), f"safetensors {safetensors.__version__} (safetensors.torch.load_file)"


def same_bits(torch, a, b):
    """Bit-for-bit equality (NaNs included): floats compared as integers of their width."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    as_int = {torch.float64: torch.int64, torch.float32: torch.int32,
              torch.float16: torch.int16, torch.bfloat16: torch.int16}
    if a.dtype in as_int:
        a, b = a.contiguous().view(as_int[a.dtype]), b.contiguous().view(as_int[b.dtype])
    return bool(torch.equal(a, b))


def check(path):
    metadata, parsed = parse(path)
    loaded, loader = load_with_safetensors(path)
    print(f"{path}: {len(parsed)} tensors; read by {loader or 'the spec parser in this script'}")
    for k, v in metadata.items():
        shown = v if len(v) <= 60 else f"{v[:57]}... ({len(v)} chars, valid JSON: {is_json(v)})"
        print(f"  metadata {k} = {shown}")
    width = max([len(k) for k in parsed] + [4])
    for name, (dtype, shape, _) in parsed.items():
        got = f"  (torch: {str(loaded[name].dtype).replace('torch.', '')} {list(loaded[name].shape)})" if loaded else ""
        print(f"  {name:<{width}}  {dtype:<4}  {shape}{got}")
    if loaded is not None and set(loaded) != set(parsed):
        print(f"  MISMATCH: the loader's names differ: {sorted(set(loaded) ^ set(parsed))}")
        return False
    try:
        import torch
    except ImportError:
        print("  (torch not installed: no torch.frombuffer comparison)")
        return True
    ok = True
    for name, (dtype, shape, raw) in parsed.items():
        tdtype = getattr(torch, DTYPES[dtype][1])
        rebuilt = (torch.frombuffer(bytearray(raw), dtype=tdtype).reshape(shape) if raw
                   else torch.empty(shape, dtype=tdtype))
        reference = loaded[name] if loaded is not None else rebuilt
        if not same_bits(torch, rebuilt, reference):
            print(f"  MISMATCH: {name}: torch.frombuffer differs from the loader's tensor")
            ok = False
    against = "safetensors.torch.load_file" if loaded is not None else "itself (no safetensors package)"
    print(f"  torch {torch.__version__}: torch.frombuffer of every tensor {'matches' if ok else 'DIFFERS from'} "
          f"{against} bit for bit")
    return ok


def is_json(text):
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", metavar="FILE")
    ok = True
    for path in ap.parse_args().files:
        try:
            ok = check(path) and ok
        except Exception as e:  # the spec parser's or the safetensors package's error
            print(f"{path}: FAILED: {e}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
