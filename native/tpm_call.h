// One TPM operation, run on the libuv pool and settled as a Promise. The context
// wrapper queues these and starts the next only when the previous one has settled,
// because an ESYS context is not thread-safe.
#pragma once

#include <napi.h>

#include <functional>

#include "tss/context.h"
#include "tss/status.h"

class ContextWrap;

class TpmCall : public Napi::AsyncWorker {
 public:
  // Runs on the pool thread; touches no JS value.
  using Work = std::function<tss::Status(tss::Context&)>;
  // Runs on the JS thread after a successful Work; builds the resolved value.
  using Result = std::function<Napi::Value(Napi::Env)>;

  TpmCall(ContextWrap* owner, Work work, Result result);

  Napi::Promise promise() const { return deferred_.Promise(); }
  // Settles a call that never ran (its context closed first). The caller deletes it.
  void RejectUnrun(const tss::Status& status);

 protected:
  void Execute() override;
  void OnOK() override;
  // Execute stores every failure in status_, so this is a backstop that still settles.
  void OnError(const Napi::Error& error) override;

 private:
  ContextWrap* owner_;
  // Keeps the context object (and so its queue) alive while the call is pending.
  Napi::ObjectReference owner_ref_;
  // Resolves or rejects, then lets the context start its next call, whatever happens.
  void Settle();

  Work work_;
  Result result_;
  tss::Status status_;
  Napi::Promise::Deferred deferred_;
};
