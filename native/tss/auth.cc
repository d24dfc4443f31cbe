#include "auth.h"

#include <cstring>

namespace tss {

Status SetAuth(ESYS_CONTEXT* esys, ESYS_TR object, const SecretBytes& auth) {
  Wiped<TPM2B_AUTH> value;
  if (auth.size() > sizeof value->buffer) {
    return Status::Fail(ErrorCode::kInvalidArgument, "auth value longer than 64 bytes");
  }
  value->size = static_cast<UINT16>(auth.size());
  if (!auth.empty()) memcpy(value->buffer, auth.data(), auth.size());
  TSS_CALL(Esys_TR_SetAuth, esys, object, value.get());
  return Status();
}

void ClearAuth(ESYS_CONTEXT* esys, ESYS_TR object) {
  // tpm2-tss copies the whole structure over its own, so its 64 bytes become zeros.
  const TPM2B_AUTH empty = {};
  Esys_TR_SetAuth(esys, object, &empty);
}

}  // namespace tss
