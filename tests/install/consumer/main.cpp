// Uses an installed kiln through its umbrella header: makes a tensor on the cpu, prints
// it, and exits non-zero unless it holds the six zeros it should.
#include <kiln/kiln.h>

#include <iostream>

int main() {
  kiln::Tensor t = kiln::zeros({2, 3}, {.device = kiln::Device::cpu()});
  std::cout << t << "\n";
  bool ok = t.numel() == 6 && t.ndim() == 2;
  for (float v : t.to_vector<float>()) ok = ok && v == 0.0f;
  std::cout << (ok ? "consumer: ok" : "consumer: wrong tensor") << "\n";
  return ok ? 0 : 1;
}
