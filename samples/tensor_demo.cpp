// The main job for now: tensors on the default device (GPU-first), a few views and
// copies, and the caching allocator's summary when a cuda device is in use.
//   tensor_demo [--device cpu|cuda|cuda:N]
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include <kiln/kiln.h>

namespace {

kiln::Device pick_device(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::puts("usage: tensor_demo [--device cpu|cuda|cuda:N]\n"
                "Makes tensors on the device (default: cuda:0 when a GPU is present, else cpu;\n"
                "KILN_DEVICE overrides), shows views and copies, and prints the allocator summary.");
      std::exit(0);
    }
    if (std::strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
      return kiln::Device(std::string_view(argv[i + 1]));
    }
  }
  return kiln::default_device();
}

}  // namespace

int main(int argc, char** argv) try {
  const kiln::Device device = pick_device(argc, argv);
  kiln::check_device(device, "tensor_demo");
  std::cout << "kiln tensor demo on " << device << "\n\n";

  kiln::manual_seed(42);
  const auto x = kiln::arange(0, 12, 1, {.device = device}).reshape({3, 4});
  std::cout << "x = arange(12).reshape(3, 4):\n" << x << "\n\n";
  std::cout << "x.t() (a view, strides " << x.t().strides() << "):\n" << x.t() << "\n\n";
  std::cout << "x[:, 1::2]:\n" << x.slice(1, 1, 4, 2) << "\n\n";
  const auto r = kiln::randn({2, 3}, {.dtype = kiln::float16, .device = device});
  std::cout << "randn (float16, Philox seed 42):\n" << r << "\n\n";
  const auto back = r.to(kiln::Device::cpu(), kiln::float32);
  std::cout << "copied to cpu as float32:\n" << back << "\n";

  if (device.is_cuda()) {
    const auto big = kiln::zeros({1024, 1024}, {.device = device});  // 4 MiB: large pool
    std::cout << "\n" << kiln::cuda::device_allocator(device.index()).memory_summary() << "\n";
  }
  return 0;
} catch (const kiln::Error& e) {
  std::cerr << "tensor_demo: " << e.what() << "\n";
  return 1;
}
