// A ResNet-20 (He et al. 2016, the CIFAR variant: 3 stages of 3 basic blocks, 16/32/64
// filters) built with the functional API: Conv2D, BatchNormalization, ReLU, Add,
// GlobalAveragePooling2D. SGD with momentum 0.9 and a cosine schedule, augmentation on the
// host (pad 4 + random 32x32 crop, horizontal flip). Reads CIFAR-10's binary batches from
// --data; without them it says so and trains on generated CIFAR-shaped data, so throughput
// can still be measured.
#include <cstdio>
#include <filesystem>

#include "sample_cli.h"

namespace ks = kiln::samples;
namespace kl = kiln::layers;
using kiln::layers::KerasTensor;

namespace {

KerasTensor conv_bn(KerasTensor x, std::int64_t filters, std::int64_t kernel, std::int64_t stride, bool relu) {
  x = kl::Conv2D(filters, kernel, {.strides = stride, .padding = "same", .use_bias = false,
                                   .kernel_initializer = "he_normal"})(x);
  x = kl::BatchNormalization()(x);
  return relu ? kl::Activation("relu")(x) : x;
}

// Two 3x3 convolutions with an identity shortcut, or a strided 1x1 projection when the
// shape changes.
KerasTensor basic_block(const KerasTensor& x, std::int64_t filters, std::int64_t stride) {
  KerasTensor h = conv_bn(x, filters, 3, stride, true);
  h = conv_bn(h, filters, 3, 1, false);
  const bool project = stride != 1 || x.shape()[3] != filters;
  const KerasTensor shortcut = project ? conv_bn(x, filters, 1, stride, false) : x;
  return kl::Activation("relu")(kl::Add()({h, shortcut}));
}

kiln::Model resnet20() {
  const KerasTensor input = kl::Input({32, 32, 3});
  KerasTensor x = conv_bn(input, 16, 3, 1, true);
  for (std::int64_t stage = 0; stage < 3; ++stage) {
    const std::int64_t filters = 16 << stage;
    for (int block = 0; block < 3; ++block) x = basic_block(x, filters, block == 0 && stage > 0 ? 2 : 1);
  }
  x = kl::GlobalAveragePooling2D()(x);
  const KerasTensor output = kl::Dense(10, {.activation = "softmax"})(x);
  return kiln::Model(input, output, {.name = "resnet20"});
}

// Uniform uint8 images and random labels in CIFAR-10's shapes (nothing to learn).
kiln::datasets::TrainTest generated_cifar(std::int64_t n_train, std::int64_t n_test) {
  kiln::Generator gen(7);
  auto images = [&](std::int64_t n) {
    return kiln::uniform({n, 32, 32, 3}, 0, 256, {.device = kiln::Device::cpu()}, &gen).to(kiln::DType::uint8);
  };
  auto labels = [&](std::int64_t n) {
    return kiln::uniform({n}, 0, 10, {.device = kiln::Device::cpu()}, &gen).to(kiln::DType::int64);
  };
  return {{images(n_train), labels(n_train)}, {images(n_test), labels(n_test)}};
}

}  // namespace

int main(int argc, char** argv) try {
  ks::Args args{.epochs = 30, .batch_size = 128};
  std::int64_t generated = 5000;
  CLI::App app{"Trains a ResNet-20 on CIFAR-10 (functional API, SGD + cosine decay, augmentation)."};
  ks::add_common_options(app, args);
  app.add_option("--generated-size", generated, "training examples of generated data when --data has no CIFAR-10")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  kiln::manual_seed(args.seed);
  const kiln::Device device = ks::chosen_device(args);

  kiln::datasets::TrainTest data;
  if (!args.data.empty()) {
    data = kiln::datasets::cifar10::load_data(args.data);
  } else {
    std::printf("no CIFAR-10 given (--data DIR with cifar-10-batches-bin): training on %lld generated "
                "CIFAR-shaped images with random labels, for throughput only\n",
                static_cast<long long>(generated));
    data = generated_cifar(generated, generated / 5);
  }

  // Augmentation and scaling on the host, in the loader's background thread.
  const std::vector<double> mean{0.4914 * 255, 0.4822 * 255, 0.4465 * 255};
  const std::vector<double> stddev{0.2470 * 255, 0.2435 * 255, 0.2616 * 255};
  kiln::data::DataLoader train(kiln::data::Dataset(data.train.x, data.train.y),
                               {.batch_size = args.batch_size, .shuffle = true, .seed = args.seed,
                                .device = device,
                                .transforms = {kiln::data::RandomCrop(32, 32, {.padding = 4}),
                                               kiln::data::RandomFlip("horizontal"),
                                               kiln::data::Normalize(mean, stddev)}});
  kiln::data::DataLoader test(kiln::data::Dataset(data.test.x, data.test.y),
                              {.batch_size = 256, .device = device,
                               .transforms = {kiln::data::Normalize(mean, stddev)}});

  kiln::Model model = resnet20();
  model.to(device);
  model.print_summary();
  const std::int64_t steps = train.size() * args.epochs;
  model.compile({.optimizer = kiln::optimizers::SGD(
                     {.learning_rate = kiln::schedules::CosineDecay(0.1, steps), .momentum = 0.9}),
                 .loss = "sparse_categorical_crossentropy",
                 .metrics = {"accuracy"}});
  auto timer = std::make_shared<ks::EpochTimer>();
  model.fit(train, {.epochs = args.epochs, .verbose = ks::verbosity(args),
                                            .callbacks = {timer}, .validation_data = test});
  const double val_accuracy = model.evaluate(test, {.verbose = 0}).at("accuracy");
  std::printf("final test accuracy: %.4f (on %s)\n", val_accuracy, device.str().c_str());
  if (!args.save.empty()) model.save(args.save);
  ks::write_json(args, "cifar10_resnet", device, timer->seconds, val_accuracy);
  return ks::accuracy_status(args, val_accuracy);
} catch (const std::exception& e) {
  std::fprintf(stderr, "cifar10_resnet: %s\n", e.what());
  return 1;
}
