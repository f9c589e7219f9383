// Callbacks on their own: CallbackList's lazy batch logs, LambdaCallback, the Python-style
// formatting ModelCheckpoint and CSVLogger use, and the monitor logic of EarlyStopping,
// ReduceLROnPlateau, ModelCheckpoint(save_best_only), TerminateOnNaN and CSVLogger driven
// by scripted logs.
#include "kiln/training/callbacks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kiln/core/random.h"
#include "kiln/layers/core.h"
#include "kiln/training/history.h"
#include "kiln/training/model.h"

namespace kiln {
namespace {

// A scratch path unique to this process (builds may run the suites side by side).
std::filesystem::path scratch_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()));
}

using namespace kiln::callbacks;

std::unique_ptr<Sequential> small_model(double lr = 0.1) {
  manual_seed(21);
  auto m = std::make_unique<Sequential>(std::vector<layers::LayerRef>{layers::Dense(2, {.input_shape = {3}})});
  m->compile({.optimizer = optimizers::SGD({.learning_rate = lr}), .loss = "mse"});
  return m;
}

// Runs on_epoch_end with {monitor: values[e]} for each epoch until the model stops.
int drive(Callback& cb, Model& model, const std::string& monitor, const std::vector<double>& values) {
  cb.set_model(&model);
  model.stop_training = false;
  cb.on_train_begin({});
  int epoch = 0;
  for (; epoch < static_cast<int>(values.size()); ++epoch) {
    cb.on_epoch_begin(epoch, {});
    Logs logs{{monitor, values[static_cast<std::size_t>(epoch)]}};
    cb.on_epoch_end(epoch, logs);
    if (model.stop_training) break;
  }
  cb.on_train_end({});
  return epoch;
}

TEST(CallbackList, ReadsBatchLogsOnlyWhenSomeCallbackWantsThem) {
  struct Quiet : Callback {
    bool wants_batch_logs(LoopMode, std::int64_t) const override { return false; }
    int ends = 0;
    int with_logs = 0;
    void on_train_batch_end(std::int64_t, const Logs& logs) override {
      ++ends;
      with_logs += logs.empty() ? 0 : 1;
    }
  };
  auto quiet = std::make_shared<Quiet>();
  CallbackList list({quiet});
  int reads = 0;
  auto logs = [&] {
    ++reads;
    return Logs{{"loss", 1.0}};
  };
  for (int b = 0; b < 5; ++b) list.on_train_batch_end(b, logs);
  EXPECT_EQ(reads, 0);
  EXPECT_EQ(quiet->ends, 5);
  EXPECT_EQ(quiet->with_logs, 0);
  // A LambdaCallback with a train-batch-end function wants them; one read per batch.
  Logs seen;
  list.add(std::make_shared<LambdaCallback>(LambdaCallbackOptions{
      .on_train_batch_end = [&](std::int64_t, const Logs& l) { seen = l; }}));
  list.on_train_batch_end(5, logs);
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(seen.at("loss"), 1.0);
  list.on_test_batch_end(0, logs);  // no test-batch function: not read
  EXPECT_EQ(reads, 1);
}

TEST(CallbackList, HistoryRecordsEpochLogsInOrder) {
  History h;
  CallbackList list({std::shared_ptr<Callback>(&h, [](Callback*) {})});
  list.on_train_begin();
  for (int e = 0; e < 3; ++e) {
    Logs logs{{"loss", 1.0 / (e + 1)}, {"val_loss", 2.0 / (e + 1)}};
    list.on_epoch_end(e, logs);
  }
  EXPECT_EQ(h.epoch, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(h.history.at("loss"), (std::vector<double>{1.0, 0.5, 1.0 / 3}));
  EXPECT_EQ(h.history.at("val_loss").size(), 3u);
}

TEST(CallbackFormat, PythonFloatRepr) {
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(1.5e-07), "1.5e-07");
  EXPECT_EQ(python_float_repr(123456789.0), "123456789.0");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(0.6312345027923584), "0.6312345027923584");
  EXPECT_EQ(python_float_repr(std::nan("")), "nan");
  EXPECT_EQ(python_float_repr(-INFINITY), "-inf");
}

TEST(CallbackFormat, FormatPathLikePythonStrFormat) {
  const Logs v{{"epoch", 3}, {"val_loss", 0.12345}, {"acc", 0.5}};
  EXPECT_EQ(format_path("ckpt-{epoch:02d}-{val_loss:.2f}.w", v), "ckpt-03-0.12.w");
  EXPECT_EQ(format_path("{epoch}_{val_loss}", v), "3_0.12345");
  EXPECT_EQ(format_path("{{x}}{acc:.1%}", v), "{x}50.0%");
  EXPECT_EQ(format_path("[{epoch:>4}][{epoch:<4}][{epoch:^5}][{acc:+.3f}]", v), "[   3][3   ][  3  ][+0.500]");
  EXPECT_EQ(format_path("{val_loss:.3e}", v), "1.235e-01");  // 0.12345 is 0.1234500000000000041...
  try {
    format_path("{val_acc:.2f}", v);
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(e.message().find("val_acc"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("acc, epoch, val_loss"), std::string::npos) << e.message();
  }
  EXPECT_THROW(format_path("{epoch:02x}", v), ValueError);
  EXPECT_THROW(format_path("{epoch", v), ValueError);
}

TEST(CallbackMode, AutoResolvesByName) {
  EXPECT_EQ(resolve_mode("auto", "val_loss", "t"), Direction::min);
  EXPECT_EQ(resolve_mode("auto", "val_accuracy", "t"), Direction::max);
  EXPECT_EQ(resolve_mode("auto", "mean_absolute_error", "t"), Direction::min);
  EXPECT_EQ(resolve_mode("auto", "auc", "t"), Direction::max);
  EXPECT_EQ(resolve_mode("max", "val_loss", "t"), Direction::max);
  EXPECT_THROW(resolve_mode("auto", "val_score", "t"), ValueError);
  EXPECT_THROW(resolve_mode("largest", "val_loss", "t"), ValueError);
}

TEST(EarlyStopping, StopsAfterPatienceEpochsWithoutImprovement) {
  auto model = small_model();
  EarlyStopping es({.monitor = "val_loss", .patience = 2});
  // best 0.5 at epoch 1; 0.6 and 0.55 do not improve -> stop at epoch 3.
  EXPECT_EQ(drive(es, *model, "val_loss", {1.0, 0.5, 0.6, 0.55, 0.1}), 3);
  EXPECT_EQ(es.stopped_epoch(), 3);
  EXPECT_EQ(es.best(), 0.5);
}

TEST(EarlyStopping, MinDeltaBaselineAndStartFromEpoch) {
  auto model = small_model();
  EarlyStopping delta({.monitor = "val_loss", .min_delta = 0.1, .patience = 1});
  // 0.95 is not 0.1 better than 1.0 -> stop at epoch 1.
  EXPECT_EQ(drive(delta, *model, "val_loss", {1.0, 0.95, 0.5}), 1);
  EarlyStopping base({.monitor = "val_accuracy", .patience = 2, .baseline = 0.9});
  // an improvement below the baseline does not reset the wait: stop at epoch 2.
  EXPECT_EQ(drive(base, *model, "val_accuracy", {0.5, 0.6, 0.55, 0.58}), 2);
  EarlyStopping no_base({.monitor = "val_accuracy", .patience = 2});
  EXPECT_EQ(drive(no_base, *model, "val_accuracy", {0.5, 0.6, 0.55, 0.58}), 3);
  EarlyStopping late({.monitor = "val_loss", .patience = 0, .start_from_epoch = 3});
  EXPECT_EQ(drive(late, *model, "val_loss", {1.0, 2.0, 3.0, 4.0, 5.0}), 4);
  std::ostringstream warn;
  EarlyStopping missing({.monitor = "val_nothing", .mode = "min", .out = &warn});
  EXPECT_EQ(drive(missing, *model, "val_loss", {1.0, 2.0}), 2);
  EXPECT_NE(warn.str().find("val_nothing"), std::string::npos);
}

TEST(EarlyStopping, RestoresBestWeightsAndSaysSo) {
  auto model = small_model();
  std::ostringstream out;
  EarlyStopping es({.monitor = "loss", .patience = 1, .verbose = 1, .restore_best_weights = true, .out = &out});
  es.set_model(model.get());
  es.on_train_begin({});
  std::vector<float> best;
  for (int e = 0; e < 3 && !model->stop_training; ++e) {
    model->set_weights({full({3, 2}, e), full({2}, e)});
    if (e == 0) best = model->get_weights()[0].to_vector<float>();
    Logs logs{{"loss", e == 0 ? 1.0 : 2.0}};
    es.on_epoch_end(e, logs);
  }
  es.on_train_end({});
  EXPECT_EQ(model->get_weights()[0].to_vector<float>(), best);
  EXPECT_EQ(out.str(), "Epoch 2: early stopping\nRestoring model weights from the end of the best epoch: 1.\n");
}

TEST(ReduceLROnPlateau, ReducesAfterPatienceThenCoolsDownAndFloors) {
  auto model = small_model(1.0);
  std::ostringstream out;
  ReduceLROnPlateau cb({.monitor = "val_loss", .factor = 0.5, .patience = 2, .verbose = 1, .cooldown = 1,
                        .min_lr = 0.3, .out = &out});
  cb.set_model(model.get());
  cb.on_train_begin({});
  const std::vector<double> values = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
  std::vector<double> lrs;
  for (int e = 0; e < static_cast<int>(values.size()); ++e) {
    Logs logs{{"val_loss", values[static_cast<std::size_t>(e)]}};
    cb.on_epoch_end(e, logs);
    lrs.push_back(model->optimizer().learning_rate());
    EXPECT_NEAR(logs.at("learning_rate"), e == 0 ? 1.0 : lrs[lrs.size() - 2], 1e-12);
  }
  // epoch 0 sets best; waits 1, 2 -> 0.5 at epoch 2; epoch 3 ends the cooldown and (as
  // Keras) counts a wait; epoch 4 waits 2 -> 0.25, floored to 0.3; then the floor holds.
  EXPECT_EQ(lrs, (std::vector<double>{1.0, 1.0, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3}));
  EXPECT_NE(out.str().find("\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.5.\n"), std::string::npos)
      << out.str();
  EXPECT_THROW(ReduceLROnPlateau({.factor = 1.0}), ValueError);
}

TEST(ModelCheckpoint, SaveBestOnlyWritesImprovementsOnly) {
  auto model = small_model();
  const auto dir = scratch_path("kiln_ckpt_unit_test");
  std::filesystem::remove_all(dir);
  std::ostringstream out;
  ModelCheckpoint cb((dir / "m-{epoch}.safetensors").string(),
                     {.monitor = "val_accuracy", .verbose = 1, .save_best_only = true, .save_weights_only = true,
                      .out = &out});
  drive(cb, *model, "val_accuracy", {0.5, 0.4, 0.7});
  EXPECT_TRUE(std::filesystem::exists(dir / "m-1.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "m-2.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir / "m-3.safetensors"));
  EXPECT_EQ(cb.best(), 0.7);
  EXPECT_NE(out.str().find("Epoch 2: val_accuracy did not improve from 0.50000"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("Epoch 3: val_accuracy improved from 0.50000 to 0.70000, saving model to "),
            std::string::npos) << out.str();
  std::filesystem::remove_all(dir);
  EXPECT_THROW(ModelCheckpoint("x", {.save_freq = std::string("batch")}), ValueError);
}

TEST(ModelCheckpoint, SavesEveryNBatchesWithTheBatchField) {
  auto model = small_model();
  const auto dir = scratch_path("kiln_ckpt_batch_test");
  std::filesystem::remove_all(dir);
  ModelCheckpoint cb((dir / "e{epoch}-b{batch}.safetensors").string(),
                     {.save_weights_only = true, .save_freq = std::int64_t{3}});
  cb.set_model(model.get());
  cb.on_train_begin({});
  cb.on_epoch_begin(0, {});
  for (std::int64_t b = 0; b < 7; ++b) {
    EXPECT_EQ(cb.wants_batch_logs(LoopMode::train, b), b == 2 || b == 5) << b;
    cb.on_train_batch_end(b, Logs{{"loss", 1.0}});
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "e1-b3.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir / "e1-b6.safetensors"));
  std::filesystem::remove_all(dir);
}

TEST(TerminateOnNaN, StopsOnANonFiniteLoss) {
  auto model = small_model();
  std::ostringstream out;
  TerminateOnNaN cb(&out);
  cb.set_model(model.get());
  cb.on_train_begin({});
  cb.on_epoch_begin(4, {});
  cb.on_train_batch_end(0, {{"loss", 0.5}});
  EXPECT_FALSE(model->stop_training);
  cb.on_train_batch_end(1, {{"loss", INFINITY}});
  EXPECT_TRUE(model->stop_training);
  EXPECT_EQ(out.str(), "Batch 1: Invalid loss, terminating training\n");
  EXPECT_EQ(cb.stopped_epoch(), 4);
  EXPECT_TRUE(cb.wants_batch_logs(LoopMode::train, 0));
  EXPECT_FALSE(cb.wants_batch_logs(LoopMode::test, 0));
}

TEST(CSVLogger, WritesSortedKeysAndAppendsWithoutASecondHeader) {
  const auto path = scratch_path("kiln_csv_unit_test.csv");
  std::filesystem::remove(path);
  for (int run = 0; run < 2; ++run) {
    CSVLogger cb(path.string(), {.separator = ";", .append = true});
    cb.on_train_begin({});
    Logs l0{{"val_loss", 0.25}, {"loss", 0.5}};
    cb.on_epoch_end(0, l0);
    Logs l1{{"loss", 1e-05}};
    cb.on_epoch_end(1, l1);
    cb.on_train_end({});
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "epoch;loss;val_loss\n0;0.5;0.25\n1;1e-05;NA\n0;0.5;0.25\n1;1e-05;NA\n");
  std::filesystem::remove(path);
}

TEST(BackupAndRestore, WritesOneFileAndRestoresWeightsOptimizerAndEpoch) {
  const auto dir = scratch_path("kiln_backup_unit_test");
  std::filesystem::remove_all(dir);
  auto model = small_model();
  model->train_on_batch(ones({4, 3}), zeros({4, 2}));  // one step: optimizer state exists
  BackupAndRestore cb(dir);
  cb.set_model(model.get());
  cb.on_train_begin({});
  EXPECT_EQ(cb.restored_epoch(), 0);
  Logs logs;
  cb.on_epoch_end(6, logs);
  ASSERT_TRUE(std::filesystem::exists(cb.backup_path()));
  const auto saved = model->get_weights()[0].to_vector<float>();

  auto other = small_model();  // fresh weights and optimizer
  other->set_weights({zeros({3, 2}), zeros({2})});
  BackupAndRestore restore(dir, {.delete_checkpoint = true});
  restore.set_model(other.get());
  restore.on_train_begin({});
  EXPECT_EQ(restore.restored_epoch(), 7);
  EXPECT_EQ(other->get_weights()[0].to_vector<float>(), saved);
  EXPECT_EQ(other->optimizer().iterations(), 1);
  restore.on_train_end({});
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace kiln
