// CallbackList: each hook to every callback, in order.
#include "kiln/training/callback.h"

namespace kiln {

void CallbackList::set_model(Model* model) {
  for (const auto& cb : callbacks_) cb->set_model(model);
}

void CallbackList::set_params(const CallbackParams& params) {
  for (const auto& cb : callbacks_) cb->set_params(params);
}

bool CallbackList::wants_batch_logs(LoopMode mode, std::int64_t batch) const {
  bool any = false;
  for (const auto& cb : callbacks_) any = cb->wants_batch_logs(mode, batch) || any;
  return any;
}

void CallbackList::on_train_begin(const Logs& logs) {
  for (const auto& cb : callbacks_) cb->on_train_begin(logs);
}
void CallbackList::on_train_end(const Logs& logs) {
  for (const auto& cb : callbacks_) cb->on_train_end(logs);
}
void CallbackList::on_epoch_begin(int epoch, const Logs& logs) {
  for (const auto& cb : callbacks_) cb->on_epoch_begin(epoch, logs);
}
void CallbackList::on_epoch_end(int epoch, Logs& logs) {
  for (const auto& cb : callbacks_) cb->on_epoch_end(epoch, logs);
}
void CallbackList::on_test_begin(const Logs& logs) {
  for (const auto& cb : callbacks_) cb->on_test_begin(logs);
}
void CallbackList::on_test_end(const Logs& logs) {
  for (const auto& cb : callbacks_) cb->on_test_end(logs);
}
void CallbackList::on_predict_begin(const Logs& logs) {
  for (const auto& cb : callbacks_) cb->on_predict_begin(logs);
}
void CallbackList::on_predict_end(const Logs& logs) {
  for (const auto& cb : callbacks_) cb->on_predict_end(logs);
}

// Begin hooks get no logs (Keras passes none either), so they cost one virtual call each.
void CallbackList::on_train_batch_begin(std::int64_t batch) {
  static const Logs kNone;
  for (const auto& cb : callbacks_) cb->on_train_batch_begin(batch, kNone);
}
void CallbackList::on_test_batch_begin(std::int64_t batch) {
  static const Logs kNone;
  for (const auto& cb : callbacks_) cb->on_test_batch_begin(batch, kNone);
}
void CallbackList::on_predict_batch_begin(std::int64_t batch) {
  static const Logs kNone;
  for (const auto& cb : callbacks_) cb->on_predict_batch_begin(batch, kNone);
}
void CallbackList::on_predict_batch_end(std::int64_t batch) {
  static const Logs kNone;
  for (const auto& cb : callbacks_) cb->on_predict_batch_end(batch, kNone);
}

}  // namespace kiln
