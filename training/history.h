// History: what fit returns (Keras' History callback). history maps each logged name
// ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", ...) to its value at
// the end of each epoch, in order; epoch lists the (0-based) epochs that ran.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kiln/training/callback.h"

namespace kiln {

class History : public Callback {
 public:
  std::map<std::string, std::vector<double>> history;
  std::vector<int> epoch;

  bool wants_batch_logs(LoopMode, std::int64_t) const override { return false; }
  void on_train_begin(const Logs&) override { epoch.clear(); }
  void on_epoch_end(int e, Logs& logs) override {
    epoch.push_back(e);
    for (const auto& [name, value] : logs) history[name].push_back(value);
  }
};

}  // namespace kiln
