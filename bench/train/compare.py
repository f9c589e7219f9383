#!/usr/bin/env python3
"""Seconds per epoch of kiln's samples against the same models in PyTorch (and
TensorFlow/Keras when installed), same data and batch sizes, runs alternated so machine
load hits both alike. Prints a table with kiln's ratio (peer seconds / kiln seconds: above
1 means kiln is faster) and writes JSON with --out.

  bench/train/compare.py --build build/release --reps 3
Goals (reported, not asserted): seed_mlp >= 3x PyTorch on cpu; mnist_cnn >= 1x on cpu;
on an H100 both >= 1.5x PyTorch eager."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line from {' '.join(cmd)}:\n{out[-2000:]}")


def kiln_run(build, model, epochs, device, seed_data, threads):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [f"{build}/samples/{model}", "--epochs", str(epochs), "--verbose", "0",
               "--device", device, "--json-out", f.name]
        if model == "seed_mlp":
            cmd += ["--export-data", seed_data]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        with open(f.name) as fh:
            return json.load(fh)


def torch_run(model, epochs, seed_data, threads):
    cmd = [sys.executable, f"{HERE}/torch_reference.py", model, "--epochs", str(epochs),
           "--threads", str(threads), "--data", f"{ROOT}/samples/data/mnist"]
    if model == "seed_mlp":
        cmd += ["--seed-data", seed_data]
    return run_json(cmd)


def keras_python():
    """A Python that imports TensorFlow (it may not be the one running this script, which
    needs torch): $KILN_KERAS_PYTHON, else python3 on PATH, else none."""
    for py in [os.environ.get("KILN_KERAS_PYTHON"), "python3", sys.executable]:
        if py and subprocess.run([py, "-c", "import tensorflow"], capture_output=True).returncode == 0:
            return py
    return None


def keras_run(python, model, epochs, seed_data, threads):
    cmd = [python, f"{HERE}/keras_reference.py", model, "--epochs", str(epochs),
           "--threads", str(threads), "--data", f"{ROOT}/samples/data/mnist"]
    if model == "seed_mlp":
        cmd += ["--seed-data", seed_data]
    return run_json(cmd)


def per_epoch(result):
    # The first epoch carries one-time costs (oneDNN primitive creation, allocator warm-up)
    # in every framework; the median of the rest is the steady-state figure.
    times = result["epoch_seconds"]
    return statistics.median(times[1:] if len(times) > 1 else times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=f"{ROOT}/build/release")
    ap.add_argument("--models", nargs="+", default=["seed_mlp", "mnist_cnn"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out")
    a = ap.parse_args()
    seed_data = tempfile.mkdtemp(prefix="kiln-seed-data-")
    kpy = keras_python()
    if not kpy:
        print("TensorFlow/Keras not installed: no Keras column (pip install tensorflow-cpu)")
    rows = []
    for model in a.models:
        kiln_t, torch_t, keras_t, accs = [], [], [], []
        for _ in range(a.reps):  # alternate, so load drifts hit every framework alike
            k = kiln_run(a.build, model, a.epochs, a.device, seed_data, a.threads)
            kiln_t.append(per_epoch(k))
            accs.append(k.get("val_accuracy"))
            torch_t.append(per_epoch(torch_run(model, a.epochs, seed_data, a.threads)))
            if kpy:
                keras_t.append(per_epoch(keras_run(kpy, model, a.epochs, seed_data, a.threads)))
        kt, pt = statistics.median(kiln_t), statistics.median(torch_t)
        row = {"model": model, "kiln_s_per_epoch": kt, "pytorch_s_per_epoch": pt,
               "ratio_vs_pytorch": pt / kt, "kiln_val_accuracy": accs[-1]}
        line = (f"{model:10s}  kiln {kt:7.3f} s/epoch   pytorch {pt:7.3f} s/epoch "
                f"({pt / kt:5.2f}x)")
        if keras_t:
            tt = statistics.median(keras_t)
            row.update(keras_s_per_epoch=tt, ratio_vs_keras=tt / kt)
            line += f"   keras {tt:7.3f} s/epoch ({tt / kt:5.2f}x)"
        rows.append(row)
        print(f"{line}   (kiln's speed-up in parentheses; median of {a.reps}, {a.threads} threads, "
              f"{a.device})", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
