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

// Starts the session: the salt key is created, checked against a pinned Name, used to
// encrypt the session's salt, and flushed. Returns the salt key's Name too.
Status StartSaltedSession(ESYS_CONTEXT* esys, const SessionOptions& options, ESYS_TR* session,
                          std::vector<uint8_t>* salt_key_name);

}  // namespace tss
