// One TPM operation: its work (run on the context's executor thread, no JS values) and
// the Promise it settles (on the JS thread) with the result or a TpmJwtError.
#pragma once

#include <napi.h>

#include <functional>

#include "tss/context.h"
#include "tss/status.h"

class TpmCall {
 public:
  // Runs on the executor thread; touches no JS value.
  using Work = std::function<tss::Status(tss::Context&)>;
  // Runs on the JS thread after a successful Work; builds the resolved value.
  using Result = std::function<Napi::Value(Napi::Env)>;

  TpmCall(Napi::Env env, Work work, Result result);

  Napi::Promise promise() const { return deferred_.Promise(); }
  // The close call runs on a broken context as it is: reconnecting only to close
  // would fail, or wait, when the TPM is still gone.
  void skip_reconnect() { reconnect_ = false; }
  // The call changes nothing in the TPM (a signature, a read): after a lost
  // connection it is tried once more on a new one.
  void set_idempotent() { idempotent_ = true; }

  // Executor thread. Every failure ends in the status. A broken context is reopened
  // first; TPM_RC_RETRY and the like are tried again a few times; a session or
  // objects the TPM dropped are replaced and the work run again, a few rounds (no call did
  // anything lasting before those failures); full slots are waited for; a lost
  // connection marks the context broken (and an idempotent call is tried once more).
  void Execute(tss::Context& ctx);
  // JS thread: resolves or rejects. Safe in an environment that is shutting down.
  void Settle(Napi::Env env);
  // JS thread: rejects a call that never ran (its context closed first).
  void Reject(Napi::Env env, const tss::Status& status);

 private:
  Work work_;
  Result result_;
  tss::Status status_;
  bool reconnect_ = true;
  bool idempotent_ = false;
  Napi::Promise::Deferred deferred_;
};

// Executor thread: `work` with every call's recovery (see TpmCall::Execute), for work that
// runs inside another call: the TPM signature a TLS handshake asks for.
tss::Status RunRecovering(tss::Context& ctx, const TpmCall::Work& work, bool reconnect,
                          bool idempotent);
