// The thread a context's TPM calls run on. Calls run one at a time, in the order they
// were submitted, back to back: the TPM never waits for the JS thread between two
// calls, and the JS thread never waits for the TPM. Settled calls are handed back to
// the JS thread in batches through a thread-safe function, which keeps the event loop
// alive only while calls are pending.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tpm_call.h"
#include "tss/context.h"

class Executor {
 public:
  // `on_busy(true)` runs (on the JS thread) when calls become pending, `on_busy(false)`
  // when none are left: the owner holds itself alive in between.
  Executor(Napi::Env env, tss::Context* context, std::function<void(bool)> on_busy);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // JS thread.
  void Submit(Napi::Env env, std::unique_ptr<TpmCall> call);
  // JS thread: the calls that have not started, removed from the queue.
  std::vector<std::unique_ptr<TpmCall>> TakeWaiting();
  // JS thread: stop once everything submitted so far has settled.
  void StopWhenIdle(Napi::Env env);
  // JS thread: lets the running call finish, then ends the thread. With `abandon`
  // (the environment is going away) calls not yet settled are dropped unsettled.
  void Stop(bool abandon = false);

 private:
  static void Drain(Napi::Env env, Napi::Function, Executor* self, void*);
  void Run();

  tss::Context* context_;
  std::function<void(bool)> on_busy_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<TpmCall>> waiting_;  // guarded by mu_
  std::deque<std::unique_ptr<TpmCall>> done_;     // guarded by mu_
  bool stopping_ = false;                         // guarded by mu_
  size_t pending_ = 0;                            // JS thread only
  bool stop_when_idle_ = false;                   // JS thread only
  bool stopped_ = false;                          // JS thread only
  Napi::TypedThreadSafeFunction<Executor, void, Executor::Drain> results_;
  std::thread thread_;
};
