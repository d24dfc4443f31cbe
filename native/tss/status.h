// The outcome of a TSS call: success, or the TSS2_RC, the step that failed and the
// stable error code (ARCHITECTURE.md) the JavaScript layer exposes. Plain C++: no N-API here.
#pragma once

#include <tss2/tss2_common.h>

#include <cstdint>
#include <string>

#include "error_code.h"

namespace tss {

class Status {
 public:
  Status() = default;

  // A failure reported by an ESYS/TCTI function; the code is derived from the rc.
  static Status Tss(TSS2_RC rc, const char* command);
  // A failure decided by this library (no TPM return code behind it).
  static Status Fail(ErrorCode code, std::string message);

  bool ok() const { return !failed_; }
  TSS2_RC rc() const { return rc_; }
  const std::string& command() const { return command_; }
  // Meaningful only for a failure.
  ErrorCode code() const { return code_; }
  // Tss2_RC_Decode's text for the rc, or empty when there is none.
  std::string RcText() const;
  // One line for a person: what failed and why.
  std::string Message() const;

  // Adds context ("while loading key 0x81000010") to a failure's message.
  Status& Detail(std::string detail);
  // Gives a failure another code than its rc's (a link that timed out: ERR_TPM_TIMEOUT).
  Status& WithCode(ErrorCode code) {
    code_ = code;
    return *this;
  }

 private:
  bool failed_ = false;
  TSS2_RC rc_ = TSS2_RC_SUCCESS;
  std::string command_;
  ErrorCode code_ = ErrorCode::kTpm;
  std::string detail_;
};

// A TPM handle as messages write it: "0x81000010".
std::string HandleHex(uint32_t handle);

// Maps a TSS2_RC to its error code (ARCHITECTURE.md): kTpm when nothing more specific fits.
ErrorCode CodeForRc(TSS2_RC rc);

// True when the TPM no longer has the session the command named (it was flushed, or
// the TPM restarted under a resource manager): worth one retry with a new session.
bool IsSessionLost(const Status& status);

// True when a transient object this context loaded is gone from the TPM (another
// process flushed it): worth one retry after forgetting the handles.
bool IsObjectLost(const Status& status);

// True when the TPM has no free object or session slot: without a resource manager,
// other processes may hold them for a moment.
bool IsSlotShortage(const Status& status);

// True when the TPM itself (or a resource manager for it) answered with this failure.
bool IsTpmAnswer(const Status& status);

// True when the TPM refused the command for what it asked (a key that cannot do it, a
// blob that is not its parent's): not a transient state, a lost session or object, a
// shortage of slots or a lost link, which a later try may get past.
bool IsRefusal(const Status& status);

// True when the TPM could not be reached or the link broke mid-command.
bool IsConnectionLost(const Status& status);

// True for the TPM's "not now" answers (TPM_RC_RETRY, _YIELDED, _TESTING): the same
// command may succeed a moment later.
bool IsTransient(const Status& status);

}  // namespace tss

// Returns from the enclosing function when an ESYS/TCTI call fails.
#define TSS_CALL(command, ...)                                                              \
  do {                                                                                      \
    TSS2_RC tss_call_rc_ = command(__VA_ARGS__);                                            \
    if (tss_call_rc_ != TSS2_RC_SUCCESS) return ::tss::Status::Tss(tss_call_rc_, #command); \
  } while (0)

#define TSS_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::tss::Status tss_status_ = (expr);        \
    if (!tss_status_.ok()) return tss_status_; \
  } while (0)
