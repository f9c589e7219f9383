// Named tensors in one safetensors file (https://github.com/huggingface/safetensors: an
// 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, 
// "__metadata__": {string: string}}, then the raw little-endian data), written atomically:
// to a temporary file in the same folder, flushed, fsync'ed and renamed over `path`, so a
// crash leaves either the old file or the new one, never a torn one.
// Used by Model::save_weights / load_weights, ModelCheckpoint and BackupAndRestore.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

struct TensorFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // host tensors, in file order
  std::map<std::string, std::string> metadata;
  // The tensor named `name`, or an undefined Tensor.
  Tensor find(const std::string& name) const;
};

// Copies each tensor to the host (contiguous, row-major) and writes them in the order
// given. ValueError for duplicate or empty names (or text that is not UTF-8); IOError when
// the file cannot be written, in which case no temporary is left behind and an existing
// file at `path` is untouched.
void write_tensor_file(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// IOError when the file cannot be opened or read; FormatError naming the file and the
// field when it is not a valid safetensors file: truncated, a header length past the end,
// a header that is not a JSON object, an unknown dtype, a shape whose size is not its
// data_offsets', offsets out of range, overlapping or leaving gaps (see Note [Reading
// untrusted files] in tensor_file.cpp). Nothing is allocated beyond the file's size.
TensorFile read_tensor_file(const std::filesystem::path& path);

}  // namespace kiln
