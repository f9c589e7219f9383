// Saving a model trained on cuda:0 and resuming it there (a real GPU, or kiln's SIMT
// emulator in SIM builds): the file is written from device memory, and load_model ->
// to(cuda:0) -> training continues with the optimizer's slots, as the uninterrupted model
// does. Sizes stay tiny: SIM runs one fiber per CUDA thread.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "kiln/core/random.h"
#include "kiln/layers/core.h"
#include "kiln/training/saving.h"
#include "kiln/training/tensor_file.h"
#include "kiln_test.h"

namespace kiln {
namespace {

using layers::Dense;

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.detach().to(Device::cpu()).contiguous();
  return {static_cast<const char*>(c.data_ptr()), static_cast<std::size_t>(c.nbytes())};
}

TEST(LoadModelCuda, ResumedOnTheDeviceMatchesTheUninterruptedModel) {
  KILN_REQUIRE_CUDA();
  const Device d("cuda:0");
  manual_seed(13);
  Sequential model({Dense(6, {.activation = "relu", .input_shape = {4}}), Dense(3, {.activation = "softmax"})});
  model.to(d);
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy"});
  Generator gen(17);
  const Tensor x = randn({8, 4}, {.device = Device::cpu()}, &gen);
  const Tensor y = from_vector(std::vector<std::int64_t>{0, 1, 2, 1, 0, 2, 2, 1}, {8}, {.device = Device::cpu()});
  model.train_on_batch(x, y);
  model.train_on_batch(x, y);

  const auto path = std::filesystem::temp_directory_path() / ("kiln_saving_cuda_test." + std::to_string(::getpid()));
  model.save(path.string());
  const TensorFile file = read_tensor_file(path);  // host copies of the device state
  for (const auto& [name, t] : model.optimizer().state()) {
    ASSERT_TRUE(file.find("optimizer/" + name).defined()) << name;
    EXPECT_EQ(bytes_of(file.find("optimizer/" + name)), bytes_of(t)) << name;
  }

  // As a user resumes: load (on the default device), move, continue.
  const auto loaded = load_model(path.string());
  std::filesystem::remove(path);
  loaded->to(d);
  model.train_on_batch(x, y);
  loaded->train_on_batch(x, y);
  EXPECT_EQ(loaded->optimizer().iterations(), 3);
  const auto want = model.named_weights();
  const auto got = loaded->named_weights();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].second.device(), d) << got[i].first;
    EXPECT_EQ(bytes_of(got[i].second), bytes_of(want[i].second)) << got[i].first << " differs after the resumed step";
  }
}

}  // namespace
}  // namespace kiln
