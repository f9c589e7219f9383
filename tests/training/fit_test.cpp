// Model::fit on cpu: learning a synthetic task, History, validation_split semantics,
// class and sample weights, loaders and steps_per_epoch, the progress bar's output, and the
// callbacks inside a real fit (BackupAndRestore resuming bitwise after a crash,
// EarlyStopping restoring the best weights, TerminateOnNaN naming the batch).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "kiln/core/random.h"
#include "kiln/kernels/binary.h"
#include "kiln/layers/core.h"
#include "kiln/training/callbacks.h"
#include "kiln/training/model.h"

namespace kiln {
namespace {

// A scratch path unique to this process (builds may run the suites side by side).
std::filesystem::path scratch_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()));
}

using layers::Dense;

// x ~ N(0, 1) in 4 dims; class 1 when x0 + x1 > 0 (linearly separable).
struct Task {
  Tensor x, y;
  explicit Task(std::int64_t n, std::uint64_t seed = 11) {
    Generator gen(seed);
    x = randn({n, 4}, {}, &gen);
    const auto xs = x.to_vector<float>();
    std::vector<std::int64_t> labels;
    for (std::int64_t i = 0; i < n; ++i) labels.push_back(xs[i * 4] + xs[i * 4 + 1] > 0 ? 1 : 0);
    y = from_vector(labels, {n});
  }
};

std::unique_ptr<Sequential> classifier(std::uint64_t seed) {
  manual_seed(seed);
  return std::make_unique<Sequential>(std::vector<layers::LayerRef>{
      Dense(16, {.activation = "relu", .input_shape = {4}}), Dense(2, {.activation = "softmax"})});
}

std::vector<std::vector<float>> weights_of(const Model& m) {
  std::vector<std::vector<float>> out;
  for (const auto& w : m.get_weights()) out.push_back(w.to_vector<float>());
  return out;
}

TEST(Fit, ReducesTheLossOnALearnableTask) {
  Task task(256);
  auto model = classifier(1);
  model->compile({.optimizer = optimizers::Adam({.learning_rate = 0.01}), .loss = "sparse_categorical_crossentropy",
                  .metrics = {"accuracy"}});
  const History h = model->fit(task.x, task.y, {.batch_size = 32, .epochs = 8, .verbose = 0});
  const auto& loss = h.history.at("loss");
  ASSERT_EQ(loss.size(), 8u);
  EXPECT_LT(loss.back(), 0.5 * loss.front());
  EXPECT_GT(h.history.at("accuracy").back(), 0.9);
  EXPECT_GT(model->evaluate(task.x, task.y, {.verbose = 0}).at("accuracy"), 0.9);
}

TEST(Fit, HistoryHasKerasKeysPerEpoch) {
  Task task(64);
  auto model = classifier(2);
  model->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  const History h = model->fit(task.x, task.y, {.batch_size = 16, .epochs = 3, .verbose = 0, .validation_split = 0.25});
  std::vector<std::string> keys;
  for (const auto& [k, v] : h.history) {
    keys.push_back(k);
    EXPECT_EQ(v.size(), 3u) << k;
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"accuracy", "loss", "val_accuracy", "val_loss"}));
  EXPECT_EQ(h.epoch, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(model->history.history.at("loss"), h.history.at("loss"));
}

// With a zero learning rate the weights never change, so the epoch's training loss and
// val_loss are plain evaluations of the two parts of the data.
TEST(Fit, ValidationSplitTakesTheLastFractionBeforeShuffling) {
  manual_seed(3);
  Sequential model({Dense(1, {.input_shape = {1}})});
  model.compile({.optimizer = optimizers::SGD({.learning_rate = 0.0}), .loss = "mse"});
  std::vector<float> xs, ys;
  for (int i = 0; i < 10; ++i) {
    xs.push_back(static_cast<float>(i));
    ys.push_back(static_cast<float>(i * i));  // the tail has much larger errors
  }
  const Tensor x = from_vector(xs, {10, 1}), y = from_vector(ys, {10, 1});
  // 10 * (1 - 0.25) = 7.5 -> the first 7 train, the last 3 validate (Keras floors).
  const History h = model.fit(x, y, {.batch_size = 4, .epochs = 2, .verbose = 0, .validation_split = 0.25, .shuffle = true});
  const double train = model.evaluate(x.slice(0, 0, 7), y.slice(0, 0, 7), {.verbose = 0}).at("loss");
  const double val = model.evaluate(x.slice(0, 7), y.slice(0, 7), {.verbose = 0}).at("loss");
  const double head = model.evaluate(x.slice(0, 0, 3), y.slice(0, 0, 3), {.verbose = 0}).at("loss");
  for (int e = 0; e < 2; ++e) {
    EXPECT_NEAR(h.history.at("loss")[e], train, 1e-3 * train);
    EXPECT_NEAR(h.history.at("val_loss")[e], val, 1e-4 * val);
  }
  EXPECT_GT(std::abs(val - head), 1.0);  // the check above could tell the ends apart
  // floor(10 * 0.05) = 0 samples left to train on; 1.0 is out of range.
  EXPECT_THROW(model.fit(x, y, {.verbose = 0, .validation_split = 0.95}), ValueError);
  EXPECT_THROW(model.fit(x, y, {.verbose = 0, .validation_split = 1.0}), ValueError);
}

TEST(Fit, ClassWeightEqualsTheMatchingSampleWeight) {
  Task task(40);
  const std::map<std::int64_t, double> cw = {{0, 2.0}, {1, 0.5}};
  std::vector<float> sw;
  for (auto label : task.y.to_vector<std::int64_t>()) sw.push_back(static_cast<float>(cw.at(label)));
  const Tensor sample_weight = from_vector(sw, {40});
  double with_cw, with_sw;
  {
    auto model = classifier(4);
    model->compile({.optimizer = optimizers::SGD({.learning_rate = 0.0}), .loss = "sparse_categorical_crossentropy"});
    with_cw = model->fit(task.x, task.y, {.batch_size = 8, .verbose = 0, .class_weight = cw}).history.at("loss")[0];
  }
  {
    auto model = classifier(4);
    model->compile({.optimizer = optimizers::SGD({.learning_rate = 0.0}), .loss = "sparse_categorical_crossentropy"});
    with_sw = model->fit(task.x, task.y, {.batch_size = 8, .verbose = 0, .sample_weight = sample_weight})
                  .history.at("loss")[0];
    const double plain = model->evaluate(task.x, task.y, {.verbose = 0}).at("loss");
    const double eval_sw = model->evaluate(task.x, task.y, {.verbose = 0, .sample_weight = sample_weight}).at("loss");
    EXPECT_NEAR(eval_sw, with_sw, 1e-5);
    EXPECT_GT(std::abs(plain - with_sw), 1e-3);  // the weights changed the loss
  }
  EXPECT_NEAR(with_cw, with_sw, 1e-6);
  // A Dataset carries its own sample weights.
  auto model = classifier(4);
  model->compile({.optimizer = optimizers::SGD({.learning_rate = 0.0}), .loss = "sparse_categorical_crossentropy"});
  const double with_ds =
      model->fit(data::Dataset(task.x, task.y, sample_weight), {.batch_size = 8, .verbose = 0}).history.at("loss")[0];
  EXPECT_NEAR(with_ds, with_sw, 1e-6);
  EXPECT_THROW(model->fit(data::Dataset(task.x, task.y), {.verbose = 0, .sample_weight = sample_weight}), ValueError);
}

TEST(Fit, AcceptsALoaderAndStepsPerEpochContinueThroughTheData) {
  Task task(64);
  auto model = classifier(5);
  model->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"});
  data::DataLoader loader(data::Dataset(task.x, task.y),
                          {.batch_size = 16, .shuffle = true, .seed = 1, .device = Device::cpu(), .prefetch = 0});
  std::int64_t batches = 0;
  auto counter = std::make_shared<LambdaCallback>(LambdaCallbackOptions{
      .on_train_batch_begin = [&](std::int64_t, const Logs&) { ++batches; }});
  const History h = model->fit(loader, {.epochs = 3, .verbose = 0, .callbacks = {counter},
                                        .validation_data = ValidationData(task.x, task.y), .steps_per_epoch = 3});
  EXPECT_EQ(batches, 9);  // 3 per epoch although the loader has 4
  EXPECT_EQ(model->optimizer().iterations(), 9);
  EXPECT_EQ(h.history.at("val_loss").size(), 3u);
  EXPECT_THROW(model->fit(loader, {.verbose = 0, .validation_split = 0.2}), ValueError);
}

TEST(FitProgress, Verbose2PrintsOneLinePerEpoch) {
  Task task(64);
  auto model = classifier(6);
  model->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  std::ostringstream out;
  model->fit(task.x, task.y, {.batch_size = 16, .epochs = 2, .verbose = 2, .validation_split = 0.25, .out = &out});
  const std::string s = out.str();
  // 48 training samples / 16 = 3 steps.
  EXPECT_EQ(s.find("Epoch 1/2\n3/3 - "), 0u) << s;
  EXPECT_NE(s.find("\nEpoch 2/2\n3/3 - "), std::string::npos) << s;
  EXPECT_NE(s.find("/step - accuracy: "), std::string::npos) << s;
  EXPECT_NE(s.find(" - loss: "), std::string::npos) << s;
  EXPECT_NE(s.find(" - val_accuracy: "), std::string::npos) << s;
  EXPECT_NE(s.find(" - val_loss: "), std::string::npos) << s;
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 4);
}

TEST(FitProgress, Verbose1DrawsTheBarAndOneEpochHasNoHeader) {
  Task task(32);
  auto model = classifier(7);
  model->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"});
  std::ostringstream out;
  model->fit(task.x, task.y, {.batch_size = 8, .epochs = 1, .verbose = 1, .out = &out});
  const std::string s = out.str();
  EXPECT_EQ(s.find("Epoch"), std::string::npos) << s;
  EXPECT_NE(s.find("4/4 \u2501\u2501\u2501\u2501"), std::string::npos) << s;
  EXPECT_EQ(s.back(), '\n');
  std::ostringstream eval_out;
  model->evaluate(task.x, task.y, {.batch_size = 8, .verbose = 2, .out = &eval_out});
  EXPECT_EQ(eval_out.str().find("4/4 - "), 0u) << eval_out.str();
}

// Note: every model below is built with the same seed, and fit draws its shuffle seed from
// the default generator, so runs are reproducible as they would be in separate processes.
// A run that crashes at the start of epoch 3 and is resumed from its backup ends with the
// weights of an uninterrupted 5-epoch run, bitwise. `make` builds the model (seeding first).
void expect_resume_is_bitwise(const std::function<std::unique_ptr<Sequential>()>& make, const std::string& tag) {
  Task task(96);
  const auto dir = scratch_path("kiln_fit_backup_test_" + tag);
  std::filesystem::remove_all(dir);
  auto compile = [](Model& m) {
    m.compile({.optimizer = optimizers::Adam({.learning_rate = 0.01}), .loss = "sparse_categorical_crossentropy"});
  };
  const FitOptions base{.batch_size = 16, .epochs = 5, .verbose = 0};

  auto reference = make();
  compile(*reference);
  reference->fit(task.x, task.y, base);

  struct Crash : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  auto crashed = make();
  compile(*crashed);
  FitOptions crash_opts = base;
  crash_opts.callbacks = {std::make_shared<callbacks::BackupAndRestore>(dir),
                          std::make_shared<LambdaCallback>(LambdaCallbackOptions{.on_epoch_begin = [](int e, const Logs&) {
                            if (e == 3) throw Crash("simulated crash at epoch 3");
                          }})};
  EXPECT_THROW(crashed->fit(task.x, task.y, crash_opts), Crash);
  auto backup = std::make_shared<callbacks::BackupAndRestore>(dir);
  ASSERT_TRUE(std::filesystem::exists(backup->backup_path()));

  auto resumed = make();
  compile(*resumed);
  FitOptions resume_opts = base;
  resume_opts.callbacks = {backup};
  const History h = resumed->fit(task.x, task.y, resume_opts);
  EXPECT_EQ(backup->restored_epoch(), 3);
  EXPECT_EQ(h.epoch, (std::vector<int>{3, 4}));
  EXPECT_EQ(resumed->optimizer().iterations(), reference->optimizer().iterations());
  EXPECT_EQ(weights_of(*resumed), weights_of(*reference));  // bitwise
  EXPECT_FALSE(std::filesystem::exists(backup->backup_path()));  // deleted after a clean end
  std::filesystem::remove_all(dir);
}

TEST(FitCallbacks, BackupAndRestoreResumesWithTheSameWeightsAsAnUninterruptedRun) {
  expect_resume_is_bitwise([] { return classifier(8); }, "plain");
}

// Dropout masks come from the default generator (unseeded) or the layer's own (seeded):
// the backup holds both generators' states, so the resumed epochs draw the same masks.
TEST(FitCallbacks, BackupAndRestoreResumesDropoutModelsBitwise) {
  for (const bool seeded : {false, true}) {
    SCOPED_TRACE(seeded ? "seeded Dropout" : "unseeded Dropout");
    expect_resume_is_bitwise(
        [seeded] {
          manual_seed(12);
          layers::DropoutOptions d;
          if (seeded) d.seed = 77;
          return std::make_unique<Sequential>(std::vector<layers::LayerRef>{
              Dense(16, {.activation = "relu", .input_shape = {4}}), layers::Dropout(0.4, d),
              Dense(2, {.activation = "softmax"})});
        },
        seeded ? "seeded" : "unseeded");
  }
}

// A backup from a model with a seeded Dropout does not restore into one without: the
// error names the mismatch and the model's weights are left as they were.
TEST(FitCallbacks, BackupAndRestoreRefusesAnotherModelsRandomState) {
  Task task(32);
  const auto dir = scratch_path("kiln_fit_backup_mismatch");
  std::filesystem::remove_all(dir);
  auto make = [](bool seeded) {
    manual_seed(13);
    layers::DropoutOptions d;
    if (seeded) d.seed = 5;
    auto m = std::make_unique<Sequential>(std::vector<layers::LayerRef>{
        Dense(8, {.activation = "relu", .input_shape = {4}}), layers::Dropout(0.2, d), Dense(2, {.activation = "softmax"})});
    m->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy"});
    return m;
  };
  auto writer = make(true);
  writer->fit(task.x, task.y,
              {.batch_size = 16, .epochs = 1, .verbose = 0,
               .callbacks = {std::make_shared<callbacks::BackupAndRestore>(dir, callbacks::BackupAndRestoreOptions{
                                                                                     .delete_checkpoint = false})}});
  auto reader = make(false);
  const auto before = weights_of(*reader);
  try {
    reader->fit(task.x, task.y, {.batch_size = 16, .epochs = 2, .verbose = 0,
                                 .callbacks = {std::make_shared<callbacks::BackupAndRestore>(dir)}});
    ADD_FAILURE() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("1 seeded layer(s) but the model has 0"), std::string::npos) << e.what();
  }
  EXPECT_EQ(weights_of(*reader), before);
  std::filesystem::remove_all(dir);
}

TEST(FitCallbacks, EarlyStoppingRestoresTheBestEpochsWeights) {
  Task task(32);
  auto model = classifier(9);
  model->compile({.optimizer = optimizers::SGD({.learning_rate = 0.1}), .loss = "sparse_categorical_crossentropy"});
  // A callback before EarlyStopping writes a scripted metric (logs are mutable, as in Keras)
  // and remembers the weights at each epoch end.
  const std::vector<double> script = {1.0, 0.5, 0.7, 0.8, 0.9, 0.95};
  std::vector<std::vector<std::vector<float>>> snapshots;
  auto scripted = std::make_shared<LambdaCallback>(LambdaCallbackOptions{.on_epoch_end = [&](int e, Logs& logs) {
    logs["val_score"] = script[static_cast<std::size_t>(e)];
    snapshots.push_back(weights_of(*model));
  }});
  auto stopper = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "val_score", .patience = 2, .mode = "min", .restore_best_weights = true});
  const History h = model->fit(task.x, task.y, {.batch_size = 8, .epochs = 6, .verbose = 0, .callbacks = {scripted, stopper}});
  EXPECT_EQ(h.epoch.size(), 4u);  // best at epoch 1; epochs 2 and 3 wait; stop after 3
  EXPECT_EQ(stopper->stopped_epoch(), 3);
  EXPECT_EQ(stopper->best_epoch(), 1);
  EXPECT_EQ(weights_of(*model), snapshots[1]);
  EXPECT_NE(snapshots[3], snapshots[1]);
}

TEST(FitCallbacks, TerminateOnNaNStopsAtTheBatchAndSaysWhich) {
  Task task(32);
  std::vector<float> xs = task.x.to_vector<float>();
  xs[4 * 21] = NAN;  // sample 21 sits in batch 2 (batch_size 8, no shuffle)
  const Tensor x = from_vector(xs, {32, 4});
  auto model = classifier(10);
  model->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"});
  std::ostringstream msg;
  auto stop = std::make_shared<callbacks::TerminateOnNaN>(&msg);
  std::int64_t batches = 0;
  auto counter = std::make_shared<LambdaCallback>(LambdaCallbackOptions{
      .on_train_batch_begin = [&](std::int64_t, const Logs&) { ++batches; }});
  const History h = model->fit(x, task.y, {.batch_size = 8, .epochs = 3, .verbose = 0, .callbacks = {stop, counter},
                                            .shuffle = false});
  EXPECT_EQ(msg.str(), "Batch 2: Invalid loss, terminating training\n");
  EXPECT_EQ(stop->stopped_batch(), 2);
  EXPECT_EQ(stop->stopped_epoch(), 0);
  EXPECT_EQ(batches, 3);
  ASSERT_EQ(h.epoch.size(), 1u);
  EXPECT_TRUE(std::isnan(h.history.at("loss")[0]));
}

TEST(FitCallbacks, SchedulersWriteTheLearningRateIntoHistory) {
  Task task(32);
  auto model = classifier(12);
  model->compile({.optimizer = optimizers::SGD({.learning_rate = 0.1}), .loss = "sparse_categorical_crossentropy"});
  auto sched = std::make_shared<callbacks::LearningRateScheduler>([](int epoch, double lr) {
    return epoch == 0 ? lr : lr * 0.5;
  });
  const History h = model->fit(task.x, task.y, {.batch_size = 8, .epochs = 3, .verbose = 0, .callbacks = {sched}});
  const auto& lr = h.history.at("learning_rate");
  ASSERT_EQ(lr.size(), 3u);
  EXPECT_NEAR(lr[0], 0.1, 1e-12);
  EXPECT_NEAR(lr[1], 0.05, 1e-12);
  EXPECT_NEAR(lr[2], 0.025, 1e-12);
  EXPECT_NEAR(model->optimizer().learning_rate(), 0.025, 1e-12);
}

TEST(FitCallbacks, CsvLoggerAndCheckpointWriteFilesPerEpoch) {
  Task task(40);
  const auto dir = scratch_path("kiln_fit_files_test");
  std::filesystem::remove_all(dir);
  auto model = classifier(13);
  model->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  auto csv = std::make_shared<callbacks::CSVLogger>((dir / "log.csv").string());
  auto ckpt = std::make_shared<callbacks::ModelCheckpoint>(
      (dir / "w-{epoch:02d}-{val_loss:.2f}.safetensors").string(), callbacks::ModelCheckpointOptions{.save_weights_only = true});
  std::filesystem::create_directories(dir);
  const History h = model->fit(task.x, task.y, {.batch_size = 8, .epochs = 2, .verbose = 0, .callbacks = {csv, ckpt},
                                                 .validation_split = 0.2});
  std::ifstream in(dir / "log.csv");
  std::string header, row1, row2, extra;
  std::getline(in, header);
  std::getline(in, row1);
  std::getline(in, row2);
  EXPECT_FALSE(std::getline(in, extra));
  EXPECT_EQ(header, "epoch,accuracy,loss,val_accuracy,val_loss");
  EXPECT_EQ(row1.substr(0, 2), "0,");
  EXPECT_EQ(row2.substr(0, 2), "1,");
  char name[64];
  std::snprintf(name, sizeof(name), "w-02-%.2f.safetensors", h.history.at("val_loss")[1]);
  EXPECT_EQ(ckpt->last_saved(), (dir / name).string());
  EXPECT_TRUE(std::filesystem::exists(dir / name));
  std::filesystem::remove_all(dir);
}

// Model::to between two fits keeps the optimizer's moments (the weights keep their
// identity, as torch's param.data = ...): 1 epoch in float32 + to(float64) + 1 epoch lands
// where 2 epochs in float32 do. Re-compiling instead (fresh moments) lands elsewhere, so
// the comparison can tell the two apart.
TEST(Fit, MovingTheModelBetweenFitsKeepsTheOptimizerState) {
  Task task(128);
  const FitOptions one{.batch_size = 32, .epochs = 1, .verbose = 0, .shuffle = false};
  auto compile = [](Model& m) {
    m.compile({.optimizer = optimizers::Adam({.learning_rate = 0.01}), .loss = "sparse_categorical_crossentropy"});
  };
  auto reference = classifier(8);
  compile(*reference);
  reference->fit(task.x, task.y, {.batch_size = 32, .epochs = 2, .verbose = 0, .shuffle = false});

  auto moved = classifier(8);
  compile(*moved);
  moved->fit(task.x, task.y, one);
  const Tensor kernel = moved->weights()[0].value();  // a handle taken before the move
  moved->to(DType::float64);
  EXPECT_EQ(kernel.dtype(), DType::float64);  // the handle followed the move
  moved->fit(task.x, task.y, one);
  EXPECT_EQ(moved->optimizer().iterations(), 8);

  auto restarted = classifier(8);
  compile(*restarted);
  restarted->fit(task.x, task.y, one);
  compile(*restarted);  // new optimizer state
  restarted->to(DType::float64);
  restarted->fit(task.x, task.y, one);

  double moved_gap = 0, restarted_gap = 0;
  const auto ref = weights_of(*reference), mv = weights_of(*moved), rs = weights_of(*restarted);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    for (std::size_t k = 0; k < ref[i].size(); ++k) {
      moved_gap = std::max(moved_gap, static_cast<double>(std::abs(mv[i][k] - ref[i][k])));
      restarted_gap = std::max(restarted_gap, static_cast<double>(std::abs(rs[i][k] - ref[i][k])));
    }
  }
  EXPECT_LT(moved_gap, 1e-4);
  EXPECT_GT(restarted_gap, 1e-3);
}

}  // namespace
}  // namespace kiln
