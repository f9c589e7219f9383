#include "kiln/core/cuda/check.h"

#include <string>

namespace kiln::cuda::detail {

void raise_library_error(const char* library, const char* name, const char* description,
                         bool out_of_memory, const char* call, const char* file, int line) {
  std::string msg = std::string(library) + " error " + name + " (" + description + ") in " + call;
  if (out_of_memory) kiln::detail::raise<OutOfMemoryError>(std::move(msg), file, line);
  kiln::detail::raise<CudaError>(std::move(msg), file, line);
}

}  // namespace kiln::cuda::detail
