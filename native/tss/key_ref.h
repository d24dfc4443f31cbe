// How a call names a key: a persistent handle, or the blobs of a key that lives outside
// the TPM (wrapped by its parent), loaded when used (see ObjectCache).
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <vector>

#include "policy.h"
#include "secret.h"

namespace tss {

// Marshaled TPM2B_PUBLIC and TPM2B_PRIVATE, as TPM2_Create returns them and the
// "TSS2 PRIVATE KEY" format stores them.
struct KeyBlob {
  std::vector<uint8_t> pub;
  std::vector<uint8_t> priv;
};

struct KeyRef {
  TPM2_HANDLE handle = 0;              // persistent handle, or 0 when blob is used
  TPM2_HANDLE parent = TPM2_RH_OWNER;  // owner: the storage primary, made on demand
  KeyBlob blob;
  SecretBytes auth;  // the key's authValue (empty: none)
  PcrPolicy policy;  // how the key is authorised when it has a policy
};

}  // namespace tss
