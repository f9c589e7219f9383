// split_at and to_float_images.
#include "kiln/training/datasets/splits.h"

#include <algorithm>

namespace kiln::datasets {

std::pair<Split, Split> split_at(const Split& s, std::int64_t n) {
  KILN_CHECK(s.x.defined(), ValueError, "split_at: the split has no x");
  const std::int64_t total = s.size();
  n = std::clamp<std::int64_t>(n, 0, total);
  auto part = [&](std::int64_t lo, std::int64_t hi) {
    return Split{s.x.slice(0, lo, hi), s.y.defined() ? s.y.slice(0, lo, hi) : Tensor()};
  };
  return {part(0, n), part(n, total)};
}

Tensor to_float_images(const Tensor& x) {
  KILN_CHECK(x.defined() && x.dtype() == uint8, TypeError,
             "to_float_images: expects uint8 images, got ",
             x.defined() ? std::string(name(x.dtype())) : std::string("an undefined tensor"));
  KILN_CHECK(x.ndim() == 3 || x.ndim() == 4, ShapeError,
             "to_float_images: expects (N, H, W) or (N, H, W, C) images, got ", x.shape());
  const Tensor host = x.detach().to(Device::cpu()).contiguous();
  Shape shape = host.shape();
  if (shape.ndim() == 3) shape.push_back(1);
  Tensor out = empty(shape, {.dtype = float32, .device = Device::cpu()});
  const std::uint8_t* src = host.data<std::uint8_t>();
  float* dst = out.data<float>();
  // A table: the division done once per byte value, exact to the float grid.
  float scale[256];
  for (int v = 0; v < 256; ++v) scale[v] = static_cast<float>(v) / 255.0f;
  const std::int64_t n = host.numel();
  for (std::int64_t i = 0; i < n; ++i) dst[i] = scale[src[i]];
  return out;
}

}  // namespace kiln::datasets
