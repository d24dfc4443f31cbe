// The JavaScript `Context` class: one tss::Context and the queue of calls on it.
// Calls run one at a time, in the order they were made, off the JS thread.
#pragma once

#include <napi.h>

#include <memory>

#include "executor.h"
#include "tss/context.h"
#include "tss/sign.h"

class ContextWrap : public Napi::ObjectWrap<ContextWrap> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit ContextWrap(const Napi::CallbackInfo& info);
  ~ContextWrap() override;

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value CreateKey(const Napi::CallbackInfo& info);
  Napi::Value ReadPublic(const Napi::CallbackInfo& info);
  Napi::Value Persist(const Napi::CallbackInfo& info);
  Napi::Value Evict(const Napi::CallbackInfo& info);
  Napi::Value Srk(const Napi::CallbackInfo& info);
  Napi::Value PrepareKey(const Napi::CallbackInfo& info);
  Napi::Value Sign(const Napi::CallbackInfo& info);
  Napi::Value SignMessage(const Napi::CallbackInfo& info);
  Napi::Value Probe(const Napi::CallbackInfo& info);
  Napi::Value ParentPublic(const Napi::CallbackInfo& info);
  Napi::Value Import(const Napi::CallbackInfo& info);
  Napi::Value Handles(const Napi::CallbackInfo& info);
  Napi::Value PolicyDigest(const Napi::CallbackInfo& info);
  Napi::Value Certify(const Napi::CallbackInfo& info);
  Napi::Value ActivateCredential(const Napi::CallbackInfo& info);
  Napi::Value NvRead(const Napi::CallbackInfo& info);
  // tls_calls.cc
  Napi::Value TlsOpen(const Napi::CallbackInfo& info);
  Napi::Value TlsStep(const Napi::CallbackInfo& info);
  Napi::Value TlsRelease(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // sign and signMessage differ only in what the TPM is given: a digest or the message.
  using SignFunction = tss::Status (*)(tss::Context&, const tss::KeyRef&,
                                       const std::vector<uint8_t>&, const tss::SignScheme&,
                                       std::vector<uint8_t>*);
  Napi::Value SubmitSign(const Napi::CallbackInfo& info, SignFunction sign);

  // Whether a call changes the TPM's state: one that does not is retried on a new
  // connection when the old one broke under it.
  enum class Effect { kChanges, kNone };
  // Queues a call, or rejects it with ERR_TPM_CLOSED once close() has been called.
  Napi::Value Submit(TpmCall::Work work, TpmCall::Result result, Effect effect = Effect::kChanges);
  static void Teardown(ContextWrap* self);

  tss::Context context_;
  std::unique_ptr<Executor> executor_;
  bool closed_ = false;
  Napi::Env::CleanupHook<void (*)(ContextWrap*), ContextWrap> cleanup_hook_;
};
