// Keras' classic MNIST convnet (keras.io/examples/vision/mnist_convnet), trained on the
// bundled 10,000 real MNIST digits (8,000 train, 2,000 validation: Keras'
// validation_split=0.2), or on the full 60,000 when --data holds train-* files.
//   Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) -> MaxPooling2D(2)
//   -> Flatten -> Dropout(0.5) -> Dense(10, softmax); adam, batch 128.
// It saves the model, loads it back and predicts, as a user would.
#include <cstdio>
#include <iostream>

#include "sample_cli.h"

namespace ks = kiln::samples;
namespace kl = kiln::layers;

int main(int argc, char** argv) try {
  ks::Args args{.epochs = 10, .batch_size = 128, .data = KILN_SAMPLES_DATA_DIR "/mnist",
                .save = "mnist_cnn.kiln"};
  CLI::App app{"Trains Keras' MNIST convnet on real MNIST digits."};
  ks::add_common_options(app, args);
  CLI11_PARSE(app, argc, argv);
  kiln::manual_seed(args.seed);
  const kiln::Device device = ks::chosen_device(args);

  // The bundled directory has only the 10,000 test digits: 8,000 train, 2,000 validate.
  const auto [x_train, y_train, x_val, y_val] = ks::load_mnist(args.data, device);

  auto model = kiln::Sequential({
      kl::Conv2D(32, 3, {.activation = "relu", .input_shape = {28, 28, 1}}),
      kl::MaxPooling2D(2),
      kl::Conv2D(64, 3, {.activation = "relu"}),
      kl::MaxPooling2D(2),
      kl::Flatten(),
      kl::Dropout(0.5),
      kl::Dense(10, {.activation = "softmax"}),
  });
  model.to(device);
  model.print_summary();
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy",
                 .metrics = {"accuracy"}});

  auto timer = std::make_shared<ks::EpochTimer>();
  model.fit(x_train, y_train,
                                    {.batch_size = args.batch_size, .epochs = args.epochs,
                                     .verbose = ks::verbosity(args), .callbacks = {timer},
                                     .validation_data = {x_val, y_val}});
  const double val_accuracy = model.evaluate(x_val, y_val, {.batch_size = args.batch_size, .verbose = 0}).at("accuracy");
  std::printf("final validation accuracy: %.4f\n", val_accuracy);

  if (!args.save.empty()) {
    model.save(args.save);
    // Loading it back, as another program would, and predicting the first validation digits.
    auto loaded = kiln::load_model(args.save);
    loaded->to(device);
    const kiln::Tensor probs = loaded->predict(x_val.slice(0, 0, 8), {.verbose = 0});
    const std::vector<std::int64_t> guess = kiln::argmax(probs, -1).to_vector<std::int64_t>();
    const std::vector<std::int64_t> truth = y_val.slice(0, 0, 8).to_vector<std::int64_t>();
    std::printf("saved to %s; loaded it back: predicted", args.save.c_str());
    for (auto g : guess) std::printf(" %lld", static_cast<long long>(g));
    std::printf(" (labels");
    for (auto t : truth) std::printf(" %lld", static_cast<long long>(t));
    std::printf(")\n");
  }
  ks::write_json(args, "mnist_cnn", device, timer->seconds, val_accuracy);
  return ks::accuracy_status(args, val_accuracy);
} catch (const std::exception& e) {
  std::fprintf(stderr, "mnist_cnn: %s\n", e.what());
  return 1;
}
