#include "kiln/core/storage.h"

namespace kiln {

std::shared_ptr<Storage> Storage::allocate(Device device, std::size_t nbytes) {
  return std::make_shared<Storage>(kiln::allocate(device, nbytes), nbytes);
}

}  // namespace kiln
