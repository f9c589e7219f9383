// Keras' ZeroPadding2D and UpSampling2D (see reshaping.h).
#include "kiln/layers/reshaping.h"

#include <nlohmann/json.hpp>

#include "kiln/kernels/resize.h"

namespace kiln::layers {

using nlohmann::json;

namespace {
// -1 (unknown) stays -1.
std::int64_t grow(std::int64_t extent, std::int64_t before, std::int64_t after) {
  return extent < 0 ? -1 : before + extent + after;
}
std::int64_t scale(std::int64_t extent, std::int64_t factor) { return extent < 0 ? -1 : extent * factor; }
}  // namespace

// ---- ZeroPadding2D ----

ZeroPadding2DLayer::ZeroPadding2DLayer(Padding2D padding, ZeroPadding2DOptions options)
    : Layer("ZeroPadding2D", common_options(options)), padding_(padding), options_(std::move(options)) {
  const Padding2D& p = padding_;
  KILN_CHECK(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0, ValueError, name(),
             ": padding must be >= 0, got ((", p.top, ", ", p.bottom, "), (", p.left, ", ", p.right, "))");
  image::check_data_format(options_.data_format, name());
}

Tensor ZeroPadding2DLayer::call(const Tensor& x, bool) {
  image::check_image_shape(x.shape(), name());
  return zero_pad2d(x, {padding_.top, padding_.bottom, padding_.left, padding_.right});
}

Shape ZeroPadding2DLayer::compute_output_shape(const Shape& s) const {
  image::check_image_shape(s, name());
  return {s[0], grow(s[1], padding_.top, padding_.bottom), grow(s[2], padding_.left, padding_.right), s[3]};
}

json ZeroPadding2DLayer::get_config() const {
  json c = Layer::get_config();
  c["padding"] = json::array({json::array({padding_.top, padding_.bottom}), json::array({padding_.left, padding_.right})});
  c["data_format"] = options_.data_format;
  return c;
}

Ref<ZeroPadding2DLayer> ZeroPadding2D(Padding2D padding, ZeroPadding2DOptions options) {
  return std::make_shared<ZeroPadding2DLayer>(padding, std::move(options));
}

// ---- UpSampling2D ----

UpSampling2DLayer::UpSampling2DLayer(Int2 size, UpSampling2DOptions options)
    : Layer("UpSampling2D", common_options(options)), size_(size), options_(std::move(options)) {
  image::check_positive(size_, "size", name());
  image::check_data_format(options_.data_format, name());
  const std::string& i = options_.interpolation;
  KILN_CHECK(i == "nearest" || i == "bilinear", ValueError, name(),
             ": interpolation must be \"nearest\" or \"bilinear\" (kiln has no bicubic or lanczos), got \"", i, "\"");
}

Tensor UpSampling2DLayer::call(const Tensor& x, bool) {
  image::check_image_shape(x.shape(), name());
  return upsample2d(x, size_.array(), options_.interpolation);
}

Shape UpSampling2DLayer::compute_output_shape(const Shape& s) const {
  image::check_image_shape(s, name());
  return {s[0], scale(s[1], size_.h), scale(s[2], size_.w), s[3]};
}

json UpSampling2DLayer::get_config() const {
  json c = Layer::get_config();
  c["size"] = image::to_json(size_);
  c["data_format"] = options_.data_format;
  c["interpolation"] = options_.interpolation;
  return c;
}

Ref<UpSampling2DLayer> UpSampling2D(Int2 size, UpSampling2DOptions options) {
  return std::make_shared<UpSampling2DLayer>(size, std::move(options));
}

}  // namespace kiln::layers
