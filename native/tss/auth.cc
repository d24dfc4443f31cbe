#include "auth.h"

#include <cstring>

namespace tss {

Status SetAuth(ESYS_CONTEXT* esys, ESYS_TR object, const std::vector<uint8_t>& auth) {
  TPM2B_AUTH value = {};
  if (auth.size() > sizeof value.buffer) {
    return Status::Fail(ErrorCode::kInvalidArgument, "auth value longer than 64 bytes");
  }
  value.size = static_cast<UINT16>(auth.size());
  if (!auth.empty()) memcpy(value.buffer, auth.data(), auth.size());
  TSS_CALL(Esys_TR_SetAuth, esys, object, &value);
  return Status();
}

}  // namespace tss
