// Storage: one buffer on one device, shared by every tensor view of it.
#pragma once

#include <cstddef>
#include <memory>

#include "kiln/core/allocator.h"

namespace kiln {

class Storage {
 public:
  Storage(DataPtr data, std::size_t nbytes) : data_(std::move(data)), nbytes_(nbytes) {}
  static std::shared_ptr<Storage> allocate(Device device, std::size_t nbytes);

  void* data() const { return data_.get(); }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return data_.device(); }

 private:
  DataPtr data_;
  std::size_t nbytes_;
};

}  // namespace kiln
