#!/usr/bin/env python3
"""PyTorch's cpu conv2d on the layers of bench/kernels/conv_bench.cpp, beside kiln's figures.

For comparison only (never a test): times the three passes (forward, backward-data,
backward-filter) of torch's conv2d in float32 on cpu, on the same shapes and thread count
as kernels_conv_bench's BM_CpuConv rows, reads kiln's GFLOP/s from that benchmark's JSON,
and prints both with kiln's ratio. Goal (reported, not asserted): kiln >= 0.8 of PyTorch.

PyTorch runs each layer in both memory formats, NCHW (contiguous) and channels_last (NHWC,
kiln's layout), and the faster one is the peer figure. Its calls allocate their outputs;
kiln's rows reuse theirs. Figures are of the fastest call (kiln's "best_GFLOP/s"): on a
machine shared with other work the mean mostly measures the other work; the ratio of the
means is printed too.

    build/cpu/bench/kernels/kernels_conv_bench --benchmark_filter=BM_CpuConv \\
        --benchmark_out=conv.json --benchmark_out_format=json
    /usr/bin/python3 bench/kernels/conv_torch.py --kiln-json conv.json
or let the script run the benchmark itself:
    /usr/bin/python3 bench/kernels/conv_torch.py --kiln-bench build/cpu/bench/kernels/kernels_conv_bench

Needs Debian's python3-torch (`apt-get install -y python3-torch`), which installs for the
system python3 (/usr/bin/python3).
"""
import argparse
import json
import math
import subprocess
import sys
import time

# (name, batch, h, w, c_in, c_out, kernel, stride, pad, groups): conv_bench.cpp's kLayers, in order.
LAYERS = [
    ("mnist_conv1", 128, 28, 28, 1, 32, 3, 1, 0, 1),
    ("mnist_conv2", 128, 13, 13, 32, 64, 3, 1, 0, 1),
    ("cifar_3x3", 32, 32, 32, 64, 64, 3, 1, 1, 1),
    ("resnet18_conv1", 4, 224, 224, 3, 64, 7, 2, 3, 1),
    ("resnet18_3x3", 4, 56, 56, 64, 64, 3, 1, 1, 1),
    ("vgg16_conv1_2", 1, 224, 224, 64, 64, 3, 1, 1, 1),
    ("vgg16_conv3", 1, 56, 56, 256, 256, 3, 1, 1, 1),
    ("mobilenet_dw3x3", 8, 56, 56, 128, 128, 3, 1, 1, 128),
]
PASSES = ["forward", "backward_data", "backward_filter"]


def gflop(layer):
    _, n, h, w, c_in, c_out, k, s, p, groups = layer
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return 2.0 * n * oh * ow * c_out * k * k * (c_in // groups) / 1e9


def seconds_per_call(fn, min_time):
    """(mean, fastest) seconds of one call, over at least min_time seconds of calls."""
    fn()
    fn()  # warm-up: oneDNN primitive creation, allocator
    calls, best, start = 0, float("inf"), time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and calls >= 3:
            return elapsed / calls, best


def torch_gflops(torch, layer, pass_name, channels_last, min_time):
    _, n, h, w, c_in, c_out, k, s, p, groups = layer
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(7)
    x = torch.empty(n, c_in, h, w).uniform_(-1, 1, generator=gen).to(memory_format=fmt)
    weight = torch.empty(c_out, c_in // groups, k, k).uniform_(-0.1, 0.1, generator=gen).to(memory_format=fmt)
    bias = torch.empty(c_out).uniform_(-0.1, 0.1, generator=gen)
    y = torch.nn.functional.conv2d(x, weight, bias, s, p, 1, groups)
    dy = torch.empty_like(y).uniform_(-1, 1, generator=gen)
    backward = torch.ops.aten.convolution_backward

    def run():
        with torch.no_grad():
            if pass_name == "forward":
                torch.nn.functional.conv2d(x, weight, bias, s, p, 1, groups)
            elif pass_name == "backward_data":
                backward(dy, x, weight, [c_out], [s, s], [p, p], [1, 1], False, [0, 0], groups, [True, False, False])
            else:
                backward(dy, x, weight, [c_out], [s, s], [p, p], [1, 1], False, [0, 0], groups, [False, True, True])

    mean, best = seconds_per_call(run, min_time)
    return gflop(layer) / mean, gflop(layer) / best


def kiln_figures(args):
    """{(layer, pass): (mean, best) GFLOP/s} from kernels_conv_bench's JSON (read or produced here)."""
    if args.kiln_json:
        with open(args.kiln_json) as f:
            data = json.load(f)
    else:
        out = subprocess.run([args.kiln_bench, "--benchmark_filter=BM_CpuConv", "--benchmark_format=json"],
                             check=True, capture_output=True, text=True).stdout
        data = json.loads(out)
    figures = {}
    for row in data.get("benchmarks", []):
        parts = row["name"].split("/")
        if len(parts) >= 3 and parts[0] == "BM_CpuConv" and "GFLOP/s" in row:
            figures[(parts[1], parts[2])] = (row["GFLOP/s"], row.get("best_GFLOP/s", row["GFLOP/s"]))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--kiln-json", help="kernels_conv_bench --benchmark_out JSON")
    source.add_argument("--kiln-bench", help="path of kernels_conv_bench, run here with the BM_CpuConv filter")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads: match kiln's OpenMP threads (2 on the dev machines)")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timed row")
    parser.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        sys.exit("conv_torch.py: no torch for " + sys.executable +
                 "; install python3-torch and run with /usr/bin/python3")
    torch.set_num_threads(args.threads)
    kiln = kiln_figures(args) if (args.kiln_json or args.kiln_bench) else {}
    wanted = set(filter(None, args.layers.split(",")))

    print(f"torch {torch.__version__}, {args.threads} threads, mkldnn {torch.backends.mkldnn.is_available()}")
    print("GFLOP/s of the fastest call; 'mean ratio' compares the mean calls")
    print(f"{'layer/pass':32} {'GFLOP':>6} {'torch NCHW':>10} {'torch NHWC':>10} {'kiln':>7} {'kiln/torch':>10} "
          f"{'mean ratio':>10}")
    ratios = []
    for layer in LAYERS:
        if wanted and layer[0] not in wanted:
            continue
        for pass_name in PASSES:
            nchw = torch_gflops(torch, layer, pass_name, False, args.min_time)
            nhwc = torch_gflops(torch, layer, pass_name, True, args.min_time)
            peer_mean, peer_best = max(nchw[0], nhwc[0]), max(nchw[1], nhwc[1])
            k = kiln.get((layer[0], pass_name))
            cells = "      -          -          -"
            if k:
                ratios.append(k[1] / peer_best)
                cells = f"{k[1]:7.1f} {k[1] / peer_best:10.2f} {k[0] / peer_mean:10.2f}"
            print(f"{layer[0] + '/' + pass_name:32} {gflop(layer):6.3f} {nchw[1]:10.1f} {nhwc[1]:10.1f} {cells}")
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        below = sum(1 for r in ratios if r < 0.8)
        print(f"kiln / best torch (fastest calls): geometric mean {geo:.2f}, min {min(ratios):.2f}; "
              f"{below} of {len(ratios)} rows below the 0.8 goal")


if __name__ == "__main__":
    main()
