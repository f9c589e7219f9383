// Helpers of the optimizer tests: leaf parameters with set gradients, and a float64
// reference of Keras 3's update formulas written out per optimizer (independent of the
// kernels' element math in training/optimizer_math.h).
#pragma once

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/training/optimizers.h"

namespace kiln::test {

// A leaf parameter (requires grad) holding `values` with `shape`.
inline Tensor make_param(const std::vector<double>& values, const Shape& shape, DType dt, Device device) {
  Tensor p = from_vector(values, shape, {.dtype = DType::float64, .device = Device::cpu()}).to(device, dt);
  p.requires_grad_(true);
  return p;
}

inline void set_grad_values(const Tensor& p, const std::vector<double>& g) {
  p.set_grad(from_vector(g, p.shape(), {.dtype = DType::float64, .device = Device::cpu()}).to(p.device(), p.dtype()));
}

// Keras' optimizers as plain float64 loops over one parameter's elements. slots is sized
// on the first call; u_product is Nadam's running product.
struct RefOptimizer {
  std::string kind;  // "sgd", "adam", "rmsprop", "adagrad", "adadelta", "nadam"
  double lr = 0.01, momentum = 0.0, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7, rho = 0.9;
  double initial_accumulator = 0.1;
  bool nesterov = false, amsgrad = false, centered = false;
  double weight_decay = 0.0;  // 0: none
  double clipvalue = 0.0;     // 0: none

  std::vector<std::vector<double>> slots;  // per parameter: (kind-specific) slot arrays
  double u_product = 1.0;

  // One step at Keras' local_step t (1-based) over every parameter; grads already clipped
  // by norm when the test needs it.
  void step(int t, std::vector<std::vector<double>>& params, const std::vector<std::vector<double>>& grads) {
    if (kind == "nadam") u_product *= beta_1 * (1.0 - 0.5 * std::pow(0.96, t));
    if (slots.empty()) slots.resize(params.size() * 3);
    for (std::size_t k = 0; k < params.size(); ++k) {
      auto& p = params[k];
      const std::size_t n = p.size();
      for (int j = 0; j < 3; ++j) {
        if (slots[k * 3 + j].empty()) {
          slots[k * 3 + j].assign(n, kind == "adagrad" && j == 0 ? initial_accumulator : 0.0);
        }
      }
      double* a = slots[k * 3].data();
      double* b = slots[k * 3 + 1].data();
      double* c = slots[k * 3 + 2].data();
      for (std::size_t i = 0; i < n; ++i) {
        double g = grads[k][i];
        if (clipvalue > 0) g = std::min(std::max(g, -clipvalue), clipvalue);
        if (weight_decay != 0.0) p[i] -= p[i] * weight_decay * lr;
        element(t, p[i], g, a[i], b[i], c[i]);
      }
    }
  }

  void element(int t, double& p, double g, double& a, double& b, double& c) const {
    if (kind == "sgd") {
      if (momentum == 0.0) {
        p -= lr * g;
      } else {
        a = momentum * a - lr * g;
        p += nesterov ? momentum * a - lr * g : a;
      }
    } else if (kind == "adam") {
      a += (g - a) * (1 - beta_1);
      b += (g * g - b) * (1 - beta_2);
      double v = b;
      if (amsgrad) v = c = std::max(c, b);
      const double alpha = lr * std::sqrt(1 - std::pow(beta_2, t)) / (1 - std::pow(beta_1, t));
      p -= alpha * a / (std::sqrt(v) + epsilon);
    } else if (kind == "rmsprop") {  // a: velocity, b: momentum, c: average gradient
      a = rho * a + (1 - rho) * g * g;
      double den = a + epsilon;
      if (centered) {
        c = rho * c + (1 - rho) * g;
        den = a - c * c + epsilon;
      }
      const double inc = lr * g / std::sqrt(den);
      if (momentum > 0) {
        b = momentum * b + inc;
        p -= b;
      } else {
        p -= inc;
      }
    } else if (kind == "adagrad") {
      a += g * g;
      p -= lr * g / std::sqrt(a + epsilon);
    } else if (kind == "adadelta") {
      a = rho * a + (1 - rho) * g * g;
      const double delta = -std::sqrt(b + epsilon) * g / std::sqrt(a + epsilon);
      b = rho * b + (1 - rho) * delta * delta;
      p += lr * delta;
    } else if (kind == "nadam") {
      const double u_t = beta_1 * (1 - 0.5 * std::pow(0.96, t));
      const double u_t1 = beta_1 * (1 - 0.5 * std::pow(0.96, t + 1));
      a += (g - a) * (1 - beta_1);
      b += (g * g - b) * (1 - beta_2);
      const double m_hat = u_t1 * a / (1 - u_product * u_t1) + (1 - u_t) * g / (1 - u_product);
      const double v_hat = b / (1 - std::pow(beta_2, t));
      p -= lr * m_hat / (std::sqrt(v_hat) + epsilon);
    }
  }
};

}  // namespace kiln::test
