// The salted HMAC session that authorises commands and encrypts their parameters, so
// auth values and digests never cross the TPM link (bus or socket) in clear.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "status.h"

namespace tss {

struct SessionOptions {
  bool encrypt = true;
  // Salt with the endorsement key instead of the owner's storage primary.
  bool salt_with_ek = false;
  // When set, the salt key's Name must be exactly this: a TPM that answers with
  // another key is not the TPM the caller trusts.
  std::vector<uint8_t> salt_key_name;
};

// Starts an HMAC session salted to `salt_key`, a decrypt key in the TPM (the storage
// primary, the persistent SRK or the EK): the salt travels encrypted to it, so only that
// TPM can derive the session key. AES-128-CFB encrypts parameters when asked.
Status StartSaltedSession(ESYS_CONTEXT* esys, ESYS_TR salt_key, ESYS_TR* session);

}  // namespace tss
