// Model's saved form: weight keys, save_weights / load_weights / save, the model and
// compile configs, and kiln::load_model. The file layout is Note [The model file] in
// saving.h; the safetensors format itself is training/tensor_file.cpp.
#include "kiln/training/saving.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <utility>

#include <nlohmann/json.hpp>

#include "kiln/core/error.h"
#include "kiln/training/model_internal.h"
#include "kiln/training/tensor_file.h"

namespace kiln {

using nlohmann::json;

// ---- weight keys ----

// Note [Weight keys]: files key weights by the layer's class and its ordinal among the
// model's layers of that class ("dense/kernel", "dense_1/kernel"), not by the layer's name:
// automatic names ("dense_7") depend on how many layers the process made before, so two
// instances of one architecture would not match (Keras 3 keys its weight files the same
// way for the same reason).
std::vector<std::string> Model::weight_keys() const {
  std::map<const void*, std::string> key_of;
  std::map<std::string, int> used;
  for (const auto& layer : layers()) {
    const std::string base = layers::to_snake_case(layer->class_name());
    int& count = used[base];
    const std::string layer_key = count == 0 ? base : base + "_" + std::to_string(count);
    ++count;
    const std::string prefix = layer->name() + "/";
    for (const auto& v : layer->weights()) {
      if (key_of.contains(v.id())) continue;  // a shared layer's weights keep their first key
      const std::string suffix = v.name().starts_with(prefix) ? v.name().substr(prefix.size()) : v.name();
      key_of[v.id()] = layer_key + "/" + suffix;
    }
  }
  std::vector<std::string> keys;
  for (const auto& v : weights()) {
    const auto it = key_of.find(v.id());
    keys.push_back(it != key_of.end() ? it->second : v.name());
  }
  return keys;
}

std::vector<std::pair<std::string, Tensor>> Model::named_weights() const {
  const auto ws = weights();
  const auto keys = weight_keys();
  std::vector<std::pair<std::string, Tensor>> out;
  for (std::size_t i = 0; i < ws.size(); ++i) out.emplace_back(keys[i], ws[i].value());
  return out;
}

// ---- weights in and out ----

void Model::assign_named_weights(const TensorFile& file, const std::string& prefix, const std::string& source) {
  const auto ws = weights();
  const auto keys = weight_keys();
  // In the model's order, so the error names the first weight that does not fit.
  for (std::size_t i = 0; i < ws.size(); ++i) {
    const Tensor t = file.find(prefix + keys[i]);
    KILN_CHECK(t.defined(), ValueError, "load_weights: '", source, "' has no weight '", keys[i], "' (the model's ",
               ws[i].name(), " of shape ", ws[i].shape(), "; a different architecture?)");
    KILN_CHECK(t.shape() == ws[i].shape(), ShapeError, "load_weights: weight '", keys[i], "' has shape ",
               ws[i].shape(), " in the model but ", t.shape(), " in '", source, "' (a different architecture?)");
  }
  // Then the file's entries the model lacks (optimizer state is not a weight).
  std::map<std::string, bool> known;
  for (const auto& k : keys) known[prefix + k] = true;
  for (const auto& [name, t] : file.tensors) {
    if (!name.starts_with(prefix) || name.starts_with(kOptimizerPrefix)) continue;
    KILN_CHECK(known.contains(name), ValueError, "load_weights: '", source, "' holds weight '",
               name.substr(prefix.size()), "' of shape ", t.shape(), ", which the model (", ws.size(),
               " weights) does not have (a different architecture?)");
  }
  // Checked everything first: a failed load leaves the model as it was.
  for (std::size_t i = 0; i < ws.size(); ++i) ws[i].assign(file.find(prefix + keys[i]));
}

void Model::save_weights(const std::string& path) const {
  KILN_CHECK(built(), ValueError, "save_weights: the model is not built yet (it has no weights)");
  write_tensor_file(path, named_weights(), {{"format", kWeightsFileFormat}});
}

void Model::load_weights(const std::string& path) {
  KILN_CHECK(built(), ValueError, "load_weights: build the model first (give the first layer an input_shape, "
             "or call it once) so its weights exist");
  assign_named_weights(read_tensor_file(path), "", path);
}

void Model::save(const std::string& path) const {
  KILN_CHECK(built(), ValueError, "save: the model is not built yet (it has no weights)");
  const json arch = {{"class_name", class_name()}, {"config", get_config()}};
  std::map<std::string, std::string> metadata = {
      {"format", kModelFileFormat}, {"format_version", kModelFileVersion}, {"model_config", arch.dump()}};
  auto tensors = named_weights();
  if (compiled_ != nullptr) {
    metadata["compile_config"] = get_compile_config().dump();
    for (auto& [name, t] : compiled_->optimizer->state()) tensors.emplace_back(kOptimizerPrefix + name, t);
  }
  write_tensor_file(path, tensors, metadata);
}

// ---- configs ----

std::shared_ptr<Model> Model::from_config(const json& config, std::string_view class_name) {
  KILN_CHECK(config.is_object(), FormatError, "Model::from_config: a model config is a JSON object, got ",
             config.dump());
  layers::NetworkOptions options{.name = config.contains("name") && config["name"].is_string()
                                             ? config["name"].get<std::string>()
                                             : std::string()};
  // Empty models filled by configure_from_config (Model's sequential-mode constructor is
  // protected, hence new).
  std::shared_ptr<Model> model;
  if (class_name == "Sequential") {
    model = std::make_shared<Sequential>(std::vector<layers::LayerRef>{}, std::move(options));
  } else {
    model.reset(new Model(std::vector<layers::LayerRef>{}, std::move(options)));
  }
  model->configure_from_config(config, class_name);
  return model;
}

json Model::get_compile_config() const {
  if (compiled_ == nullptr) return nullptr;
  const Compiled& c = *compiled_;
  json loss = json::array();
  for (const auto& l : c.losses) loss.push_back(losses::serialize(*l));
  // compile() gives every output the same metric identifiers: output 0's names them.
  json metric_names = json::array();
  if (!c.metrics.empty()) {
    for (const auto& m : c.metrics[0]) metric_names.push_back(m->name());
  }
  return {{"optimizer", optimizers::serialize(*c.optimizer)},
          {"loss", loss},
          {"loss_weights", c.loss_weights},
          {"metrics", metric_names}};
}

void Model::compile_from_config(const json& config) {
  KILN_CHECK(config.is_object() && config.contains("loss"), ValueError,
             "compile_from_config: expected {\"optimizer\", \"loss\", ...}, got ", config.dump());
  CompileOptions options;
  if (config.contains("optimizer") && !config["optimizer"].is_null()) {
    options.optimizer = optimizers::deserialize(config["optimizer"]);
  }
  std::vector<losses::LossRef> per_output;
  const json& loss = config["loss"];
  for (const json& l : loss.is_array() ? loss : json::array({loss})) {
    if (l.is_string()) {
      per_output.emplace_back(l.get<std::string>());
      continue;
    }
    const std::string cls = l.is_object() ? l.value("class_name", std::string()) : std::string();
    KILN_CHECK(cls != "LossFunctionWrapper", ValueError, "compile_from_config: the loss '",
               l.contains("config") ? l["config"].value("name", cls) : cls,
               "' is a C++ function, which a file cannot hold; load with {.compile = false} and compile again");
    per_output.emplace_back(losses::deserialize(l));
  }
  options.loss = LossSpec(std::move(per_output));
  if (config.contains("metrics") && config["metrics"].is_array()) {
    for (const json& m : config["metrics"]) {
      KILN_CHECK(m.is_string(), ValueError, "compile_from_config: metrics are names, got ", m.dump());
      const std::string name = m.get<std::string>();
      try {
        (void)metrics::get(name);  // resolvable by name? (the loss only picks accuracy's kind)
      } catch (const ValueError&) {
        KILN_THROW(ValueError, "compile_from_config: the metric '", name,
                   "' is not a Keras identifier kiln knows (a custom metric object?); load with "
                   "{.compile = false} and compile again");
      }
      options.metrics.emplace_back(name);
    }
  }
  if (config.contains("loss_weights") && config["loss_weights"].is_array()) {
    options.loss_weights = config["loss_weights"].get<std::vector<double>>();
  }
  compile(std::move(options));
}

// ---- load_model ----

namespace {

// The metadata entry `key` parsed as JSON; FormatError naming the file and the field.
json metadata_json(const TensorFile& file, const std::string& key, const std::string& path) {
  const auto it = file.metadata.find(key);
  KILN_CHECK(it != file.metadata.end(), FormatError, "load_model: '", path, "' has no \"", key,
             "\" in its metadata");
  try {
    return json::parse(it->second);
  } catch (const json::exception& e) {
    KILN_THROW(FormatError, "load_model: '", path, "': metadata \"", key, "\" is not valid JSON: ", e.what());
  }
}

void check_format(const TensorFile& file, const std::string& path) {
  const auto format = file.metadata.find("format");
  const std::string what = format == file.metadata.end() ? std::string() : format->second;
  KILN_CHECK(what != kWeightsFileFormat, FormatError, "load_model: '", path,
             "' holds weights only (written by save_weights): build the model and call load_weights");
  KILN_CHECK(what == kModelFileFormat, FormatError, "load_model: '", path,
             "' is not a kiln model file (metadata \"format\" is '", what, "', expected '", kModelFileFormat,
             "'; Model::save writes one)");
  // Files from before the version field are version 1.
  const auto version = file.metadata.find("format_version");
  KILN_CHECK(version == file.metadata.end() || version->second == kModelFileVersion, FormatError, "load_model: '",
             path, "' has format_version '", version->second, "'; this kiln reads version ", kModelFileVersion);
}

std::shared_ptr<Model> model_from_file(const TensorFile& file, const std::string& path) {
  const json arch = metadata_json(file, "model_config", path);
  KILN_CHECK(arch.is_object() && arch.contains("class_name") && arch["class_name"].is_string() &&
                 arch.contains("config"),
             FormatError, "load_model: '", path,
             "': metadata \"model_config\" must be {\"class_name\": ..., \"config\": {...}}");
  const std::string cls = arch["class_name"].get<std::string>();
  KILN_CHECK(cls == "Sequential" || cls == "Functional" || cls == "Model", FormatError, "load_model: '", path,
             "': model_config class_name is '", cls, "'; expected \"Sequential\" or \"Functional\"");
  std::shared_ptr<Model> model;
  try {
    model = Model::from_config(arch["config"], cls);
  } catch (const json::exception& e) {
    KILN_THROW(FormatError, "load_model: '", path, "': malformed model_config: ", e.what());
  }
  KILN_CHECK(model->built(), FormatError, "load_model: '", path,
             "': its model_config does not give the input shape, so the model cannot be built");
  return model;
}

// Optimizer::state() entries stored under kOptimizerPrefix, names without the prefix.
std::vector<optimizers::NamedTensor> optimizer_state(const TensorFile& file) {
  std::vector<optimizers::NamedTensor> state;
  const std::string prefix = kOptimizerPrefix;
  for (const auto& [name, t] : file.tensors) {
    if (name.starts_with(prefix)) state.emplace_back(name.substr(prefix.size()), t);
  }
  return state;
}

// Checks the slot entries ("<slot>/<parameter index>") against the optimizer's slot kinds
// and the model's trainable parameters, so a state that does not fit fails at load time
// rather than at the first step (see load_model for why the optimizer is not built here).
void check_slot_entries(const optimizers::Optimizer& opt, const std::vector<Tensor>& params,
                        const std::vector<optimizers::NamedTensor>& state, const std::string& path) {
  std::vector<std::string> slots;
  for (const auto& s : opt.slot_specs()) slots.push_back(s.name);
  for (const auto& [name, t] : state) {
    const auto slash = name.find('/');
    if (slash == std::string::npos) continue;  // iterations, learning_rate, scalars: load_state checks them
    const std::string slot = name.substr(0, slash);
    const std::string digits = name.substr(slash + 1);
    KILN_CHECK(std::find(slots.begin(), slots.end(), slot) != slots.end(), ValueError, "load_model: '", path,
               "': optimizer entry '", name, "' names no slot of ", opt.class_name(), " with these options");
    std::size_t index = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    KILN_CHECK(ec == std::errc() && end == digits.data() + digits.size() && index < params.size(), ValueError,
               "load_model: '", path, "': optimizer entry '", name, "' does not name one of the model's ",
               params.size(), " trainable parameters");
    KILN_CHECK(t.shape() == params[index].shape(), ShapeError, "load_model: '", path, "': optimizer entry '", name,
               "' has shape ", t.shape(), " but trainable parameter ", index, " has shape ", params[index].shape());
  }
}

}  // namespace

std::shared_ptr<Model> load_model(const std::string& path, LoadModelOptions options) {
  const TensorFile file = read_tensor_file(path);
  check_format(file, path);
  std::shared_ptr<Model> model = model_from_file(file, path);
  model->assign_named_weights(file, "", path);
  if (!options.compile || !file.metadata.contains("compile_config")) return model;

  const json compile_config = metadata_json(file, "compile_config", path);
  try {
    model->compile_from_config(compile_config);
  } catch (const json::exception& e) {
    KILN_THROW(FormatError, "load_model: '", path, "': malformed compile_config: ", e.what());
  }
  // The optimizer is left unbuilt: load_state keeps the slots and the first step packs them
  // onto the device the parameters are on then. Building here would pack on the default
  // device, and a later to(device) gives the variables new tensors, which a repack does not
  // recognise as the parameters it had slots for (Note [Flat parameter buffers]).
  const auto state = optimizer_state(file);
  optimizers::Optimizer& opt = model->optimizer();
  check_slot_entries(opt, model->trainable_parameters(), state, path);
  opt.load_state(state);
  return model;
}

}  // namespace kiln
