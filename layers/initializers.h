// Weight initializers with Keras' names, arguments and defaults (keras.initializers).
// Random ones draw from kiln's Philox generator (core/random.h): on the host in float64,
// then converted to the asked dtype and copied to the asked device, so one seed gives the
// same weights on cpu and cuda. Unseeded initializers draw from default_generator()
// (reseed it with kiln::manual_seed); a seeded one owns a Generator(seed) that advances with
// each call (Keras 3: two initializers built with one seed give the same sequence).
//
//   auto w = kiln::initializers::get("he_normal")->operator()({64, 32});
//   kiln::layers::Dense(32, {.kernel_initializer = kiln::initializers::RandomNormal({.stddev = 0.1})});
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json_fwd.hpp>

#include "kiln/core/tensor.h"

namespace kiln::initializers {

// Keras' fan computation (keras.initializers.compute_fans) for its kernel layouts:
//   rank 0: (1, 1); rank 1: (n, n); rank 2 (in, out): (in, out);
//   rank >= 3, e.g. a Conv2D kernel (kh, kw, in, out): receptive = prod(shape[:-2]),
//   fan_in = shape[-2] * receptive, fan_out = shape[-1] * receptive.
struct Fans {
  double fan_in = 1;
  double fan_out = 1;
};
Fans compute_fans(const Shape& shape);

// The base of every initializer; users subclass it for custom ones (override operator()
// and class_name, and get_config when it has arguments).
class Initializer {
 public:
  virtual ~Initializer() = default;
  // A new tensor of `shape`; dtype float32 and default_device() when options leave them unset.
  virtual Tensor operator()(const Shape& shape, TensorOptions options = {}) const = 0;
  // Keras' class name: "GlorotUniform", "Zeros", ...
  virtual std::string class_name() const = 0;
  // The constructor arguments as Keras writes them ({"seed": null} for GlorotUniform).
  virtual nlohmann::json get_config() const;
};
using InitializerPtr = std::shared_ptr<const Initializer>;

// ---- Keras' initializers (keras.initializers.*), defaults as Keras 3 ----

InitializerPtr Zeros();
InitializerPtr Ones();
InitializerPtr Constant(double value = 0.0);

struct RandomNormalOptions {
  double mean = 0.0;
  double stddev = 0.05;
  std::optional<std::uint64_t> seed;
};
InitializerPtr RandomNormal(RandomNormalOptions options = {});

struct RandomUniformOptions {
  double minval = -0.05;
  double maxval = 0.05;
  std::optional<std::uint64_t> seed;
};
InitializerPtr RandomUniform(RandomUniformOptions options = {});

// A normal distribution cut at two standard deviations (values beyond are redrawn, as
// Keras; kiln draws by inverse CDF so each element takes exactly one Philox number).
InitializerPtr TruncatedNormal(RandomNormalOptions options = {});

// Keras' VarianceScaling: n = fan_in, fan_out or their mean (mode); then
//   "truncated_normal": truncated normal, stddev = sqrt(scale / n) / 0.87962566103423978
//   "untruncated_normal": normal, stddev = sqrt(scale / n)
//   "uniform": uniform in [-limit, limit], limit = sqrt(3 * scale / n)
// Unknown mode or distribution strings throw ValueError listing the valid ones.
struct VarianceScalingOptions {
  double scale = 1.0;
  std::string mode = "fan_in";                    // fan_in | fan_out | fan_avg
  std::string distribution = "truncated_normal";  // truncated_normal | untruncated_normal | uniform
  std::optional<std::uint64_t> seed;
};
InitializerPtr VarianceScaling(VarianceScalingOptions options = {});

struct SeedOptions {
  std::optional<std::uint64_t> seed;
};
InitializerPtr GlorotUniform(SeedOptions options = {});  // scale 1, fan_avg, uniform
InitializerPtr GlorotNormal(SeedOptions options = {});   // scale 1, fan_avg, truncated_normal
InitializerPtr HeUniform(SeedOptions options = {});      // scale 2, fan_in, uniform
InitializerPtr HeNormal(SeedOptions options = {});       // scale 2, fan_in, truncated_normal
InitializerPtr LecunUniform(SeedOptions options = {});   // scale 1, fan_in, uniform
InitializerPtr LecunNormal(SeedOptions options = {});    // scale 1, fan_in, truncated_normal

// A (semi-)orthogonal matrix from the QR decomposition of a normal draw (Keras'
// Orthogonal; tensors of rank > 2 are flattened to (prod(shape[:-1]), shape[-1])); the
// default recurrent_initializer of Keras' LSTM and GRU.
struct OrthogonalOptions {
  double gain = 1.0;
  std::optional<std::uint64_t> seed;
};
InitializerPtr Orthogonal(OrthogonalOptions options = {});

// ---- by name and from JSON ----

// Keras' string identifiers: "zeros", "ones", "constant", "random_normal",
// "random_uniform", "truncated_normal", "variance_scaling", "glorot_uniform",
// "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
// "orthogonal"; class names ("GlorotUniform") are accepted too. An unknown name throws
// ValueError listing the valid ones.
InitializerPtr get(std::string_view name);
// Keras' serialized form {"module": "keras.initializers", "class_name": ..., "config": ...,
// "registered_name": null} and back (a bare string is read as get(name)).
nlohmann::json serialize(const Initializer& initializer);
InitializerPtr deserialize(const nlohmann::json& json);

// What a layer option accepts: a Keras string identifier or an initializer object.
//   .kernel_initializer = "he_normal"
//   .kernel_initializer = kiln::initializers::Constant(0.5)
class Spec {
 public:
  Spec() = default;  // none: the layer's default applies
  Spec(const char* name) : name_(name) {}
  Spec(std::string name) : name_(std::move(name)) {}
  template <class T>
    requires std::is_base_of_v<Initializer, T>
  Spec(std::shared_ptr<T> initializer) : object_(std::move(initializer)) {}

  bool empty() const { return name_.empty() && !object_; }
  // The initializer (get(name) for a string; throws ValueError for an unknown name).
  InitializerPtr resolve() const;

 private:
  std::string name_;
  InitializerPtr object_;
};

}  // namespace kiln::initializers
