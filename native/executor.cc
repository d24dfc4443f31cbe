#include "executor.h"

Executor::Executor(Napi::Env env, tss::Context* context, std::function<void(bool)> on_busy)
    : context_(context),
      on_busy_(std::move(on_busy)),
      results_(Napi::TypedThreadSafeFunction<Executor, void, Executor::Drain>::New(
          env, "tpm-jwt:results", 0, 1, this)),
      thread_(&Executor::Run, this) {
  // Nothing is pending yet: an idle context must not keep the process alive.
  results_.Unref(env);
}

Executor::~Executor() { Stop(); }

void Executor::Submit(Napi::Env env, std::unique_ptr<TpmCall> call) {
  if (pending_++ == 0) {
    results_.Ref(env);
    on_busy_(true);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_.push_back(std::move(call));
  }
  wake_.notify_one();
}

std::vector<std::unique_ptr<TpmCall>> Executor::TakeWaiting() {
  std::vector<std::unique_ptr<TpmCall>> out;
  std::lock_guard<std::mutex> lock(mu_);
  while (!waiting_.empty()) {
    out.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  pending_ -= out.size();
  if (!out.empty() && pending_ == 0) on_busy_(false);
  return out;
}

void Executor::StopWhenIdle(Napi::Env env) {
  stop_when_idle_ = true;
  if (pending_ == 0) {
    results_.Unref(env);
    Stop();
  }
}

void Executor::Stop(bool abandon) {
  if (stopped_) return;
  stopped_ = true;
  // A call waiting for TPM slots would otherwise hold up the join for seconds.
  context_->RequestStop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (abandon) {
    // Their promises and references belong to an environment being torn down:
    // releasing them now could touch it; the process is ending anyway.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& call : waiting_) call.release();
    for (auto& call : done_) call.release();
    waiting_.clear();
    done_.clear();
  }
  results_.Release();
}

void Executor::Run() {
  for (;;) {
    std::unique_ptr<TpmCall> call;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
      if (stopping_) return;
      call = std::move(waiting_.front());
      waiting_.pop_front();
    }
    call->Execute(*context_);
    bool drained = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      drained = waiting_.empty();
    }
    // Calls queued back to back keep the session and objects loaded; once the queue
    // drains, the TPM's slots go back to other processes, before the last call
    // settles: when a caller's await resolves with nothing else queued, the context
    // holds nothing.
    if (drained) context_->Idle();
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      first = done_.empty();
      done_.push_back(std::move(call));
    }
    // One wake-up per batch: a Drain already queued will take this call too.
    if (first) results_.NonBlockingCall();
  }
}

void Executor::Drain(Napi::Env env, Napi::Function, Executor* self, void*) {
  std::deque<std::unique_ptr<TpmCall>> done;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    done.swap(self->done_);
  }
  if (env == nullptr) {
    // The thread-safe function is being torn down with the environment: see Stop.
    for (auto& call : done) call.release();
    return;
  }
  for (auto& call : done) call->Settle(env);
  self->pending_ -= done.size();
  if (self->pending_ == 0 && !done.empty()) {
    self->on_busy_(false);
    if (self->stop_when_idle_) {
      self->Stop();
    } else {
      self->results_.Unref(env);
    }
  }
}
