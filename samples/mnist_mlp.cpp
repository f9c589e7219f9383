// Keras' MNIST MLP: Flatten -> Dense(512, relu) -> Dropout(0.2) -> Dense(512, relu) ->
// Dropout(0.2) -> Dense(10, softmax), RMSprop, batch 128, on the bundled digits (8,000
// train, 2,000 validation) or the full MNIST when --data holds train-* files.
#include <cstdio>

#include "sample_cli.h"

namespace ks = kiln::samples;
namespace kl = kiln::layers;

int main(int argc, char** argv) try {
  ks::Args args{.epochs = 20, .batch_size = 128, .data = KILN_SAMPLES_DATA_DIR "/mnist"};
  CLI::App app{"Trains Keras' MNIST MLP (784 -> 512 -> 512 -> 10 with dropout)."};
  ks::add_common_options(app, args);
  CLI11_PARSE(app, argc, argv);
  kiln::manual_seed(args.seed);
  const kiln::Device device = ks::chosen_device(args);

  const auto [x_train, y_train, x_val, y_val] = ks::load_mnist(args.data, device);

  auto model = kiln::Sequential({
      kl::Flatten({.input_shape = {28, 28, 1}}),
      kl::Dense(512, {.activation = "relu"}),
      kl::Dropout(0.2),
      kl::Dense(512, {.activation = "relu"}),
      kl::Dropout(0.2),
      kl::Dense(10, {.activation = "softmax"}),
  });
  model.to(device);
  model.print_summary();
  model.compile({.optimizer = "rmsprop", .loss = "sparse_categorical_crossentropy",
                 .metrics = {"accuracy"}});
  auto timer = std::make_shared<ks::EpochTimer>();
  model.fit(x_train, y_train,
                                    {.batch_size = args.batch_size, .epochs = args.epochs,
                                     .verbose = ks::verbosity(args), .callbacks = {timer},
                                     .validation_data = {x_val, y_val}});
  const double val_accuracy = model.evaluate(x_val, y_val, {.batch_size = args.batch_size, .verbose = 0}).at("accuracy");
  std::printf("final validation accuracy: %.4f (on %s)\n", val_accuracy, device.str().c_str());
  if (!args.save.empty()) model.save(args.save);
  ks::write_json(args, "mnist_mlp", device, timer->seconds, val_accuracy);
  return ks::accuracy_status(args, val_accuracy);
} catch (const std::exception& e) {
  std::fprintf(stderr, "mnist_mlp: %s\n", e.what());
  return 1;
}
