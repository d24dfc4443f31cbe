#include "tpm_call.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
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
// How many times a session or objects the TPM no longer has are replaced in one call.
constexpr int kLostRounds = 3;
// Waiting for a free slot: from the first to the longest pause, each with jitter so
// that processes that collided do not retry in step.
constexpr auto kSlotBackoffFirst = std::chrono::milliseconds(2);
constexpr auto kSlotBackoffMost = std::chrono::milliseconds(200);

bool NeedsNewContext(const tss::Status& status) {
  return tss::IsConnectionLost(status) || status.rc() == TSS2_ESYS_RC_BAD_SEQUENCE;
}

std::chrono::microseconds Jittered(std::chrono::microseconds pause) {
  thread_local std::minstd_rand random(std::random_device{}());
  std::uniform_int_distribution<int64_t> factor(50, 150);  // percent
  return pause * factor(random) / 100;
}

tss::Status RunOnce(tss::Context& ctx, const TpmCall::Work& work) {
  tss::Status status = work(ctx);
  // Once the link failed, ESYS answers "wrong order" to every later command of the
  // call: what failed is the link, whatever the last command said. (A failure this
  // library worded itself, with no rc, already says what happened, and so does the
  // TPM's own answer, which a retry would only repeat: a wrong auth value twice.)
  if (!status.ok() && status.rc() != TSS2_RC_SUCCESS && !tss::IsTpmAnswer(status) &&
      ctx.link_failed()) {
    tss::Status cut = ctx.link_failure();
    if (!status.command().empty()) cut.Detail("in " + status.command());
    status = cut;
  }
  return status;
}

tss::Status WaitForSlots(tss::Context& ctx, const TpmCall::Work& work, tss::Status status) {
  if (!tss::IsSlotShortage(status)) return status;
  // Other processes hold the TPM's slots for a moment (no resource manager shares
  // them): give back this context's own, wait, and try again, for a bounded time.
  const auto deadline = std::chrono::steady_clock::now() + ctx.retry_timeout();
  std::chrono::microseconds pause = kSlotBackoffFirst;
  while (tss::IsSlotShortage(status) && std::chrono::steady_clock::now() < deadline) {
    ctx.ReleaseSlots();
    // In short steps, so that stopping the context (close, process or worker exit)
    // does not wait out the whole pause.
    const auto until = std::chrono::steady_clock::now() + Jittered(pause);
    while (std::chrono::steady_clock::now() < until && !ctx.stop_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (ctx.stop_requested()) break;
    pause = std::min<std::chrono::microseconds>(pause * 2, kSlotBackoffMost);
    status = RunOnce(ctx, work);
  }
  if (tss::IsSlotShortage(status)) {
    status.Detail("the TPM stayed out of object or session slots for " +
                  std::to_string(ctx.retry_timeout().count()) +
                  " ms: other processes hold them. A resource manager shares them: use "
                  "/dev/tpmrm0 or tabrmd, or raise retryTimeoutMs");
  }
  return status;
}

}  // namespace

void TpmCall::Execute(tss::Context& ctx) {
  status_ = RunRecovering(ctx, work_, reconnect_, idempotent_);
}

tss::Status RunRecovering(tss::Context& ctx, const TpmCall::Work& work, bool reconnect,
                          bool idempotent) {
  tss::Status status;
  try {
    if (ctx.broken() && reconnect) {
      status = ctx.Reopen();
      if (!status.ok()) return status;
    }
    status = RunOnce(ctx, work);
    for (int attempt = 1; attempt <= kTransientRetries && tss::IsTransient(status); ++attempt) {
      std::this_thread::sleep_for(kTransientBackoff * attempt);
      status = RunOnce(ctx, work);
    }
    // A TPM that restarts, or another process that flushes, between two commands of a
    // call looks like this; it can happen again during the retry (swtpm is reached by a
    // connection per command, so a restart breaks no link), hence a few rounds.
    for (int round = 0; round < kLostRounds; ++round) {
      if (tss::IsSessionLost(status)) {
        ctx.DropSession();
      } else if (tss::IsObjectLost(status)) {
        ctx.ForgetLoadedObjects();
      } else {
        break;
      }
      status = RunOnce(ctx, work);
    }
    status = WaitForSlots(ctx, work, std::move(status));
    // ESYS's own word that it is stuck mid-sequence with no link failure behind it (a
    // response it could not parse) is handled as a lost connection: only a new
    // context gets past it.
    if (NeedsNewContext(status)) {
      ctx.MarkBroken();
      // A call that changes nothing in the TPM is worth one more try on a new
      // connection (swtpm or the resource manager restarted); the others fail here,
      // and the next call reconnects.
      // A TPM that did not answer in time is not asked again: the caller set how long to wait.
      const bool timed_out = status.code() == tss::ErrorCode::kTpmTimeout;
      if (idempotent && reconnect && !timed_out && ctx.Reopen().ok()) status = RunOnce(ctx, work);
      if (NeedsNewContext(status)) ctx.MarkBroken();
    }
  } catch (const std::exception& e) {
    status = tss::Status::Fail(tss::ErrorCode::kTpm, e.what());
  }
  return status;
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
