#include "kiln/kernels/device_dispatch.h"

#include <string>

namespace kiln::detail {

void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (!first) {
      first = t;
      continue;
    }
    KILN_CHECK(t->device() == first->device(), DeviceError, op,
               ": expected all tensors on one device, got ", first->device(), " (shape ",
               first->shape(), ") and ", t->device(), " (shape ", t->shape(), ")");
  }
}

}  // namespace kiln::detail
