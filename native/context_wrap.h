// The JavaScript `Context` class: one tss::Context and the queue of calls on it.
// Calls run one at a time, in the order they were made, off the JS thread.
#pragma once

#include <napi.h>

#include <deque>

#include "tss/context.h"

class TpmCall;

class ContextWrap : public Napi::ObjectWrap<ContextWrap> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit ContextWrap(const Napi::CallbackInfo& info);
  ~ContextWrap() override;

  tss::Context& context() { return context_; }
  // Called by the running call once it has settled.
  void CallDone();

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value CreateKey(const Napi::CallbackInfo& info);
  Napi::Value ReadPublic(const Napi::CallbackInfo& info);
  Napi::Value Persist(const Napi::CallbackInfo& info);
  Napi::Value Evict(const Napi::CallbackInfo& info);
  Napi::Value Sign(const Napi::CallbackInfo& info);
  Napi::Value SignMessage(const Napi::CallbackInfo& info);
  Napi::Value Probe(const Napi::CallbackInfo& info);
  Napi::Value ParentPublic(const Napi::CallbackInfo& info);
  Napi::Value Import(const Napi::CallbackInfo& info);
  Napi::Value Handles(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // Queues a call, or rejects it with ERR_TPM_CLOSED once close() has been called.
  Napi::Value Submit(TpmCall* call);
  void Schedule(TpmCall* call);
  void RunNext();
  static void Teardown(ContextWrap* self);

  tss::Context context_;
  TpmCall* running_ = nullptr;
  std::deque<TpmCall*> waiting_;
  bool closed_ = false;
  Napi::Env::CleanupHook<void (*)(ContextWrap*), ContextWrap> cleanup_hook_;
};
