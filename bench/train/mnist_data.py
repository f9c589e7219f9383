"""The bundled MNIST digits as the references read them (no framework imports): IDX
parsing and Keras' validation_split=0.2 split, shared by torch_reference.py and
keras_reference.py."""
import gzip
import struct

import numpy as np


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist_split(data_dir):
    """Keras' validation_split=0.2 on the 10,000 bundled digits: first 8,000 train, last 2,000
    validate (Keras takes the tail before shuffling)."""
    x = read_idx(f"{data_dir}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    x = x[:, None, :, :]  # NCHW for PyTorch
    return (x[:8000], y[:8000]), (x[8000:], y[8000:])
