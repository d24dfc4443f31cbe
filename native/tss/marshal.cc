#include "marshal.h"

namespace tss {

std::vector<uint8_t> MarshalPublic(const TPM2B_PUBLIC& pub) {
  return ToWire(pub, Tss2_MU_TPM2B_PUBLIC_Marshal);
}

std::vector<uint8_t> MarshalPrivate(const TPM2B_PRIVATE& priv) {
  return ToWire(priv, Tss2_MU_TPM2B_PRIVATE_Marshal);
}

Status UnmarshalPublic(const std::vector<uint8_t>& bytes, TPM2B_PUBLIC* out) {
  return FromWire(bytes, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "the key's public blob", out,
                  ErrorCode::kKeyFileInvalid);
}

Status UnmarshalPrivate(const std::vector<uint8_t>& bytes, TPM2B_PRIVATE* out) {
  return FromWire(bytes, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "the key's private blob", out,
                  ErrorCode::kKeyFileInvalid);
}

}  // namespace tss
