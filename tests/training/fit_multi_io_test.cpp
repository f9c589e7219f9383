// Model::fit / evaluate / predict with several inputs and outputs (Keras' fit([x_a, x_b],
// [y_a, y_b])): the same steps as the vector forms of train_on_batch / test_on_batch /
// predict_on_batch, validation_split and validation_data over every tensor, a learnable
// two-input two-output task, and the errors for wrong counts and sample counts. Also the
// data layer underneath: Dataset with more_x / more_y, sliced, gathered and loaded.
#include <gtest/gtest.h>

#include "kiln/core/random.h"
#include "kiln/kernels/binary.h"
#include "kiln/kernels/reduce.h"
#include "kiln/kernels/unary.h"
#include "kiln/layers/core.h"
#include "kiln/layers/merge.h"
#include "kiln/training/model.h"

namespace kiln {
namespace {

using layers::Dense;

// Two inputs a (N, 3) and b (N, 2); two outputs: "cls" (2-way softmax, class 1 when
// a0 + b0 > 0) and "reg" (1 unit, target a1 - b1).
struct TwoByTwo {
  Tensor a, b, cls, reg;
  explicit TwoByTwo(std::int64_t n, std::uint64_t seed = 5) {
    Generator gen(seed);
    a = randn({n, 3}, {}, &gen);
    b = randn({n, 2}, {}, &gen);
    const auto av = a.to_vector<float>();
    const auto bv = b.to_vector<float>();
    std::vector<std::int64_t> labels;
    std::vector<float> target;
    for (std::int64_t i = 0; i < n; ++i) {
      labels.push_back(av[i * 3] + bv[i * 2] > 0 ? 1 : 0);
      target.push_back(av[i * 3 + 1] - bv[i * 2 + 1]);
    }
    cls = from_vector(labels, {n});
    reg = from_vector(target, {n, 1});
  }
};

std::unique_ptr<Model> two_by_two_model(std::uint64_t seed) {
  manual_seed(seed);
  auto in_a = layers::Input({3}, {.name = "in_a"});
  auto in_b = layers::Input({2}, {.name = "in_b"});
  layers::KerasTensor h = layers::Concatenate()({in_a, in_b});
  h = Dense(16, {.activation = "relu"})(h);
  layers::KerasTensor cls = Dense(2, {.activation = "softmax", .name = "cls"})(h);
  layers::KerasTensor reg = Dense(1, {.name = "reg"})(h);
  auto model = std::make_unique<Model>(std::vector{in_a, in_b}, std::vector{cls, reg});
  model->compile({.optimizer = optimizers::Adam({.learning_rate = 0.01}),
                  .loss = {"sparse_categorical_crossentropy", "mse"},
                  .metrics = {"accuracy"}});
  return model;
}

std::vector<std::vector<float>> weights_of(const Model& m) {
  std::vector<std::vector<float>> out;
  for (const auto& w : m.get_weights()) out.push_back(w.to_vector<float>());
  return out;
}

TEST(FitMultiIO, LearnsATwoInputTwoOutputTask) {
  TwoByTwo task(512);
  auto model = two_by_two_model(1);
  const History h = model->fit({task.a, task.b}, {task.cls, task.reg}, {.batch_size = 32, .epochs = 10, .verbose = 0});
  const auto& loss = h.history.at("loss");
  ASSERT_EQ(loss.size(), 10u);
  EXPECT_LT(loss.back(), 0.3 * loss.front());
  for (const char* key : {"cls_loss", "reg_loss", "cls_accuracy"}) EXPECT_TRUE(h.history.contains(key)) << key;
  const Logs test = model->evaluate({task.a, task.b}, {task.cls, task.reg}, {.verbose = 0});
  EXPECT_GT(test.at("cls_accuracy"), 0.9);
  EXPECT_LT(test.at("reg_loss"), 0.2);
}

// One unshuffled full batch through fit is exactly one train_on_batch on the same tensors.
TEST(FitMultiIO, OneBatchFitEqualsTrainOnBatch) {
  TwoByTwo task(48);
  auto fitted = two_by_two_model(2);
  auto stepped = two_by_two_model(2);
  ASSERT_EQ(weights_of(*fitted), weights_of(*stepped));
  fitted->fit({task.a, task.b}, {task.cls, task.reg}, {.batch_size = 48, .epochs = 1, .verbose = 0, .shuffle = false});
  stepped->train_on_batch({task.a, task.b}, {task.cls, task.reg});
  EXPECT_EQ(weights_of(*fitted), weights_of(*stepped));
}

TEST(FitMultiIO, EvaluateAndPredictMatchTheBatchForms) {
  TwoByTwo task(40);
  auto model = two_by_two_model(3);
  // Batches of 16, 16, 8: the per-example losses average over all 40, as one batch does.
  const Logs batched = model->evaluate({task.a, task.b}, {task.cls, task.reg}, {.batch_size = 16, .verbose = 0});
  model->reset_metrics();
  const Logs whole = model->test_on_batch({task.a, task.b}, {task.cls, task.reg});
  for (const auto& [k, v] : whole) EXPECT_NEAR(batched.at(k), v, 1e-5) << k;

  const std::vector<Tensor> outs = model->predict_outputs({task.a, task.b}, {.batch_size = 16, .verbose = 0});
  const std::vector<Tensor> direct = model->predict_on_batch({task.a, task.b});
  ASSERT_EQ(outs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(outs[i].shape(), direct[i].shape());
    EXPECT_LT(max(abs(sub(outs[i], direct[i]))).item<double>(), 1e-6);
  }
  // predict (one result) needs a single-output model.
  EXPECT_THROW(model->predict({task.a, task.b}, {.verbose = 0}), ValueError);
}

TEST(FitMultiIO, ValidationSplitAndValidationDataTakeEveryTensor) {
  TwoByTwo task(64);
  auto split = two_by_two_model(4);
  const History hs = split->fit({task.a, task.b}, {task.cls, task.reg},
                                {.batch_size = 16, .epochs = 1, .verbose = 0, .validation_split = 0.25, .shuffle = false});
  // The last quarter, taken before shuffling, is what validation_split evaluates.
  auto given = two_by_two_model(4);
  const History hg = given->fit(
      {task.a.slice(0, 0, 48), task.b.slice(0, 0, 48)}, {task.cls.slice(0, 0, 48), task.reg.slice(0, 0, 48)},
      {.batch_size = 16, .epochs = 1, .verbose = 0,
       .validation_data = ValidationData({task.a.slice(0, 48, 64), task.b.slice(0, 48, 64)},
                                         {task.cls.slice(0, 48, 64), task.reg.slice(0, 48, 64)}),
       .shuffle = false});
  for (const char* key : {"loss", "val_loss", "val_cls_accuracy", "val_reg_loss"}) {
    ASSERT_TRUE(hs.history.contains(key)) << key;
    EXPECT_EQ(hs.history.at(key), hg.history.at(key)) << key;
  }
}

TEST(FitMultiIO, SampleWeightsApplyToEveryOutput) {
  TwoByTwo task(32);
  auto model = two_by_two_model(5);
  std::vector<float> w(32, 0.0F);
  for (int i = 0; i < 16; ++i) w[i] = 1.0F;
  // Zero weight on the second half: the weighted loss is the first half's loss times 16/32.
  const Logs weighted = model->evaluate({task.a, task.b}, {task.cls, task.reg},
                                        {.batch_size = 32, .verbose = 0, .sample_weight = from_vector(w, {32})});
  model->reset_metrics();
  const Logs half = model->test_on_batch({task.a.slice(0, 0, 16), task.b.slice(0, 0, 16)},
                                         {task.cls.slice(0, 0, 16), task.reg.slice(0, 0, 16)});
  EXPECT_NEAR(weighted.at("reg_loss"), 0.5 * half.at("reg_loss"), 1e-5);
  EXPECT_NEAR(weighted.at("cls_loss"), 0.5 * half.at("cls_loss"), 1e-5);
}

TEST(FitMultiIO, BadCountsAndShapesNameTheProblem) {
  TwoByTwo task(16);
  auto model = two_by_two_model(6);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // One input for a two-input model: the message names the model's inputs.
  const std::string one_input = message([&] { model->fit({task.a}, {task.cls, task.reg}, {.verbose = 0}); });
  EXPECT_NE(one_input.find("takes 2 input(s) (in_a, in_b), got 1"), std::string::npos) << one_input;
  EXPECT_THROW(model->fit({task.a, task.b}, {task.cls}, {.verbose = 0}), ValueError);
  EXPECT_THROW(model->evaluate({task.a, task.b}, {task.cls}, {.verbose = 0}), ValueError);
  EXPECT_THROW(model->predict_outputs({task.a}, {.verbose = 0}), ValueError);
  // Inputs with different sample counts.
  const std::string short_b =
      message([&] { model->fit({task.a, task.b.slice(0, 0, 8)}, {task.cls, task.reg}, {.verbose = 0}); });
  EXPECT_NE(short_b.find("x[1] of shape (8, 2)"), std::string::npos) << short_b;
  // A target with a different sample count names it.
  const std::string short_y =
      message([&] { model->fit({task.a, task.b}, {task.cls, task.reg.slice(0, 0, 8)}, {.verbose = 0}); });
  EXPECT_NE(short_y.find("y[1] of shape (8, 1)"), std::string::npos) << short_y;
  // An undefined target.
  EXPECT_THROW(model->fit({task.a, task.b}, {task.cls, Tensor()}, {.verbose = 0}), ValueError);
}

TEST(DatasetMultiIO, SlicesGathersAndLoadsEveryTensorInStep) {
  const Tensor x0 = arange(0, 6, 1, {.dtype = DType::float32}).reshape({6, 1});
  const Tensor x1 = mul(x0, 10.0);
  const Tensor y0 = mul(x0, 100.0);
  const Tensor y1 = mul(x0, 1000.0);
  const data::Dataset ds({x0, x1}, {y0, y1});
  EXPECT_EQ(ds.more_x().size(), 1u);
  EXPECT_EQ(ds.more_y().size(), 1u);
  const data::Dataset tail = ds.slice(2, 6);
  data::DataLoader loader(tail, {.batch_size = 3, .shuffle = true, .seed = 9, .device = Device::cpu(), .prefetch = 1});
  std::int64_t seen = 0;
  while (auto batch = loader.next()) {
    const auto in = batch->inputs();
    const auto tg = batch->targets();
    ASSERT_EQ(in.size(), 2u);
    ASSERT_EQ(tg.size(), 2u);
    const auto v = in[0].to_vector<float>();
    for (std::size_t i = 0; i < v.size(); ++i) {
      EXPECT_GE(v[i], 2.0F);  // the slice
      EXPECT_EQ(in[1].to_vector<float>()[i], 10.0F * v[i]);
      EXPECT_EQ(tg[0].to_vector<float>()[i], 100.0F * v[i]);
      EXPECT_EQ(tg[1].to_vector<float>()[i], 1000.0F * v[i]);
    }
    seen += static_cast<std::int64_t>(v.size());
  }
  EXPECT_EQ(seen, 4);
  EXPECT_THROW(data::Dataset({x0, x1.slice(0, 0, 5)}, {y0}), ShapeError);
  EXPECT_THROW(data::Dataset(std::vector<Tensor>{}, {}), ValueError);
}

}  // namespace
}  // namespace kiln
