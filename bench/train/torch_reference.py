#!/usr/bin/env python3
"""The samples' models in PyTorch (eager), for bench/train/compare.py: same data, same
batch sizes, same optimizer settings as kiln's samples (Keras defaults). Prints one JSON
line: {"framework": "pytorch", "model": ..., "epoch_seconds": [...], "val_accuracy": ...}.
For comparison only; never part of kiln's tests or CI."""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from mnist_data import mnist_split


def keras_adam(params):
    # Keras' Adam defaults (epsilon 1e-7, not PyTorch's 1e-8).
    return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7)


def glorot_init(model):
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def mnist_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10))


def seed_mlp():
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def train(model, x, y, xv, yv, epochs, batch_size, seed):
    torch.manual_seed(seed)
    glorot_init(model)
    opt = keras_adam(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(xv)).argmax(1).numpy()
    return times, float((pred == yv).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", choices=["mnist_cnn", "seed_mlp"])
    ap.add_argument("--data", default="samples/data/mnist", help="MNIST dir (mnist_cnn)")
    ap.add_argument("--seed-data", help="seed_mlp data exported by kiln's seed_mlp "
                    "--export-data DIR (x_train.npy, y_train.npy, x_test.npy, y_test.npy)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.model == "mnist_cnn":
        (x, y), (xv, yv) = mnist_split(a.data)
        times, acc = train(mnist_cnn(), x, y, xv, yv, a.epochs or 10, 128, 0)
    else:
        load = lambda name: np.load(f"{a.seed_data}/{name}.npy")
        x, y = load("x_train").astype(np.float32), load("y_train").astype(np.int64)
        xv, yv = load("x_test").astype(np.float32), load("y_test").astype(np.int64)
        times, acc = train(seed_mlp(), x, y, xv, yv, a.epochs or 5, 32, 0)
    print(json.dumps({"framework": "pytorch", "model": a.model, "threads": torch.get_num_threads(),
                      "epoch_seconds": times, "val_accuracy": acc}))


if __name__ == "__main__":
    main()
