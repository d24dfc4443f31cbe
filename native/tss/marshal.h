// TPM2B_PUBLIC / TPM2B_PRIVATE to and from their wire bytes.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <vector>

#include "status.h"

namespace tss {

std::vector<uint8_t> MarshalPublic(const TPM2B_PUBLIC& pub);
std::vector<uint8_t> MarshalPrivate(const TPM2B_PRIVATE& priv);
// Fails with ERR_KEY_FILE_INVALID unless the bytes are exactly one structure.
Status UnmarshalPublic(const std::vector<uint8_t>& bytes, TPM2B_PUBLIC* out);
Status UnmarshalPrivate(const std::vector<uint8_t>& bytes, TPM2B_PRIVATE* out);

}  // namespace tss
