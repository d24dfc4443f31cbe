#include "status.h"

#include <tss2/tss2_rc.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstdio>
#include <utility>

namespace tss {

Status Status::Tss(TSS2_RC rc, const char* command) {
  Status s;
  s.failed_ = true;
  s.rc_ = rc;
  s.command_ = command;
  s.code_ = CodeForRc(rc);
  return s;
}

Status Status::Fail(ErrorCode code, std::string message) {
  Status s;
  s.failed_ = true;
  s.code_ = code;
  s.detail_ = std::move(message);
  return s;
}

std::string Status::RcText() const {
  if (rc_ == TSS2_RC_SUCCESS) return "";
  const char* text = Tss2_RC_Decode(rc_);
  return text ? text : "";
}

std::string Status::Message() const {
  if (command_.empty()) return detail_;
  if (detail_.empty()) return command_ + " failed: " + RcText();
  return detail_ + " (" + command_ + ": " + RcText() + ")";
}

Status& Status::Detail(std::string detail) {
  detail_ = detail_.empty() ? std::move(detail) : detail_ + "; " + detail;
  return *this;
}

std::string HandleHex(uint32_t handle) {
  char out[16];
  snprintf(out, sizeof out, "0x%08x", handle);
  return out;
}

namespace {

ErrorCode CodeForTpmRc(TPM2_RC rc) {
  if (rc & TPM2_RC_FMT1) {
    // Format 1 codes carry the handle/parameter/session number in the upper bits.
    switch (rc & (TPM2_RC_FMT1 | 0x3F)) {
      case TPM2_RC_HANDLE:
        return ErrorCode::kTpmKeyNotFound;
      case TPM2_RC_AUTH_FAIL:
      case TPM2_RC_BAD_AUTH:
        return ErrorCode::kTpmAuthFail;
      case TPM2_RC_POLICY_FAIL:
        return ErrorCode::kTpmPolicyFail;
      // A key blob that this parent did not wrap: another TPM, another parent, or
      // a tampered file.
      case TPM2_RC_INTEGRITY:
      case TPM2_RC_BINDING:
        return ErrorCode::kKeyFileInvalid;
      case TPM2_RC_TYPE:  // a TPM without ECC rejects the public area's type
      case TPM2_RC_ASYMMETRIC:
      case TPM2_RC_CURVE:
      case TPM2_RC_KEY_SIZE:
      case TPM2_RC_SCHEME:
      case TPM2_RC_HASH:
        return ErrorCode::kTpmUnsupported;
      default:
        return ErrorCode::kTpm;
    }
  }
  switch (rc & 0xFFF) {
    case TPM2_RC_LOCKOUT:
      return ErrorCode::kTpmLockout;
    // "Not now", still so after the retries (IsTransient): a TPM busy with something
    // else, testing itself, or rate-limiting NV writes.
    case TPM2_RC_RETRY:
    case TPM2_RC_YIELDED:
    case TPM2_RC_TESTING:
    case TPM2_RC_NV_RATE:
    case TPM2_RC_NV_UNAVAILABLE:
      return ErrorCode::kTpmBusy;
    case TPM2_RC_OBJECT_MEMORY:
    case TPM2_RC_SESSION_MEMORY:
    case TPM2_RC_MEMORY:
    case TPM2_RC_OBJECT_HANDLES:
    case TPM2_RC_SESSION_HANDLES:
    case TPM2_RC_NV_SPACE:  // no room left for another persistent object
      return ErrorCode::kTpmObjectMemory;
    case TPM2_RC_NV_DEFINED:
      return ErrorCode::kTpmHandleInUse;
    case TPM2_RC_PCR_CHANGED:
      return ErrorCode::kTpmPolicyFail;
    case TPM2_RC_COMMAND_CODE:
      return ErrorCode::kTpmUnsupported;
    default:
      return ErrorCode::kTpm;
  }
}

// The TPM's own response code (or the resource manager's on its behalf), without the
// layer; 0 for success and for failures from any other layer.
TSS2_RC TpmRc(const Status& status) {
  const TSS2_RC layer = status.rc() & TSS2_RC_LAYER_MASK;
  if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER) return 0;
  return status.rc() & 0xFFFF;
}

}  // namespace

bool IsSessionLost(const Status& status) {
  const TSS2_RC rc = TpmRc(status);
  // TPM_RC_REFERENCE_S0..S6: "the session handle references a session not loaded".
  if (rc >= TPM2_RC_REFERENCE_S0 && rc <= TPM2_RC_REFERENCE_S6) return true;
  // TPM_RC_HANDLE reported against a session (format 1 with the S bit): the session
  // handle is no longer valid.
  constexpr TSS2_RC kSessionBit = 0x800;
  return (rc & TPM2_RC_FMT1) && (rc & kSessionBit) &&
         (rc & (TPM2_RC_FMT1 | 0x3F)) == TPM2_RC_HANDLE;
}

bool IsObjectLost(const Status& status) {
  // TPM_RC_REFERENCE_H0..H6: "the handle references a transient object not loaded".
  // Not TPM_RC_HANDLE: that is also a persistent handle with nothing at it.
  const TSS2_RC rc = TpmRc(status);
  return rc >= TPM2_RC_REFERENCE_H0 && rc <= TPM2_RC_REFERENCE_H6;
}

bool IsSlotShortage(const Status& status) {
  const TSS2_RC rc = TpmRc(status);
  if (rc & TPM2_RC_FMT1) return false;
  switch (rc & 0xFFF) {
    case TPM2_RC_OBJECT_MEMORY:
    case TPM2_RC_SESSION_MEMORY:
    case TPM2_RC_MEMORY:
    case TPM2_RC_OBJECT_HANDLES:
    case TPM2_RC_SESSION_HANDLES:
      return true;
    default:
      return false;
  }
}

bool IsTpmAnswer(const Status& status) { return TpmRc(status) != 0; }

bool IsRefusal(const Status& status) {
  return IsTpmAnswer(status) && !IsTransient(status) && !IsSessionLost(status) &&
         !IsObjectLost(status) && !IsSlotShortage(status);
}

bool IsConnectionLost(const Status& status) {
  // By the return code, not the error code: a salt key with the wrong Name is also
  // ERR_TPM_CONNECTION, and must not be taken for a dropped link and retried.
  return status.rc() != 0 && CodeForRc(status.rc()) == ErrorCode::kTpmConnection;
}

bool IsTransient(const Status& status) {
  const TSS2_RC rc = TpmRc(status);
  if (rc & TPM2_RC_FMT1) return false;
  switch (rc & 0xFFF) {
    case TPM2_RC_RETRY:
    case TPM2_RC_YIELDED:
    case TPM2_RC_TESTING:
    case TPM2_RC_NV_RATE:  // rate-limited NV writes (EvictControl): later works
    case TPM2_RC_NV_UNAVAILABLE:
      return true;
    default:
      return false;
  }
}

ErrorCode CodeForRc(TSS2_RC rc) {
  const TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
  if (layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER) {
    return CodeForTpmRc(rc & 0xFFFF);
  }
  if (layer == TSS2_TCTI_RC_LAYER) return ErrorCode::kTpmConnection;
  switch (rc & 0xFFFF) {
    case TSS2_BASE_RC_IO_ERROR:
    case TSS2_BASE_RC_NO_CONNECTION:
      return ErrorCode::kTpmConnection;
    case TSS2_BASE_RC_NOT_IMPLEMENTED:
      return ErrorCode::kTpmUnsupported;
    default:
      return ErrorCode::kTpm;
  }
}

}  // namespace tss
