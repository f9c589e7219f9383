// Saving and loading models (training/saving.h): load_model gives back the same kind of
// model (Sequential / functional with several inputs and outputs, shared layers, Add
// merges) with bit-identical weights and outputs in every floating dtype; training resumed
// from a saved file equals training without the interruption, bit for bit, for every
// optimizer; a weight file of another architecture names the first weight that does not
// fit; files that are not model files say what they are.
#include "kiln/training/saving.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "kiln/core/error.h"
#include "kiln/core/random.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/layers/core.h"
#include "kiln/layers/merge.h"
#include "kiln/layers/normalization.h"
#include "kiln/training/tensor_file.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using layers::BatchNormalization;
using layers::Dense;
using layers::LayerRef;

fs::path scratch(const std::string& name) {
  return fs::temp_directory_path() / ("kiln_saving_test." + std::to_string(::getpid()) + "." + name);
}

// Removes the file when the test ends, however it ends.
struct ScratchFile {
  explicit ScratchFile(const std::string& name) : path(scratch(name)) {}
  ~ScratchFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  std::string str() const { return path.string(); }
  fs::path path;
};

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.detach().to(Device::cpu()).contiguous();
  return {static_cast<const char*>(c.data_ptr()), static_cast<std::size_t>(c.nbytes())};
}

// Every weight of `a` and `b` equal in dtype, shape and bytes.
void expect_same_weights(const Model& a, const Model& b) {
  const auto wa = a.named_weights();
  const auto wb = b.named_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wa[i].first, wb[i].first);
    EXPECT_EQ(wa[i].second.dtype(), wb[i].second.dtype()) << wa[i].first;
    EXPECT_EQ(wa[i].second.shape(), wb[i].second.shape()) << wa[i].first;
    EXPECT_EQ(bytes_of(wa[i].second), bytes_of(wb[i].second)) << wa[i].first << " differs";
  }
}

std::string error_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

// Dense -> BatchNormalization -> Dense(softmax): BN's moving statistics are non-trainable
// weights that must survive too.
std::shared_ptr<Model> make_mlp(std::uint64_t seed, std::int64_t hidden = 8) {
  manual_seed(seed);
  return std::make_shared<Sequential>(std::vector<LayerRef>{
      Dense(hidden, {.activation = "relu", .input_shape = {5}}), BatchNormalization(),
      Dense(3, {.activation = "softmax"})});
}

struct Data {
  Tensor x, y;
};
Data classification_data(std::int64_t n) {
  Generator gen(99);
  Data d;
  d.x = randn({n, 5}, {}, &gen);
  d.y = argmax(randn({n, 3}, {}, &gen), -1);  // int64 (n)
  return d;
}

TEST(LoadModel, SequentialComesBackAsSequentialWithBitIdenticalWeightsAndOutputs) {
  auto model = make_mlp(1);
  model->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  const Data d = classification_data(24);
  model->fit(d.x, d.y, {.batch_size = 8, .epochs = 1, .verbose = 0, .seed = 3});  // moves BN's statistics
  ScratchFile f("seq.kiln");
  model->save(f.str());

  const std::shared_ptr<Model> loaded = load_model(f.str());
  ASSERT_NE(std::dynamic_pointer_cast<Sequential>(loaded), nullptr);
  EXPECT_TRUE(loaded->is_sequential());
  EXPECT_EQ(loaded->name(), model->name());
  EXPECT_EQ(loaded->get_config(), model->get_config());
  expect_same_weights(*model, *loaded);
  EXPECT_EQ(bytes_of(loaded->predict(d.x, {.verbose = 0})), bytes_of(model->predict(d.x, {.verbose = 0})));
  ASSERT_TRUE(loaded->compiled());
  EXPECT_EQ(loaded->get_compile_config(), model->get_compile_config());
  EXPECT_EQ(loaded->optimizer().iterations(), 3);
  EXPECT_EQ(loaded->evaluate(d.x, d.y, {.verbose = 0}), model->evaluate(d.x, d.y, {.verbose = 0}));
}

TEST(LoadModel, FunctionalWithTwoInputsTwoOutputsSharedLayerAndAddMerge) {
  manual_seed(2);
  auto a = layers::Input({4}, {.name = "a"});
  auto b = layers::Input({4}, {.name = "b"});
  auto shared = Dense(6, {.activation = "tanh", .name = "shared"});
  auto sa = shared(a);
  auto sb = shared(b);                                    // the same weights on both inputs
  auto sum = layers::Add()({sa, sb});                      // ResNet-style merge
  auto residual = layers::Add()({Dense(6)(sum), sum});
  auto out1 = Dense(2, {.name = "reg"})(residual);
  auto out2 = Dense(1, {.activation = "sigmoid", .name = "cls"})(layers::Concatenate()({residual, sa}));
  Model model({a, b}, {out1, out2});
  model.compile({.optimizer = optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}),
                 .loss = {"mse", "binary_crossentropy"},
                 .metrics = {"mae"},
                 .loss_weights = {1.0, 0.25}});
  Generator gen(4);
  const Tensor xa = randn({10, 4}, {}, &gen), xb = randn({10, 4}, {}, &gen);
  const Tensor ya = randn({10, 2}, {}, &gen);
  const Tensor yb = from_vector(std::vector<float>{0, 1, 1, 0, 1, 0, 0, 1, 1, 1}, {10, 1});
  model.train_on_batch({xa, xb}, {ya, yb});
  ScratchFile f("functional.kiln");
  model.save(f.str());

  const auto loaded = load_model(f.str());
  EXPECT_FALSE(loaded->is_sequential());
  EXPECT_EQ(std::dynamic_pointer_cast<Sequential>(loaded), nullptr);
  EXPECT_EQ(loaded->class_name(), "Functional");
  EXPECT_EQ(loaded->input_names(), model.input_names());
  EXPECT_EQ(loaded->output_names(), model.output_names());
  EXPECT_EQ(loaded->weights().size(), model.weights().size());  // the shared Dense counted once
  expect_same_weights(model, *loaded);
  const auto want = model.predict_on_batch({xa, xb});
  const auto got = loaded->predict_on_batch({xa, xb});
  ASSERT_EQ(got.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(bytes_of(got[i]), bytes_of(want[i])) << "output " << i;
  EXPECT_EQ(loaded->get_compile_config(), model.get_compile_config());
  // The same next step on both: the momentum slots and loss weights came back (the logs
  // run since the last reset, which the saved model has had one batch more of).
  model.reset_metrics();
  const Logs la = model.train_on_batch({xa, xb}, {ya, yb});
  const Logs lb = loaded->train_on_batch({xa, xb}, {ya, yb});
  EXPECT_EQ(la, lb);
  expect_same_weights(model, *loaded);
}

// One optimizer configuration of the resume table.
struct ResumeCase {
  const char* label;
  std::function<optimizers::OptimizerRef()> make;
};

// Train 2 epochs, save, load, train the 3rd == train 3 epochs at once, bit for bit (cpu,
// no dropout): the optimizer's slots, iterations, schedule position and scalar state
// (Nadam's u_product) all come back.
TEST(LoadModel, ResumedTrainingEqualsUninterruptedTrainingForEveryOptimizer) {
  const ResumeCase cases[] = {
      {"adam", [] { return optimizers::OptimizerRef("adam"); }},
      {"sgd nesterov", [] { return optimizers::OptimizerRef(optimizers::SGD({.momentum = 0.9, .nesterov = true})); }},
      {"rmsprop centered",
       [] { return optimizers::OptimizerRef(optimizers::RMSprop({.momentum = 0.5, .centered = true})); }},
      {"adagrad", [] { return optimizers::OptimizerRef("adagrad"); }},
      {"adadelta", [] { return optimizers::OptimizerRef(optimizers::Adadelta({.learning_rate = 1.0})); }},
      {"nadam", [] { return optimizers::OptimizerRef("nadam"); }},
      {"adamw clipnorm", [] { return optimizers::OptimizerRef(optimizers::AdamW({.clipnorm = 0.5})); }},
      {"adam amsgrad schedule", [] {
         return optimizers::OptimizerRef(optimizers::Adam(
             {.learning_rate = schedules::ExponentialDecay(0.01, 3, 0.5), .amsgrad = true, .global_clipnorm = 1.0}));
       }},
  };
  const Data d = classification_data(30);
  const FitOptions fit{.batch_size = 8, .verbose = 0, .seed = 11};
  for (const ResumeCase& c : cases) {
    SCOPED_TRACE(c.label);
    auto straight = make_mlp(5);
    straight->compile({.optimizer = c.make(), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
    FitOptions three = fit;
    three.epochs = 3;
    const History full = straight->fit(d.x, d.y, three);

    auto first = make_mlp(5);
    first->compile({.optimizer = c.make(), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
    FitOptions two = fit;
    two.epochs = 2;
    first->fit(d.x, d.y, two);
    ScratchFile f("resume.kiln");
    first->save(f.str());
    first.reset();

    const auto resumed = load_model(f.str());
    FitOptions last = fit;
    last.epochs = 3;
    last.initial_epoch = 2;
    const History rest = resumed->fit(d.x, d.y, last);
    expect_same_weights(*straight, *resumed);
    EXPECT_EQ(resumed->optimizer().iterations(), straight->optimizer().iterations());
    EXPECT_EQ(rest.history.at("loss").back(), full.history.at("loss").back());
  }
}

// float64, float16 and bfloat16 models come back in their dtype with identical bits.
TEST(LoadModel, FloatingDTypesRoundTripBitExactly) {
  for (const DType dt : {DType::float64, DType::float16, DType::bfloat16}) {
    SCOPED_TRACE(::testing::Message() << dt);
    manual_seed(7);
    auto in = layers::Input({3}, {.dtype = dt});
    auto h = Dense(4, {.activation = "relu", .dtype = dt})(in);
    auto out = BatchNormalization({.dtype = dt})(h);
    Model model(in, out);
    // Weights that use the dtype's range: not representable in float32's bits the same way.
    std::vector<Tensor> values;
    for (const auto& w : model.weights()) values.push_back(kiln::mul(randn(w.shape()), 1e-3).to(dt));
    model.set_weights(values);
    ScratchFile f("dtype.kiln");
    model.save(f.str());
    const auto loaded = load_model(f.str());
    for (const auto& w : loaded->weights()) EXPECT_EQ(w.dtype(), dt) << w.name();
    expect_same_weights(model, *loaded);
    EXPECT_FALSE(loaded->compiled());  // saved uncompiled
  }
}

// A float32 model converted with to(float64) comes back computing in float64.
TEST(LoadModel, ModelConvertedToFloat64ComesBackInFloat64) {
  auto model = make_mlp(8);
  model->to(DType::float64);
  ScratchFile f("to_f64.kiln");
  model->save(f.str());
  const auto loaded = load_model(f.str());
  for (const auto& w : loaded->weights()) EXPECT_EQ(w.dtype(), DType::float64) << w.name();
  expect_same_weights(*model, *loaded);
  const Tensor x = classification_data(6).x.to(DType::float64);
  const Tensor want = model->predict(x, {.verbose = 0});
  const Tensor got = loaded->predict(x, {.verbose = 0});
  EXPECT_EQ(got.dtype(), DType::float64);
  EXPECT_EQ(bytes_of(got), bytes_of(want));
}

TEST(LoadWeights, AnotherArchitectureNamesTheFirstWeightThatDoesNotFit) {
  auto model = make_mlp(1);
  ScratchFile f("weights.safetensors");
  model->save_weights(f.str());

  auto wider = make_mlp(1, /*hidden=*/9);  // dense/kernel is (5, 9), not (5, 8)
  const auto before = wider->get_weights();
  const std::string shape_msg = error_message([&] { wider->load_weights(f.str()); });
  EXPECT_NE(shape_msg.find("'dense/kernel' has shape (5, 9) in the model but (5, 8)"), std::string::npos) << shape_msg;
  EXPECT_THROW(wider->load_weights(f.str()), ShapeError);
  const auto after = wider->get_weights();
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_EQ(bytes_of(after[i]), bytes_of(before[i]));  // untouched

  manual_seed(1);
  Sequential deeper({Dense(8, {.activation = "relu", .input_shape = {5}}), BatchNormalization(), Dense(3),
                     Dense(3)});
  const std::string missing = error_message([&] { deeper.load_weights(f.str()); });
  EXPECT_NE(missing.find("has no weight 'dense_2/kernel'"), std::string::npos) << missing;
  EXPECT_NE(missing.find("(3, 3)"), std::string::npos) << missing;

  Sequential shallower({Dense(8, {.activation = "relu", .input_shape = {5}}), BatchNormalization()});
  const std::string extra = error_message([&] { shallower.load_weights(f.str()); });
  EXPECT_NE(extra.find("holds weight 'dense_1/kernel' of shape (8, 3)"), std::string::npos) << extra;
}

TEST(LoadWeights, ReadsAModelFileWithItsOptimizerState) {
  auto model = make_mlp(1);
  model->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy"});
  const Data d = classification_data(8);
  model->train_on_batch(d.x, d.y);
  ScratchFile f("model_for_weights.kiln");
  model->save(f.str());
  EXPECT_TRUE(read_tensor_file(f.path).find("optimizer/momentum/0").defined());
  auto other = make_mlp(2);
  other->load_weights(f.str());
  expect_same_weights(*model, *other);
}

TEST(LoadModel, FilesThatAreNotModelFilesSaySo) {
  auto model = make_mlp(1);
  ScratchFile weights("w.safetensors");
  model->save_weights(weights.str());
  const std::string msg = error_message([&] { (void)load_model(weights.str()); });
  EXPECT_NE(msg.find("weights only"), std::string::npos) << msg;
  EXPECT_THROW((void)load_model(weights.str()), FormatError);

  ScratchFile foreign("foreign.safetensors");
  write_tensor_file(foreign.path, {{"x", zeros({2})}});
  EXPECT_THROW((void)load_model(foreign.str()), FormatError);

  ScratchFile bad_json("bad_json.kiln");
  write_tensor_file(bad_json.path, {}, {{"format", kModelFileFormat}, {"model_config", "{\"class_name\": "}});
  const std::string json_msg = error_message([&] { (void)load_model(bad_json.str()); });
  EXPECT_NE(json_msg.find("\"model_config\" is not valid JSON"), std::string::npos) << json_msg;

  ScratchFile newer("newer.kiln");
  write_tensor_file(newer.path, {}, {{"format", kModelFileFormat}, {"format_version", "2"}, {"model_config", "{}"}});
  EXPECT_NE(error_message([&] { (void)load_model(newer.str()); }).find("format_version '2'"), std::string::npos);

  // A config naming a layer class nobody registered: the registry's error lists the known ones.
  ScratchFile unknown("unknown.kiln");
  nlohmann::json arch = {{"class_name", model->class_name()}, {"config", model->get_config()}};
  arch["config"]["layers"][1]["class_name"] = "NoSuchLayer";
  write_tensor_file(unknown.path, model->named_weights(),
                    {{"format", kModelFileFormat}, {"model_config", arch.dump()}});
  const std::string unknown_msg = error_message([&] { (void)load_model(unknown.str()); });
  EXPECT_NE(unknown_msg.find("NoSuchLayer"), std::string::npos) << unknown_msg;

  EXPECT_THROW((void)load_model(scratch("does_not_exist.kiln").string()), IOError);
}

// Optimizer slots that do not fit the model fail at load time, naming the entry.
TEST(LoadModel, OptimizerStateOfAnotherModelIsRejectedAtLoad) {
  auto model = make_mlp(1);
  model->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy"});
  const Data d = classification_data(8);
  model->train_on_batch(d.x, d.y);
  ScratchFile f("good.kiln");
  model->save(f.str());
  const TensorFile good = read_tensor_file(f.path);
  // The saved file with one entry replaced (or added).
  auto variant = [&](const std::string& name, const Tensor& value) {
    auto tensors = good.tensors;
    bool replaced = false;
    for (auto& [n, t] : tensors) {
      if (n == name) t = value, replaced = true;
    }
    if (!replaced) tensors.emplace_back(name, value);
    ScratchFile out("variant.kiln");
    write_tensor_file(out.path, tensors, good.metadata);
    return error_message([&] { (void)load_model(out.str()); });
  };
  EXPECT_NE(variant("optimizer/momentum/0", zeros({2, 2})).find("'momentum/0' has shape (2, 2)"), std::string::npos);
  EXPECT_NE(variant("optimizer/momentum/99", zeros({2})).find("'momentum/99' does not name one"), std::string::npos);
  EXPECT_NE(variant("optimizer/momentum/x", zeros({2})).find("'momentum/x' does not name one"), std::string::npos);
  EXPECT_NE(variant("optimizer/accumulator/0", zeros({5, 8})).find("names no slot of Adam"), std::string::npos);
}

TEST(LoadModel, CompileFalseAndCustomLossFunctions) {
  auto model = make_mlp(1);
  model->compile({.optimizer = "adam",
                  .loss = losses::LossRef([](const Tensor&, const Tensor& p) { return kiln::sub(p, p); }, "my_loss")});
  ScratchFile f("custom_loss.kiln");
  model->save(f.str());
  const std::string msg = error_message([&] { (void)load_model(f.str()); });
  EXPECT_NE(msg.find("my_loss"), std::string::npos) << msg;
  EXPECT_NE(msg.find(".compile = false"), std::string::npos) << msg;
  const auto loaded = load_model(f.str(), {.compile = false});
  EXPECT_FALSE(loaded->compiled());
  expect_same_weights(*model, *loaded);
}

TEST(LoadModel, NonTrainableLayersStayFrozen) {
  manual_seed(3);
  auto frozen = Dense(4, {.trainable = false, .input_shape = {2}});
  Sequential model({frozen, Dense(1)});
  ScratchFile f("frozen.kiln");
  model.save(f.str());
  const auto loaded = load_model(f.str());
  EXPECT_FALSE(loaded->get_layer(0)->trainable());
  EXPECT_EQ(loaded->trainable_weights().size(), 2u);
  EXPECT_EQ(loaded->non_trainable_weights().size(), 2u);
}

}  // namespace
}  // namespace kiln
