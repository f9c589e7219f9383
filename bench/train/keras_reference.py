#!/usr/bin/env python3
"""The samples' models in TensorFlow/Keras (the original kiln's API copies), for
bench/train/compare.py: same data, batch sizes and Keras defaults as kiln's samples. Prints
one JSON line: {"framework": "keras", "model": ..., "epoch_seconds": [...], "val_accuracy": ...}.
For comparison only; never part of kiln's tests or CI. Needs `pip install tensorflow-cpu`."""
import argparse
import json
import os
import time

import numpy as np

from mnist_data import mnist_split  # the same IDX reading and 8,000 / 2,000 split


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", choices=["mnist_cnn", "seed_mlp"])
    ap.add_argument("--data", default="samples/data/mnist")
    ap.add_argument("--seed-data")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow import keras
    if a.threads:
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    keras.utils.set_random_seed(0)
    L = keras.layers
    if a.model == "mnist_cnn":
        (x, y), (xv, yv) = mnist_split(a.data)
        x, xv = x.transpose(0, 2, 3, 1), xv.transpose(0, 2, 3, 1)  # NHWC, as kiln
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
            L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")])
        epochs, batch = a.epochs or 10, 128
    else:
        load = lambda name: np.load(f"{a.seed_data}/{name}.npy")
        x, y = load("x_train").astype(np.float32), load("y_train").astype(np.int64)
        xv, yv = load("x_test").astype(np.float32), load("y_test").astype(np.int64)
        model = keras.Sequential([
            keras.Input((32,)), L.Dense(64, activation="relu"), L.Dense(64, activation="relu"),
            L.Dense(10, activation="softmax")])
        epochs, batch = a.epochs or 5, 32
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times = []
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[Timer()])
    acc = model.evaluate(xv, yv, batch_size=batch, verbose=0)[1]
    print(json.dumps({"framework": "keras", "model": a.model, "tensorflow": tf.__version__,
                      "epoch_seconds": times, "val_accuracy": float(acc)}))


if __name__ == "__main__":
    main()
