// Loading whole models, as Keras' keras.models.load_model: the architecture from its
// Keras-style JSON config, the weights, and (when the model was compiled) the optimizer
// with its state, the losses, metrics and loss weights, so that training continues where
// the saved model stopped.
//
//   model.fit(x, y, {.epochs = 2, .seed = 7});
//   model.save("ckpt.kiln");
//   std::shared_ptr<kiln::Model> m = kiln::load_model("ckpt.kiln");
//   m->fit(x, y, {.epochs = 3, .initial_epoch = 2, .seed = 7});  // == fit 3 epochs at once
//
// Note [The model file]
// Model::save writes ONE safetensors file (training/tensor_file.h; readable by PyTorch's
// safetensors.torch.load_file and Hugging Face tools):
//   tensors   "<weight key>"              every weight, keyed as save_weights keys them
//                                         (Model::weight_keys: "dense/kernel", "dense_1/bias")
//             "optimizer/<state entry>"   Optimizer::state() when compiled: "optimizer/iterations",
//                                         "optimizer/learning_rate", "optimizer/momentum/0", ...
//   metadata  "format": "kiln.model", "format_version": "1",
//             "model_config":   {"class_name": "Sequential" | "Functional", "config": get_config()}
//             "compile_config": Model::get_compile_config() (only when compiled)
// So load_weights reads a model file too (it skips the "optimizer/" entries), and a file
// from save_weights is a model file without architecture. Keys never start with
// "optimizer/": weight keys start with a layer class in snake case.
#pragma once

#include <memory>
#include <string>

#include "kiln/training/model.h"

namespace kiln {

// The "format" metadata values and the prefix of optimizer entries (Note [The model file]).
inline constexpr const char* kModelFileFormat = "kiln.model";
inline constexpr const char* kWeightsFileFormat = "kiln.weights";
inline constexpr const char* kModelFileVersion = "1";
inline constexpr const char* kOptimizerPrefix = "optimizer/";

struct LoadModelOptions {
  // Keras' compile argument: restore the compile state (optimizer and its state, losses,
  // metrics, loss weights) when the file holds one. false: the model comes back
  // uncompiled (e.g. a custom loss function, which a file cannot hold).
  bool compile = true;
};

// Keras' load_model: a model saved by Model::save, rebuilt from its config (layers from
// the layer registry, layers/registry.h: register custom layers first), with its weights,
// on default_device(). A Sequential model comes back as a kiln::Sequential, a functional
// one as a functional kiln::Model. IOError when the file cannot be read; FormatError when
// it is not a kiln model file (a weights-only file says to use load_weights) or its
// config is malformed; ValueError / ShapeError naming the first weight that does not fit.
std::shared_ptr<Model> load_model(const std::string& path, LoadModelOptions options = {});

}  // namespace kiln
