// Keras' initializers (see initializers.h). Random values are drawn on the host in
// float64 from a Philox Generator and then converted and copied to the asked device, so a
// seed gives the same weights on every device.
#include "kiln/layers/initializers.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "kiln/core/random.h"

namespace kiln::initializers {

using nlohmann::json;

Fans compute_fans(const Shape& shape) {
  const int r = shape.ndim();
  if (r == 0) return {1, 1};
  if (r == 1) return {static_cast<double>(shape[0]), static_cast<double>(shape[0])};
  if (r == 2) return {static_cast<double>(shape[0]), static_cast<double>(shape[1])};
  double receptive = 1;
  for (int i = 0; i < r - 2; ++i) receptive *= static_cast<double>(shape[i]);
  return {static_cast<double>(shape[r - 2]) * receptive, static_cast<double>(shape[r - 1]) * receptive};
}

json Initializer::get_config() const { return json::object(); }

namespace {

constexpr TensorOptions kHost{.dtype = DType::float64, .device = Device::cpu()};

DType dtype_or_default(const TensorOptions& o) { return o.dtype.value_or(DType::float32); }
Device device_or_default(const TensorOptions& o) { return o.device.value_or(default_device()); }

// The float64 host tensor converted to the requested dtype and device.
Tensor finish(const Tensor& host, const TensorOptions& o) {
  return host.to(device_or_default(o), dtype_or_default(o));
}

json seed_json(const std::optional<std::uint64_t>& seed) { return seed ? json(*seed) : json(nullptr); }

// The standard normal quantile: Acklam's rational approximation (relative error < 1.2e-9)
// refined by one Halley step against erfc, accurate to double precision in (0, 1).
double normal_quantile(double p) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double p_low = 0.02425;
  double x;
  if (p < p_low) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - p_low) {
    const double q = p - 0.5;
    const double r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

// Base of the random initializers: the generator (own when seeded, else the global one).
class RandomBase : public Initializer {
 public:
  explicit RandomBase(std::optional<std::uint64_t> seed)
      : seed_(seed), own_(seed ? std::make_shared<Generator>(*seed) : nullptr) {}

 protected:
  Generator* gen() const { return own_ ? own_.get() : &default_generator(); }
  std::optional<std::uint64_t> seed_;

 private:
  std::shared_ptr<Generator> own_;  // shared by copies: one stream per initializer object
};

Tensor draw_uniform(const Shape& s, double lo, double hi, Generator* gen) {
  return uniform(s, lo, hi, kHost, gen);
}
Tensor draw_normal(const Shape& s, double mean, double stddev, Generator* gen) {
  return normal(s, mean, stddev, kHost, gen);
}
// Normal(mean, stddev) cut at two standard deviations: one uniform per element mapped
// through the inverse CDF restricted to [Phi(-2), Phi(2)].
Tensor draw_truncated_normal(const Shape& s, double mean, double stddev, Generator* gen) {
  const double lo = 0.5 * std::erfc(2.0 / std::sqrt(2.0));  // Phi(-2)
  const double hi = 1.0 - lo;
  Tensor t = uniform(s, lo, hi, kHost, gen).contiguous();
  double* p = t.data<double>();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    p[i] = mean + stddev * std::clamp(normal_quantile(p[i]), -2.0, 2.0);
  }
  return t;
}

class ConstantInit final : public Initializer {
 public:
  ConstantInit(std::string class_name, double value) : class_name_(std::move(class_name)), value_(value) {}
  Tensor operator()(const Shape& shape, TensorOptions o) const override {
    return full(shape, value_, {.dtype = dtype_or_default(o), .device = device_or_default(o)});
  }
  std::string class_name() const override { return class_name_; }
  json get_config() const override {
    return class_name_ == "Constant" ? json{{"value", value_}} : json::object();
  }

 private:
  std::string class_name_;
  double value_;
};

class NormalInit final : public RandomBase {
 public:
  NormalInit(bool truncated, RandomNormalOptions o) : RandomBase(o.seed), truncated_(truncated), o_(o) {
    KILN_CHECK(o.stddev >= 0, ValueError, class_name(), ": stddev must be >= 0, got ", o.stddev);
  }
  Tensor operator()(const Shape& shape, TensorOptions o) const override {
    return finish(truncated_ ? draw_truncated_normal(shape, o_.mean, o_.stddev, gen())
                             : draw_normal(shape, o_.mean, o_.stddev, gen()),
                  o);
  }
  std::string class_name() const override { return truncated_ ? "TruncatedNormal" : "RandomNormal"; }
  json get_config() const override {
    return {{"mean", o_.mean}, {"stddev", o_.stddev}, {"seed", seed_json(seed_)}};
  }

 private:
  bool truncated_;
  RandomNormalOptions o_;
};

class UniformInit final : public RandomBase {
 public:
  explicit UniformInit(RandomUniformOptions o) : RandomBase(o.seed), o_(o) {
    KILN_CHECK(o.minval <= o.maxval, ValueError, "RandomUniform: minval ", o.minval, " > maxval ", o.maxval);
  }
  Tensor operator()(const Shape& shape, TensorOptions o) const override {
    return finish(draw_uniform(shape, o_.minval, o_.maxval, gen()), o);
  }
  std::string class_name() const override { return "RandomUniform"; }
  json get_config() const override {
    return {{"minval", o_.minval}, {"maxval", o_.maxval}, {"seed", seed_json(seed_)}};
  }

 private:
  RandomUniformOptions o_;
};

const std::vector<std::string> kModes = {"fan_in", "fan_out", "fan_avg"};
const std::vector<std::string> kDistributions = {"truncated_normal", "untruncated_normal", "uniform"};

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

class VarianceScalingInit final : public RandomBase {
 public:
  // class_name: "VarianceScaling", or a preset ("GlorotUniform", ...) whose config is the seed only.
  VarianceScalingInit(std::string class_name, VarianceScalingOptions o)
      : RandomBase(o.seed), class_name_(std::move(class_name)), o_(std::move(o)) {
    KILN_CHECK(o_.scale > 0, ValueError, class_name_, ": scale must be positive, got ", o_.scale);
    KILN_CHECK(std::ranges::find(kModes, o_.mode) != kModes.end(), ValueError, class_name_,
               ": unknown mode '", o_.mode, "'; valid modes: ", joined(kModes));
    if (o_.distribution == "normal") o_.distribution = "truncated_normal";  // Keras' alias
    KILN_CHECK(std::ranges::find(kDistributions, o_.distribution) != kDistributions.end(), ValueError,
               class_name_, ": unknown distribution '", o_.distribution,
               "'; valid distributions: ", joined(kDistributions));
  }
  Tensor operator()(const Shape& shape, TensorOptions o) const override {
    const Fans f = compute_fans(shape);
    const double n = o_.mode == "fan_in" ? f.fan_in : o_.mode == "fan_out" ? f.fan_out : (f.fan_in + f.fan_out) / 2;
    const double scale = o_.scale / std::max(1.0, n);
    Tensor host;
    if (o_.distribution == "truncated_normal") {
      // 0.879...: the stddev of a standard normal truncated to [-2, 2].
      host = draw_truncated_normal(shape, 0.0, std::sqrt(scale) / 0.87962566103423978, gen());
    } else if (o_.distribution == "untruncated_normal") {
      host = draw_normal(shape, 0.0, std::sqrt(scale), gen());
    } else {
      const double limit = std::sqrt(3.0 * scale);
      host = draw_uniform(shape, -limit, limit, gen());
    }
    return finish(host, o);
  }
  std::string class_name() const override { return class_name_; }
  json get_config() const override {
    if (class_name_ != "VarianceScaling") return {{"seed", seed_json(seed_)}};
    return {{"scale", o_.scale}, {"mode", o_.mode}, {"distribution", o_.distribution}, {"seed", seed_json(seed_)}};
  }

 private:
  std::string class_name_;
  VarianceScalingOptions o_;
};

class OrthogonalInit final : public RandomBase {
 public:
  explicit OrthogonalInit(OrthogonalOptions o) : RandomBase(o.seed), o_(o) {}
  Tensor operator()(const Shape& shape, TensorOptions o) const override;
  std::string class_name() const override { return "Orthogonal"; }
  json get_config() const override { return {{"gain", o_.gain}, {"seed", seed_json(seed_)}}; }

 private:
  OrthogonalOptions o_;
};

// Keras: flat (rows = prod(shape[:-1]), cols = shape[-1]); q of the QR of a normal
// (max, min) matrix with the signs of diag(r) folded in (modified Gram-Schmidt on the
// columns gives that q directly: its r has a positive diagonal); transposed when rows < cols.
Tensor OrthogonalInit::operator()(const Shape& shape, TensorOptions o) const {
  KILN_CHECK(shape.ndim() >= 2, ShapeError, "Orthogonal: needs a shape of rank >= 2, got ", shape);
  const std::int64_t cols = shape[shape.ndim() - 1];
  const std::int64_t rows = shape.numel() / std::max<std::int64_t>(cols, 1);
  const std::int64_t m = std::max(rows, cols), k = std::min(rows, cols);
  Tensor a = draw_normal({m, k}, 0.0, 1.0, gen()).contiguous();
  double* p = a.data<double>();  // (m, k) row-major; column j is p[i * k + j]
  for (std::int64_t j = 0; j < k; ++j) {
    for (std::int64_t prev = 0; prev < j; ++prev) {
      double dot = 0;
      for (std::int64_t i = 0; i < m; ++i) dot += p[i * k + prev] * p[i * k + j];
      for (std::int64_t i = 0; i < m; ++i) p[i * k + j] -= dot * p[i * k + prev];
    }
    double norm = 0;
    for (std::int64_t i = 0; i < m; ++i) norm += p[i * k + j] * p[i * k + j];
    norm = std::sqrt(norm);
    KILN_ASSERT(norm > 0, "Orthogonal: a rank-deficient normal draw");
    for (std::int64_t i = 0; i < m; ++i) p[i * k + j] /= norm;
  }
  Tensor q = rows < cols ? a.t().contiguous() : a;
  Tensor out = q.reshape(shape).contiguous();
  double* po = out.data<double>();
  for (std::int64_t i = 0; i < out.numel(); ++i) po[i] *= o_.gain;
  return finish(out, o);
}

}  // namespace

InitializerPtr Zeros() { return std::make_shared<ConstantInit>("Zeros", 0.0); }
InitializerPtr Ones() { return std::make_shared<ConstantInit>("Ones", 1.0); }
InitializerPtr Constant(double value) { return std::make_shared<ConstantInit>("Constant", value); }
InitializerPtr RandomNormal(RandomNormalOptions o) { return std::make_shared<NormalInit>(false, o); }
InitializerPtr TruncatedNormal(RandomNormalOptions o) { return std::make_shared<NormalInit>(true, o); }
InitializerPtr RandomUniform(RandomUniformOptions o) { return std::make_shared<UniformInit>(o); }
InitializerPtr VarianceScaling(VarianceScalingOptions o) {
  return std::make_shared<VarianceScalingInit>("VarianceScaling", std::move(o));
}
InitializerPtr GlorotUniform(SeedOptions o) {
  return std::make_shared<VarianceScalingInit>("GlorotUniform", VarianceScalingOptions{1.0, "fan_avg", "uniform", o.seed});
}
InitializerPtr GlorotNormal(SeedOptions o) {
  return std::make_shared<VarianceScalingInit>("GlorotNormal", VarianceScalingOptions{1.0, "fan_avg", "truncated_normal", o.seed});
}
InitializerPtr HeUniform(SeedOptions o) {
  return std::make_shared<VarianceScalingInit>("HeUniform", VarianceScalingOptions{2.0, "fan_in", "uniform", o.seed});
}
InitializerPtr HeNormal(SeedOptions o) {
  return std::make_shared<VarianceScalingInit>("HeNormal", VarianceScalingOptions{2.0, "fan_in", "truncated_normal", o.seed});
}
InitializerPtr LecunUniform(SeedOptions o) {
  return std::make_shared<VarianceScalingInit>("LecunUniform", VarianceScalingOptions{1.0, "fan_in", "uniform", o.seed});
}
InitializerPtr LecunNormal(SeedOptions o) {
  return std::make_shared<VarianceScalingInit>("LecunNormal", VarianceScalingOptions{1.0, "fan_in", "truncated_normal", o.seed});
}
InitializerPtr Orthogonal(OrthogonalOptions o) { return std::make_shared<OrthogonalInit>(o); }

namespace {

std::optional<std::uint64_t> seed_of(const json& c) {
  if (!c.contains("seed") || c["seed"].is_null()) return std::nullopt;
  return c["seed"].get<std::uint64_t>();
}
double num(const json& c, const char* key, double fallback) {
  return c.contains(key) && !c[key].is_null() ? c[key].get<double>() : fallback;
}

// Keras' class names -> factory from config. Snake-case identifiers map onto these.
using Factory = std::function<InitializerPtr(const json&)>;
const std::map<std::string, Factory, std::less<>>& factories() {
  static const std::map<std::string, Factory, std::less<>> table = {
      {"Zeros", [](const json&) { return Zeros(); }},
      {"Ones", [](const json&) { return Ones(); }},
      {"Constant", [](const json& c) { return Constant(num(c, "value", 0.0)); }},
      {"RandomNormal", [](const json& c) {
         return RandomNormal({num(c, "mean", 0.0), num(c, "stddev", 0.05), seed_of(c)});
       }},
      {"TruncatedNormal", [](const json& c) {
         return TruncatedNormal({num(c, "mean", 0.0), num(c, "stddev", 0.05), seed_of(c)});
       }},
      {"RandomUniform", [](const json& c) {
         return RandomUniform({num(c, "minval", -0.05), num(c, "maxval", 0.05), seed_of(c)});
       }},
      {"VarianceScaling", [](const json& c) {
         return VarianceScaling({num(c, "scale", 1.0), c.value("mode", std::string("fan_in")),
                                 c.value("distribution", std::string("truncated_normal")), seed_of(c)});
       }},
      {"GlorotUniform", [](const json& c) { return GlorotUniform({seed_of(c)}); }},
      {"GlorotNormal", [](const json& c) { return GlorotNormal({seed_of(c)}); }},
      {"HeUniform", [](const json& c) { return HeUniform({seed_of(c)}); }},
      {"HeNormal", [](const json& c) { return HeNormal({seed_of(c)}); }},
      {"LecunUniform", [](const json& c) { return LecunUniform({seed_of(c)}); }},
      {"LecunNormal", [](const json& c) { return LecunNormal({seed_of(c)}); }},
      {"Orthogonal", [](const json& c) { return Orthogonal({num(c, "gain", 1.0), seed_of(c)}); }},
      {"OrthogonalInitializer", [](const json& c) { return Orthogonal({num(c, "gain", 1.0), seed_of(c)}); }},
  };
  return table;
}

// Keras' string identifiers (snake case of the class names, plus its aliases).
const std::map<std::string, std::string, std::less<>>& identifiers() {
  static const std::map<std::string, std::string, std::less<>> table = {
      {"zeros", "Zeros"}, {"zero", "Zeros"}, {"ones", "Ones"}, {"one", "Ones"},
      {"constant", "Constant"}, {"random_normal", "RandomNormal"}, {"normal", "RandomNormal"},
      {"random_uniform", "RandomUniform"}, {"uniform", "RandomUniform"},
      {"truncated_normal", "TruncatedNormal"}, {"variance_scaling", "VarianceScaling"},
      {"glorot_uniform", "GlorotUniform"}, {"glorot_normal", "GlorotNormal"},
      {"he_uniform", "HeUniform"}, {"he_normal", "HeNormal"},
      {"lecun_uniform", "LecunUniform"}, {"lecun_normal", "LecunNormal"},
      {"orthogonal", "Orthogonal"},
  };
  return table;
}

}  // namespace

InitializerPtr get(std::string_view name) {
  const auto& ids = identifiers();
  if (auto it = ids.find(name); it != ids.end()) return factories().at(it->second)(json::object());
  if (auto it = factories().find(name); it != factories().end()) return it->second(json::object());
  std::string valid;
  for (const auto& [id, cls] : ids) valid += (valid.empty() ? "" : ", ") + id;
  KILN_THROW(ValueError, "initializers.get: unknown initializer '", name, "'; valid names: ", valid);
}

json serialize(const Initializer& initializer) {
  return {{"module", "keras.initializers"},
          {"class_name", initializer.class_name()},
          {"config", initializer.get_config()},
          {"registered_name", nullptr}};
}

InitializerPtr deserialize(const json& j) {
  if (j.is_string()) return get(j.get<std::string>());
  KILN_CHECK(j.is_object() && j.contains("class_name"), FormatError,
             "initializers.deserialize: expected a string or {\"class_name\", \"config\"}, got ", j.dump());
  const std::string cls = j["class_name"].get<std::string>();
  const auto it = factories().find(cls);
  if (it == factories().end()) return get(cls);  // throws, listing the valid names
  return it->second(j.contains("config") ? j["config"] : json::object());
}

InitializerPtr Spec::resolve() const {
  if (object_) return object_;
  KILN_CHECK(!name_.empty(), ValueError, "initializer: none given");
  return get(name_);
}

}  // namespace kiln::initializers
