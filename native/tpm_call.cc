#include "tpm_call.h"

#include "context_wrap.h"
#include "js_error.h"

TpmCall::TpmCall(ContextWrap* owner, Work work, Result result)
    : Napi::AsyncWorker(owner->Env(), "tpm-jwt:tpm"),
      owner_(owner),
      owner_ref_(Napi::Persistent(owner->Value())),
      work_(std::move(work)),
      result_(std::move(result)),
      deferred_(Napi::Promise::Deferred::New(owner->Env())) {}

void TpmCall::Execute() {
  try {
    tss::Context& ctx = owner_->context();
    status_ = work_(ctx);
    if (tss::IsSessionLost(status_)) {
      // Every call is safe to run again: it failed before the TPM did anything lasting.
      ctx.DropSession();
      status_ = work_(ctx);
    }
  } catch (const std::exception& e) {
    status_ = tss::Status::Fail("ERR_TPM", e.what());
  }
}

void TpmCall::OnOK() { Settle(); }

void TpmCall::OnError(const Napi::Error&) {
  if (status_.ok()) status_ = tss::Status::Fail("ERR_TPM", "the TPM call failed");
  Settle();
}

void TpmCall::Settle() {
  Napi::Env env = Env();
  try {
    if (status_.ok()) {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } else {
      deferred_.Reject(ToJsError(env, status_));
    }
  } catch (const Napi::Error&) {
    // The environment can no longer run JavaScript (a worker being terminated):
    // nobody is left to observe the promise.
  }
  try {
    owner_->CallDone();
  } catch (const Napi::Error&) {
    // Same: the next call cannot be queued in a dying environment.
  }
}

void TpmCall::RejectUnrun(const tss::Status& status) {
  deferred_.Reject(ToJsError(Env(), status));
}
