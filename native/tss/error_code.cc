#include "error_code.h"

namespace tss {

namespace {

constexpr const char* kNames[] = {
#define TPM_JWT_ERROR_CODE_NAME(name, text) text,
    TPM_JWT_ERROR_CODES(TPM_JWT_ERROR_CODE_NAME)
#undef TPM_JWT_ERROR_CODE_NAME
};

}  // namespace

const char* ErrorCodeName(ErrorCode code) {
  const auto index = static_cast<size_t>(code);
  // An out-of-range value can only come from a cast: name it as the catch-all code.
  return index < kErrorCodeCount ? kNames[index] : kNames[static_cast<size_t>(ErrorCode::kTpm)];
}

}  // namespace tss
