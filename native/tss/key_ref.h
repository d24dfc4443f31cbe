// How a call names a key: a persistent handle, or the blobs of a key that lives outside
// the TPM (wrapped by its parent), loaded when used (see ObjectCache).
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <string>
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
  // A blob key's name in the context's object cache (see SetCacheId): set once when
  // the key is read, not on every signature.
  std::string cache_id;
};

// Names a blob key by everything the TPM checks when loading it (parent, public and
// private blob): a file that differs in any of them is loaded, and so checked, apart.
inline void SetCacheId(KeyRef* key) {
  key->cache_id.assign("key:");
  key->cache_id.append(reinterpret_cast<const char*>(&key->parent), sizeof key->parent);
  key->cache_id.append(key->blob.pub.begin(), key->blob.pub.end());
  key->cache_id.append(key->blob.priv.begin(), key->blob.priv.end());
}

}  // namespace tss
