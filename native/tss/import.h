// Bringing an existing private key under a TPM parent (TPM2_Import). The duplication
// blob (the sensitive area wrapped with a seed only the parent can recover) is made
// by the caller; this file marshals the areas and runs the command.
#pragma once

#include <cstdint>
#include <vector>

#include "context.h"
#include "secret.h"
#include "templates.h"

namespace tss {

// The key to import, in the TPM's terms.
struct ImportableKey {
  KeySpec spec;
  std::vector<uint8_t> rsa_modulus;
  uint32_t rsa_exponent = 0;  // 0: the default 65537
  std::vector<uint8_t> ecc_x, ecc_y;
  SecretBytes secret;  // RSA: the prime p; ECC: the scalar d
  SecretBytes auth;
};

// The public area (TPM2B_PUBLIC) an imported signing key gets: the signing template
// less fixedTPM, fixedParent and sensitiveDataOrigin, which the TPM refuses for
// an object it did not make; and the plaintext TPM2B_SENSITIVE to be wrapped.
Status MarshalImportable(const ImportableKey& key, std::vector<uint8_t>* pub,
                         SecretBytes* sensitive);

// The public area of the parent keys are created and imported under.
Status ReadParentPublic(Context& ctx, TPM2_HANDLE parent, std::vector<uint8_t>* out);

// TPM2_Import with an outer wrapper only (no inner symmetric key). Returns the
// TPM2B_PRIVATE that Load takes under the same parent.
Status Import(Context& ctx, TPM2_HANDLE parent, const std::vector<uint8_t>& pub,
              const std::vector<uint8_t>& duplicate, const std::vector<uint8_t>& seed,
              std::vector<uint8_t>* priv);

}  // namespace tss
