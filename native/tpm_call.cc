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

void TpmCall::Execute() { status_ = work_(owner_->context()); }

void TpmCall::OnOK() {
  Napi::Env env = Env();
  if (status_.ok()) {
    deferred_.Resolve(result_ ? result_(env) : env.Undefined());
  } else {
    deferred_.Reject(ToJsError(env, status_));
  }
  owner_->CallDone();
}

void TpmCall::RejectUnrun(const tss::Status& status) {
  deferred_.Reject(ToJsError(Env(), status));
}
