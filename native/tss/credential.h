// TPM2_ActivateCredential, the device's half of credential activation (TPM 2.0 Part 1,
// 24): a verifier encrypts a secret to the EK its certificate names, bound to the Name
// of the AK it was shown; the TPM releases the secret only when that AK is loaded in
// the TPM that holds that EK. Returning the secret proves the AK and EK share a TPM.
#pragma once

#include <cstdint>
#include <vector>

#include "attestation_key.h"
#include "context.h"
#include "endorsement.h"
#include "secret.h"

namespace tss {

// Recovers the secret of a credential (`credential_blob`: TPM2B_ID_OBJECT,
// `encrypted_secret`: TPM2B_ENCRYPTED_SECRET, both with their size) with an AK that
// exists (AkHandleUse::kExisting: nothing is persisted or evicted, `ak.force` is
// ignored). With `ak_name` set, an AK whose Name differs is ERR_TPM_KEY_NOT_FOUND
// before the TPM is asked.
Status ActivateCredential(Context& ctx, const AkSpec& ak, const std::vector<uint8_t>& ak_name,
                          const EkSpec& ek, const std::vector<uint8_t>& credential_blob,
                          const std::vector<uint8_t>& encrypted_secret, SecretBytes* out);

}  // namespace tss
