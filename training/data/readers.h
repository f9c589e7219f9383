// Dataset files as host tensors: MNIST's IDX (raw or .gz), CIFAR-10/100 binary batches,
// NumPy .npy and .npz (read and write). Each reads the whole file, validates it with the
// parsers of formats.h (FormatError naming the file and the field, before any
// allocation sized by a header) and returns contiguous cpu tensors of the file's dtype.
// IOError when a file cannot be opened, read or written.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "kiln/core/tensor.h"
#include "kiln/training/data/formats.h"

namespace kiln::data {

// A cpu tensor holding `raw`'s elements (converted to native byte order).
Tensor to_tensor(const RawArray& raw, std::string_view source);

// An IDX file, gzip-compressed or not (told by its first bytes, not its name):
// uint8, int32, float32 or float64 with the file's shape (MNIST images: uint8
// (N, 28, 28); labels: uint8 (N,)).
Tensor read_idx(const std::string& path);

// A CIFAR binary batch: x uint8 (N, 32, 32, 3) NHWC (the file's CHW planes
// transposed), y uint8 (N,).
struct CifarBatch {
  Tensor x;
  Tensor y;
};
enum class CifarLabels { fine, coarse };  // CIFAR-100's two labels (Keras' label_mode)
CifarBatch read_cifar10_batch(const std::string& path);
CifarBatch read_cifar100_batch(const std::string& path, CifarLabels labels = CifarLabels::fine);

// NumPy arrays. load_npy accepts versions 1.0-3.0, little-endian <f2 <f4 <f8 <i4 <i8
// |u1 |b1, C order. save_npy writes any tensor of those dtypes (from any device, any
// strides) as C order, atomically (a temporary file renamed into place).
Tensor load_npy(const std::string& path);
void save_npy(const std::string& path, const Tensor& tensor);
// An .npz archive (stored or deflated members, zip64 included), keyed as numpy's
// NpzFile keys it: member "x.npy" is "x". Members that are not .npy are a FormatError.
std::map<std::string, Tensor> load_npz(const std::string& path);
// Writes an uncompressed .npz (what numpy.savez writes), atomically.
void save_npz(const std::string& path, const std::map<std::string, Tensor>& arrays);

}  // namespace kiln::data
