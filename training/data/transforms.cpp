// RandomCrop, RandomFlip, Normalize, Rescale on host NHWC batches.
#include "kiln/training/data/transforms.h"

#include <cstring>

#include "kiln/core/philox.h"

namespace kiln::data {
namespace {

// x must be a contiguous cpu (B, H, W, C) batch.
void check_images(const Tensor& x, const std::string& op) {
  KILN_CHECK(x.defined() && x.ndim() == 4, ShapeError, op, ": expects images (B, H, W, C), got ",
             x.defined() ? x.shape().str() : std::string("an undefined tensor"));
  KILN_ASSERT(x.device().is_cpu() && x.is_contiguous(), op, ": batch not a contiguous host tensor");
}

// A uniform integer in [0, n) from a 32-bit word (n is small: an image extent).
std::int64_t below(std::uint32_t word, std::int64_t n) {
  return static_cast<std::int64_t>((static_cast<std::uint64_t>(word) * static_cast<std::uint64_t>(n)) >> 32);
}

class RandomCropT final : public Transform {
 public:
  RandomCropT(std::int64_t h, std::int64_t w, std::int64_t pad) : h_(h), w_(w), pad_(pad) {}

  void apply(Batch& batch, std::uint64_t key) const override {
    const Tensor& x = batch.x;
    check_images(x, name());
    const std::int64_t b = x.size(0), ih = x.size(1), iw = x.size(2), c = x.size(3);
    KILN_CHECK(h_ <= ih + 2 * pad_ && w_ <= iw + 2 * pad_, ShapeError, name(), ": a ", h_, "x", w_,
               " crop does not fit images of shape ", x.shape(), " padded by ", pad_);
    Tensor out = zeros({b, h_, w_, c}, {.dtype = x.dtype(), .device = Device::cpu()});
    const std::size_t pixel = static_cast<std::size_t>(c) * x.itemsize();
    const auto* src = static_cast<const std::uint8_t*>(x.data_ptr());
    auto* dst = static_cast<std::uint8_t*>(out.data_ptr());
    for (std::int64_t i = 0; i < b; ++i) {
      // The window's top-left corner in padded coordinates, then in the image's.
      const std::int64_t top = below(philox_word(key, 0, 2 * i), ih + 2 * pad_ - h_ + 1) - pad_;
      const std::int64_t left = below(philox_word(key, 0, 2 * i + 1), iw + 2 * pad_ - w_ + 1) - pad_;
      // The columns of the window that land inside the image (the rest stay zero).
      const std::int64_t c0 = std::max<std::int64_t>(0, -left);
      const std::int64_t c1 = std::min<std::int64_t>(w_, iw - left);
      for (std::int64_t r = 0; r < h_; ++r) {
        const std::int64_t sr = top + r;
        if (sr < 0 || sr >= ih || c1 <= c0) continue;
        std::memcpy(dst + ((i * h_ + r) * w_ + c0) * pixel,
                    src + ((i * ih + sr) * iw + left + c0) * pixel,
                    static_cast<std::size_t>(c1 - c0) * pixel);
      }
    }
    batch.x = out;
  }
  std::string name() const override { return "RandomCrop"; }

 private:
  std::int64_t h_, w_, pad_;
};

class RandomFlipT final : public Transform {
 public:
  RandomFlipT(bool horizontal, bool vertical) : horizontal_(horizontal), vertical_(vertical) {}

  void apply(Batch& batch, std::uint64_t key) const override {
    const Tensor& x = batch.x;
    check_images(x, name());
    const std::int64_t b = x.size(0), h = x.size(1), w = x.size(2);
    const std::size_t pixel = static_cast<std::size_t>(x.size(3)) * x.itemsize();
    const std::size_t row = static_cast<std::size_t>(w) * pixel;
    auto* data = static_cast<std::uint8_t*>(x.data_ptr());
    std::vector<std::uint8_t> tmp(row);
    for (std::int64_t i = 0; i < b; ++i) {
      std::uint8_t* image = data + static_cast<std::size_t>(i * h) * row;
      // Bit 31 of word 2i (horizontal) and of word 2i+1 (vertical): fair coins.
      if (horizontal_ && (philox_word(key, 0, 2 * i) >> 31)) {
        for (std::int64_t r = 0; r < h; ++r) {
          std::uint8_t* line = image + static_cast<std::size_t>(r) * row;
          for (std::int64_t a = 0, z = w - 1; a < z; ++a, --z) {
            std::memcpy(tmp.data(), line + a * pixel, pixel);
            std::memcpy(line + a * pixel, line + z * pixel, pixel);
            std::memcpy(line + z * pixel, tmp.data(), pixel);
          }
        }
      }
      if (vertical_ && (philox_word(key, 0, 2 * i + 1) >> 31)) {
        for (std::int64_t a = 0, z = h - 1; a < z; ++a, --z) {
          std::memcpy(tmp.data(), image + a * row, row);
          std::memcpy(image + a * row, image + z * row, row);
          std::memcpy(image + z * row, tmp.data(), row);
        }
      }
    }
  }
  std::string name() const override { return "RandomFlip"; }

 private:
  bool horizontal_, vertical_;
};

// out = x * scale[c] + shift[c] in float32, for the last axis c (Normalize and Rescale).
class AffineT final : public Transform {
 public:
  AffineT(std::string name, std::vector<double> scale, std::vector<double> shift)
      : name_(std::move(name)), scale_(std::move(scale)), shift_(std::move(shift)) {}

  void apply(Batch& batch, std::uint64_t) const override {
    const Tensor& x = batch.x;
    KILN_CHECK(x.defined() && x.ndim() >= 1, ShapeError, name_, ": needs a batch with a channel axis");
    const std::int64_t c = x.size(-1);
    const auto k = static_cast<std::int64_t>(scale_.size());
    KILN_CHECK(k == 1 || k == c, ShapeError, name_, ": ", k, " per-channel values for ", c,
               " channels (x of shape ", x.shape(), ")");
    Tensor out = empty(x.shape(), {.dtype = float32, .device = Device::cpu()});
    float* dst = out.data<float>();
    const std::int64_t n = x.numel();
    visit_dtype(x.dtype(), [&]<class T>() {
      const T* src = static_cast<const T*>(x.data_ptr());
      for (std::int64_t i = 0; i < n; ++i) {
        const std::size_t ch = k == 1 ? 0 : static_cast<std::size_t>(i % c);
        dst[i] = static_cast<float>(convert<double>(src[i]) * scale_[ch] + shift_[ch]);
      }
    });
    batch.x = out;
  }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  std::vector<double> scale_, shift_;
};

}  // namespace

TransformPtr RandomCrop(std::int64_t height, std::int64_t width, RandomCropOptions options) {
  KILN_CHECK(height > 0 && width > 0 && options.padding >= 0, ValueError,
             "RandomCrop: height and width must be positive and padding non-negative, got ",
             height, "x", width, " padding ", options.padding);
  return std::make_shared<RandomCropT>(height, width, options.padding);
}

TransformPtr RandomFlip(const std::string& mode) {
  const bool h = mode == "horizontal" || mode == "horizontal_and_vertical";
  const bool v = mode == "vertical" || mode == "horizontal_and_vertical";
  KILN_CHECK(h || v, ValueError, "RandomFlip: unknown mode '", mode,
             "' (horizontal, vertical, horizontal_and_vertical)");
  return std::make_shared<RandomFlipT>(h, v);
}

TransformPtr Normalize(std::vector<double> mean, std::vector<double> stddev) {
  KILN_CHECK(!mean.empty() && mean.size() == stddev.size(), ValueError, "Normalize: ", mean.size(),
             " means and ", stddev.size(), " standard deviations");
  std::vector<double> scale(mean.size()), shift(mean.size());
  for (std::size_t i = 0; i < mean.size(); ++i) {
    KILN_CHECK(stddev[i] > 0, ValueError, "Normalize: stddev[", i, "] = ", stddev[i], " must be > 0");
    scale[i] = 1.0 / stddev[i];
    shift[i] = -mean[i] / stddev[i];
  }
  return std::make_shared<AffineT>("Normalize", std::move(scale), std::move(shift));
}

TransformPtr Rescale(double scale, double offset) {
  return std::make_shared<AffineT>("Rescale", std::vector<double>{scale}, std::vector<double>{offset});
}

std::uint64_t transform_key(std::uint64_t seed, std::int64_t epoch, std::int64_t batch,
                            std::int64_t position) {
  const auto e = static_cast<std::uint64_t>(epoch), b = static_cast<std::uint64_t>(batch);
  const PhiloxBlock first = philox4x32_10(
      {{static_cast<std::uint32_t>(e), static_cast<std::uint32_t>(e >> 32),
        static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32)}},
      static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  const PhiloxBlock mixed = philox4x32_10(
      {{first.v[0], first.v[1], static_cast<std::uint32_t>(position), 0x7f4a7c15u}}, first.v[2],
      first.v[3]);
  return static_cast<std::uint64_t>(mixed.v[0]) | (static_cast<std::uint64_t>(mixed.v[1]) << 32);
}

}  // namespace kiln::data
