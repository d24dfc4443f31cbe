// TPM2_Sign over a digest computed by the caller.
#pragma once

#include <cstdint>
#include <vector>

#include "context.h"
#include "key_ref.h"

namespace tss {

struct SignScheme {
  TPMI_ALG_SIG_SCHEME scheme = TPM2_ALG_RSASSA;  // RSASSA, RSAPSS or ECDSA
  TPMI_ALG_HASH hash = TPM2_ALG_SHA256;
  size_t coordinate_size = 32;  // ECDSA: bytes per r and s in the JWS form
};

// Signs `digest` with a NULL hash-check ticket (the key is unrestricted). The result is
// in JWS form: the RSA signature as is, ECDSA as r || s, each left-padded to the
// curve's coordinate size.
Status Sign(Context& ctx, const KeyRef& key, const std::vector<uint8_t>& digest,
            const SignScheme& scheme, std::vector<uint8_t>* out);

// Signs `message`, hashing it inside the TPM (TPM2_Hash, or a hash sequence above
// 1024 bytes) so the hash-check ticket is real: what a restricted signing key needs.
Status SignMessage(Context& ctx, const KeyRef& key, const std::vector<uint8_t>& message,
                   const SignScheme& scheme, std::vector<uint8_t>* out);

}  // namespace tss
