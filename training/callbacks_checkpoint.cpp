// The callbacks that write files: ModelCheckpoint and BackupAndRestore.
#include <filesystem>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "kiln/core/error.h"
#include "kiln/core/random.h"
#include "kiln/training/callbacks.h"
#include "kiln/training/model.h"
#include "kiln/training/tensor_file.h"

namespace kiln::callbacks {
namespace {

std::ostream& stream_or_cout(std::ostream* out) { return out != nullptr ? *out : std::cout; }

Model& require_model(Model* model, const char* who) {
  KILN_CHECK(model != nullptr, ValueError, who, ": the callback has no model (fit sets it)");
  return *model;
}

std::string fixed5(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.5f", v);
  return buf;
}

}  // namespace

// ---- ModelCheckpoint ----

ModelCheckpoint::ModelCheckpoint(std::string filepath, ModelCheckpointOptions options)
    : filepath_(std::move(filepath)), options_(std::move(options)) {
  KILN_CHECK(!filepath_.empty(), ValueError, "ModelCheckpoint: filepath is empty");
  if (const auto* every = std::get_if<std::int64_t>(&options_.save_freq)) {
    KILN_CHECK(*every > 0, ValueError, "ModelCheckpoint: save_freq must be \"epoch\" or a positive number of batches, got ",
               *every);
    save_every_ = *every;
  } else {
    const auto& s = std::get<std::string>(options_.save_freq);
    KILN_CHECK(s == "epoch", ValueError, "ModelCheckpoint: save_freq must be \"epoch\" or a positive number of batches, got \"",
               s, "\"");
  }
  // Keras: "auto" maximises monitors with "acc" in the name or starting with "fmeasure".
  if (options_.mode == "min") {
    direction_ = Direction::min;
  } else if (options_.mode == "max") {
    direction_ = Direction::max;
  } else {
    KILN_CHECK(options_.mode == "auto", ValueError, "ModelCheckpoint: mode must be one of 'auto', 'min', 'max'; got '",
               options_.mode, "'");
    const bool maximise = options_.monitor.find("acc") != std::string::npos || options_.monitor.starts_with("fmeasure");
    direction_ = maximise ? Direction::max : Direction::min;
  }
  best_ = options_.initial_value_threshold;
}

bool ModelCheckpoint::batch_due(std::int64_t batch) const {
  return save_every_ > 0 && (batches_seen_ + 1) % save_every_ == 0;
}

bool ModelCheckpoint::wants_batch_logs(LoopMode mode, std::int64_t batch) const {
  return mode == LoopMode::train && batch_due(batch);
}

void ModelCheckpoint::on_epoch_begin(int epoch, const Logs&) { current_epoch_ = epoch; }

void ModelCheckpoint::on_train_batch_end(std::int64_t batch, const Logs& logs) {
  if (save_every_ == 0) return;
  const bool due = batch_due(batch);
  ++batches_seen_;
  if (due) save(current_epoch_, batch, logs);
}

void ModelCheckpoint::on_epoch_end(int epoch, Logs& logs) {
  if (save_every_ == 0) save(epoch, std::nullopt, logs);
}

void ModelCheckpoint::save(int epoch, std::optional<std::int64_t> batch, const Logs& logs) {
  Model& model = require_model(this->model(), "ModelCheckpoint");
  Logs fields = logs;
  fields["epoch"] = epoch + 1;
  if (batch) fields["batch"] = static_cast<double>(*batch + 1);
  const std::string path = format_path(filepath_, fields);
  std::ostream& out = stream_or_cout(options_.out);
  if (options_.save_best_only) {
    const auto it = logs.find(options_.monitor);
    if (it == logs.end()) {
      out << "WARNING: Can save best model only with " << options_.monitor << " available, skipping.\n";
      return;
    }
    const double current = it->second;
    const bool better = !best_ || (direction_ == Direction::min ? current < *best_ : current > *best_);
    if (!better) {
      if (options_.verbose > 0) {
        out << "\nEpoch " << epoch + 1 << ": " << options_.monitor << " did not improve from " << fixed5(*best_) << '\n';
      }
      return;
    }
    if (options_.verbose > 0) {
      out << "\nEpoch " << epoch + 1 << ": " << options_.monitor << " improved from "
          << (best_ ? fixed5(*best_) : std::string(direction_ == Direction::min ? "inf" : "-inf")) << " to "
          << fixed5(current) << ", saving model to " << path << '\n';
    }
    best_ = current;
  } else if (options_.verbose > 0) {
    out << "\nEpoch " << epoch + 1 << ": saving model to " << path << '\n';
  }
  if (options_.save_weights_only) {
    model.save_weights(path);
  } else {
    model.save(path);
  }
  last_saved_ = path;
}

// ---- BackupAndRestore ----
//
// The backup file holds "weights/<variable name>" for every weight, "optimizer/<name>" for
// every entry of Optimizer::state(), and the number of finished epochs in the metadata.

namespace {

// The generators of `layer` and everything under it that own one, depth first.
void collect_generators(layers::Layer& layer, std::vector<Generator*>& out) {
  if (Generator* g = layer.generator()) out.push_back(g);
  for (const layers::LayerRef& l : layer.sublayers()) collect_generators(*l, out);
}

// {"default": [seed, offset], "layers": [[seed, offset], ...]}: the random state a resumed
// epoch needs to draw what the uninterrupted run drew.
std::string random_state(layers::Layer& model) {
  std::vector<Generator*> gens;
  collect_generators(model, gens);
  auto pair = [](const Generator& g) {
    const Generator::Draw s = g.state();
    return nlohmann::json::array({s.seed, s.offset});
  };
  nlohmann::json j{{"default", pair(default_generator())}, {"layers", nlohmann::json::array()}};
  for (const Generator* g : gens) j["layers"].push_back(pair(*g));
  return j.dump();
}

// A saved random state matched to the model's generators (collect_generators order).
struct RandomState {
  Generator::Draw default_state;
  std::vector<Generator*> generators;
  std::vector<Generator::Draw> layer_states;  // one per generator
};

// Parses and checks a saved random state against the model before anything is restored.
RandomState parse_random_state(layers::Layer& model, const std::string& text, const std::string& path) {
  std::vector<Generator*> gens;
  collect_generators(model, gens);
  auto draw = [&](const nlohmann::json& p) {
    KILN_CHECK(p.is_array() && p.size() == 2 && p[0].is_number_unsigned() && p[1].is_number_unsigned(),
               FormatError, "BackupAndRestore: '", path, "' has a malformed random state entry ", p.dump());
    return Generator::Draw{p[0].get<std::uint64_t>(), p[1].get<std::uint64_t>()};
  };
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  KILN_CHECK(j.is_object() && j.contains("default") && j.contains("layers") && j["layers"].is_array(), FormatError,
             "BackupAndRestore: '", path, "' has a malformed random state");
  KILN_CHECK(j["layers"].size() == gens.size(), ValueError, "BackupAndRestore: '", path, "' holds the random state of ",
             j["layers"].size(), " seeded layer(s) but the model has ", gens.size(), " (a different architecture?)");
  RandomState out{draw(j["default"]), std::move(gens), {}};
  for (const auto& p : j["layers"]) out.layer_states.push_back(draw(p));
  return out;
}

void restore_random_state(const RandomState& state) {
  default_generator().set_state(state.default_state);
  for (std::size_t i = 0; i < state.generators.size(); ++i) state.generators[i]->set_state(state.layer_states[i]);
}

}  // namespace

BackupAndRestore::BackupAndRestore(std::filesystem::path backup_dir, BackupAndRestoreOptions options)
    : dir_(std::move(backup_dir)), options_(options) {
  KILN_CHECK(!dir_.empty(), ValueError, "BackupAndRestore: backup_dir is empty");
}

void BackupAndRestore::on_train_begin(const Logs&) {
  restored_epoch_ = 0;
  Model& model = require_model(this->model(), "BackupAndRestore");
  KILN_CHECK(model.built(), ValueError,
             "BackupAndRestore: the model must be built before fit restores into it (give the first layer an "
             "input_shape)");
  const std::filesystem::path path = backup_path();
  if (!std::filesystem::exists(path)) return;
  const TensorFile file = read_tensor_file(path);
  const auto epoch_it = file.metadata.find("epoch");
  KILN_CHECK(epoch_it != file.metadata.end(), FormatError, "BackupAndRestore: '", path.string(),
             "' has no epoch in its metadata");
  // Backups written before kiln saved the random state have none: weights and optimizer
  // still resume, dropout masks then differ from the uninterrupted run's.
  std::optional<RandomState> random;
  if (const auto rng = file.metadata.find("random_state"); rng != file.metadata.end()) {
    random = parse_random_state(model, rng->second, path.string());
  }
  model.assign_named_weights(file, "weights/", path.string());
  // Build the optimizer now (Keras 3 builds it before callbacks start) so the state is in
  // place at once rather than at the first step.
  if (!model.optimizer().built()) model.optimizer().build(model.trainable_parameters());
  std::vector<optimizers::NamedTensor> state;
  const std::string prefix = "optimizer/";
  for (const auto& [name, t] : file.tensors) {
    if (name.starts_with(prefix)) state.emplace_back(name.substr(prefix.size()), t);
  }
  model.optimizer().load_state(state);
  if (random) restore_random_state(*random);
  restored_epoch_ = std::stoi(epoch_it->second);
  model.set_resume_epoch(restored_epoch_);
}

void BackupAndRestore::on_epoch_end(int epoch, Logs&) {
  Model& model = require_model(this->model(), "BackupAndRestore");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, t] : model.named_weights()) tensors.emplace_back("weights/" + name, t);
  for (auto& [name, t] : model.optimizer().state()) tensors.emplace_back("optimizer/" + name, t);
  std::filesystem::create_directories(dir_);
  write_tensor_file(backup_path(), tensors,
                    {{"format", "kiln.backup"}, {"epoch", std::to_string(epoch + 1)}, {"random_state", random_state(model)}});
}

void BackupAndRestore::on_train_end(const Logs&) {
  if (!options_.delete_checkpoint) return;
  std::error_code ec;
  std::filesystem::remove(backup_path(), ec);
  std::filesystem::remove(dir_, ec);  // only when empty: never deletes the caller's files
}

}  // namespace kiln::callbacks
