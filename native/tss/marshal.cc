#include "marshal.h"

#include <tss2/tss2_mu.h>

namespace tss {

namespace {

template <typename T, typename MarshalFn>
std::vector<uint8_t> Marshal(const T& value, MarshalFn marshal) {
  std::vector<uint8_t> out(sizeof(T));
  size_t offset = 0;
  // Cannot fail: the buffer is as large as the structure's maximum wire size.
  marshal(&value, out.data(), out.size(), &offset);
  out.resize(offset);
  return out;
}

template <typename T, typename UnmarshalFn>
Status Unmarshal(const std::vector<uint8_t>& bytes, UnmarshalFn unmarshal, const char* what,
                 T* out) {
  size_t offset = 0;
  *out = {};
  TSS2_RC rc = unmarshal(bytes.data(), bytes.size(), &offset, out);
  if (rc != TSS2_RC_SUCCESS || offset != bytes.size()) {
    return Status::Fail(ErrorCode::kKeyFileInvalid,
                        std::string("the key's ") + what + " blob is malformed");
  }
  return Status();
}

}  // namespace

std::vector<uint8_t> MarshalPublic(const TPM2B_PUBLIC& pub) {
  return Marshal(pub, Tss2_MU_TPM2B_PUBLIC_Marshal);
}

std::vector<uint8_t> MarshalPrivate(const TPM2B_PRIVATE& priv) {
  return Marshal(priv, Tss2_MU_TPM2B_PRIVATE_Marshal);
}

Status UnmarshalPublic(const std::vector<uint8_t>& bytes, TPM2B_PUBLIC* out) {
  return Unmarshal(bytes, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "public", out);
}

Status UnmarshalPrivate(const std::vector<uint8_t>& bytes, TPM2B_PRIVATE* out) {
  return Unmarshal(bytes, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "private", out);
}

}  // namespace tss
