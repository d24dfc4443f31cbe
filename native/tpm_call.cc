#include "tpm_call.h"

#include <chrono>
#include <thread>

#include "js_error.h"

TpmCall::TpmCall(Napi::Env env, Work work, Result result)
    : work_(std::move(work)),
      result_(std::move(result)),
      deferred_(Napi::Promise::Deferred::New(env)) {}

namespace {

// How many times a "not now" answer is tried again, and how long to wait first.
constexpr int kTransientRetries = 4;
constexpr auto kTransientBackoff = std::chrono::milliseconds(10);

}  // namespace

void TpmCall::Execute(tss::Context& ctx) {
  try {
    if (ctx.broken() && reconnect_) {
      status_ = ctx.Reopen();
      if (!status_.ok()) return;
    }
    status_ = work_(ctx);
    for (int attempt = 1; attempt <= kTransientRetries && tss::IsTransient(status_); ++attempt) {
      std::this_thread::sleep_for(kTransientBackoff * attempt);
      status_ = work_(ctx);
    }
    if (tss::IsSessionLost(status_)) {
      ctx.DropSession();
      status_ = work_(ctx);
    }
    // This call fails; the next one reconnects.
    if (tss::IsConnectionLost(status_)) ctx.MarkBroken();
  } catch (const std::exception& e) {
    status_ = tss::Status::Fail(tss::ErrorCode::kTpm, e.what());
  }
}

void TpmCall::Settle(Napi::Env env) {
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
}

void TpmCall::Reject(Napi::Env env, const tss::Status& status) {
  status_ = status;
  Settle(env);
}
