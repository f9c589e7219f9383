// The seed's model exactly: Dense(64, relu, input_shape 32) -> Dense(64, relu) ->
// Dense(10, softmax), adam, sparse_categorical_crossentropy, accuracy, batch 32, 5 epochs,
// on a generated 60,000 x 32 classification task it can learn: labels are the argmax of a
// fixed random two-layer teacher network, so an MLP of this size reaches high accuracy.
// --export-data DIR writes the data as .npy for bench/train/torch_reference.py.
#include <cstdio>
#include <filesystem>

#include "sample_cli.h"

namespace ks = kiln::samples;
namespace kl = kiln::layers;

namespace {

struct Task {
  kiln::Tensor x_train, y_train, x_test, y_test;
};

// x ~ N(0, 1) (n, 32); y = argmax(relu(x W1) W2) with a teacher drawn from `gen`.
Task make_task(std::int64_t n_train, std::int64_t n_test, std::uint64_t seed) {
  kiln::Generator gen(seed);
  const kiln::Tensor w1 = kiln::randn({32, 32}, {}, &gen);
  const kiln::Tensor w2 = kiln::randn({32, 10}, {}, &gen);
  auto label = [&](const kiln::Tensor& x) {
    return kiln::argmax(kiln::matmul(kiln::relu(kiln::matmul(x, w1)), w2), -1);  // int64 (n)
  };
  Task t;
  t.x_train = kiln::randn({n_train, 32}, {}, &gen);
  t.x_test = kiln::randn({n_test, 32}, {}, &gen);
  t.y_train = label(t.x_train);
  t.y_test = label(t.x_test);
  return t;
}

}  // namespace

int main(int argc, char** argv) try {
  ks::Args args{.epochs = 5, .batch_size = 32};
  std::string export_dir;
  CLI::App app{"Trains the seed's MLP (32 -> 64 -> 64 -> 10) on a generated 60,000 x 32 task."};
  ks::add_common_options(app, args);
  app.add_option("--export-data", export_dir, "also write x_train/y_train/x_test/y_test .npy files here");
  CLI11_PARSE(app, argc, argv);
  kiln::manual_seed(args.seed);
  const kiln::Device device = ks::chosen_device(args);

  const Task task = make_task(60000, 10000, 1234);
  if (!export_dir.empty()) {
    std::filesystem::create_directories(export_dir);
    kiln::data::save_npy(export_dir + "/x_train.npy", task.x_train);
    kiln::data::save_npy(export_dir + "/y_train.npy", task.y_train);
    kiln::data::save_npy(export_dir + "/x_test.npy", task.x_test);
    kiln::data::save_npy(export_dir + "/y_test.npy", task.y_test);
  }

  auto model = kiln::Sequential({
      kl::Dense(64, {.activation = "relu", .input_shape = {32}}),
      kl::Dense(64, {.activation = "relu"}),
      kl::Dense(10, {.activation = "softmax"}),
  });
  model.to(device);
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy",
                 .metrics = {"accuracy"}});
  auto timer = std::make_shared<ks::EpochTimer>();
  model.fit(task.x_train, task.y_train,
            {.batch_size = args.batch_size, .epochs = args.epochs,
             .verbose = ks::verbosity(args), .callbacks = {timer}});
  const kiln::Logs test = model.evaluate(task.x_test, task.y_test, {.verbose = 0});
  std::printf("test accuracy: %.4f, test loss: %.4f (on %s)\n", test.at("accuracy"), test.at("loss"),
              device.str().c_str());
  if (!args.save.empty()) model.save(args.save);
  ks::write_json(args, "seed_mlp", device, timer->seconds, test.at("accuracy"));
  return ks::accuracy_status(args, test.at("accuracy"));
} catch (const std::exception& e) {
  std::fprintf(stderr, "seed_mlp: %s\n", e.what());
  return 1;
}
