// The endorsement key (EK): the TPM's identity, whose certificate the manufacturer
// signed. tpm-jwt uses it for one thing: TPM2_ActivateCredential, where the TPM decrypts
// a verifier's challenge with it only for an AK loaded beside it.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "context.h"
#include "transient.h"

namespace tss {

struct EkSpec {
  // A persistent EK (the provisioning guidance puts them at 0x81010001 and up); 0: the
  // primary from the TCG default template of `type`.
  TPM2_HANDLE handle = 0;
  // RSA 2048 (EK Credential Profile template L-1) or ECC P-256 (L-2), see templates.h.
  TPMI_ALG_PUBLIC type = TPM2_ALG_RSA;
  // When set, the EK's public key must be exactly this (RSA modulus, or ECC x || y): the
  // key the verifier's challenge is encrypted to.
  std::vector<uint8_t> unique;
};

// The EK of `spec`, loaded, and its public area. A created EK is owned by `out`; a
// persistent one is borrowed. An EK whose key is not `spec.unique` is
// ERR_TPM_KEY_NOT_FOUND: this TPM is not the one the challenge was made for.
Status LoadEk(Context& ctx, const EkSpec& spec, Transient* out, TPMT_PUBLIC* pub);

// The session that authorises the EK (USER role): a policy session satisfying the TCG
// policy PolicySecret(TPM_RH_ENDORSEMENT) in the EK's name algorithm, owned by
// `policy`; or, for an EK with userWithAuth (swtpm's ECC EK, some vendors'), the
// password session with its empty authValue.
Status EndorsementAuth(Context& ctx, const TPMT_PUBLIC& ek, Transient* policy, ESYS_TR* out);

}  // namespace tss
