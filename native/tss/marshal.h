// TPM structures to and from their wire bytes: one helper over every Tss2_MU pair, the
// TPM2B_PUBLIC / TPM2B_PRIVATE pair that key files hold, and the public area in ESYS's
// own record of an object.
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace tss {

// The wire form of `value`; cannot fail, the buffer being as large as the structure.
template <typename T, typename MarshalFn>
std::vector<uint8_t> ToWire(const T& value, MarshalFn marshal) {
  std::vector<uint8_t> out(sizeof(T));
  size_t offset = 0;
  marshal(&value, out.data(), out.size(), &offset);
  out.resize(offset);
  return out;
}

// Reads exactly one structure from `bytes`; anything else fails with `code` and
// "`what` is malformed".
template <typename T, typename UnmarshalFn>
Status FromWire(const std::vector<uint8_t>& bytes, UnmarshalFn unmarshal, const char* what, T* out,
                ErrorCode code = ErrorCode::kInvalidArgument) {
  size_t offset = 0;
  *out = {};
  const TSS2_RC rc = unmarshal(bytes.data(), bytes.size(), &offset, out);
  if (rc != TSS2_RC_SUCCESS || offset != bytes.size()) {
    return Status::Fail(code, std::string(what) + " is malformed");
  }
  return Status();
}

std::vector<uint8_t> MarshalPublic(const TPM2B_PUBLIC& pub);
std::vector<uint8_t> MarshalPrivate(const TPM2B_PRIVATE& priv);
// Fails with ERR_KEY_FILE_INVALID unless the bytes are exactly one structure.
Status UnmarshalPublic(const std::vector<uint8_t>& bytes, TPM2B_PUBLIC* out);
Status UnmarshalPrivate(const std::vector<uint8_t>& bytes, TPM2B_PRIVATE* out);

// The public area ESYS read when it opened `object` from a persistent handle
// (Esys_TR_FromTPMPublic, which checked it against the Name the TPM gave), from ESYS's
// serialized record of the object: no command.
Status OpenedPublic(ESYS_CONTEXT* esys, ESYS_TR object, TPM2B_PUBLIC* out);
// The Name ESYS keeps for `object`, as bytes: no command.
Status ObjectName(ESYS_CONTEXT* esys, ESYS_TR object, std::vector<uint8_t>* out);

}  // namespace tss
