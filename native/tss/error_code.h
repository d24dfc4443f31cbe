// The stable error codes of the JavaScript API (ARCHITECTURE.md) as the C++ core names
// them. Plain C++: no N-API here.
#pragma once

#include <cstddef>

namespace tss {

// One line per code: its enumerator and the string JavaScript sees. The list is the whole
// set of lib/errors.ts's ERROR_CODES, codes only lib/ raises included, so that a test can
// hold the two sets equal.
#define TPM_JWT_ERROR_CODES(X)                                                \
  X(kTpmConnection, "ERR_TPM_CONNECTION")                                     \
  X(kTpmTimeout, "ERR_TPM_TIMEOUT")                                           \
  X(kTpmKeyNotFound, "ERR_TPM_KEY_NOT_FOUND")                                 \
  X(kTpmAuthFail, "ERR_TPM_AUTH_FAIL")                                        \
  X(kTpmLockout, "ERR_TPM_LOCKOUT")                                           \
  X(kTpmBusy, "ERR_TPM_BUSY")                                                 \
  X(kTpmPolicyFail, "ERR_TPM_POLICY_FAIL")                                    \
  X(kTpmHandleInUse, "ERR_TPM_HANDLE_IN_USE")                                 \
  X(kTpmObjectMemory, "ERR_TPM_OBJECT_MEMORY")                                \
  X(kTpmUnsupported, "ERR_TPM_UNSUPPORTED")                                   \
  X(kTpmClosed, "ERR_TPM_CLOSED")                                             \
  X(kTpm, "ERR_TPM")                                                          \
  X(kNativeAddon, "ERR_NATIVE_ADDON")                                         \
  X(kKeyFileInvalid, "ERR_KEY_FILE_INVALID")                                  \
  X(kInvalidArgument, "ERR_INVALID_ARGUMENT")                                 \
  X(kJwsInvalid, "ERR_JWS_INVALID")                                           \
  X(kJwsSignatureVerificationFailed, "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") \
  X(kJoseAlgNotAllowed, "ERR_JOSE_ALG_NOT_ALLOWED")                           \
  X(kJwtExpired, "ERR_JWT_EXPIRED")                                           \
  X(kJwtClaimValidationFailed, "ERR_JWT_CLAIM_VALIDATION_FAILED")             \
  X(kJwksNoMatchingKey, "ERR_JWKS_NO_MATCHING_KEY")                           \
  X(kTokenExchange, "ERR_TOKEN_EXCHANGE")                                     \
  X(kTls, "ERR_TLS")                                                          \
  X(kEnrollmentRefused, "ERR_ENROLLMENT_REFUSED")

enum class ErrorCode {
#define TPM_JWT_ERROR_CODE_ENUMERATOR(name, text) name,
  TPM_JWT_ERROR_CODES(TPM_JWT_ERROR_CODE_ENUMERATOR)
#undef TPM_JWT_ERROR_CODE_ENUMERATOR
};

// How many codes there are; the enumerators run from 0 to kErrorCodeCount - 1.
constexpr size_t kErrorCodeCount = 0
#define TPM_JWT_ERROR_CODE_ONE(name, text) +1
    TPM_JWT_ERROR_CODES(TPM_JWT_ERROR_CODE_ONE)
#undef TPM_JWT_ERROR_CODE_ONE
    ;

// The string JavaScript sees for the code ("ERR_TPM_CONNECTION", ...).
const char* ErrorCodeName(ErrorCode code);

}  // namespace tss
