// TPMT_PUBLIC templates: the storage parent every created or imported key hangs under,
// the endorsement key, the attestation key, and the signing keys themselves.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <string>

#include "status.h"

namespace tss {

// What the caller asks for; the algorithm table in lib/ decides the numbers.
struct KeySpec {
  TPMI_ALG_PUBLIC type = TPM2_ALG_RSA;  // TPM2_ALG_RSA or TPM2_ALG_ECC
  uint16_t bits = 2048;                 // RSA modulus size
  TPMI_ECC_CURVE curve = TPM2_ECC_NIST_P256;
};

// The TCG ECC P-256 storage primary used by tpm2-openssl, tpm2-tss-engine and the
// "TSS2 PRIVATE KEY" format: restricted|decrypt|fixedTPM|fixedParent|
// sensitiveDataOrigin|userWithAuth|noDA, AES-128-CFB, empty unique. With
// TPM2_ALG_RSA, the RSA-2048 equivalent for TPMs without ECC.
TPM2B_PUBLIC StoragePrimaryTemplate(TPMI_ALG_PUBLIC type);

// Whether `pub` has one of the two storage primary templates, whatever its unique field:
// a persistent SRK made from it is the storage primary itself, when its seed made it.
bool HasStoragePrimaryTemplate(const TPM2B_PUBLIC& pub);

// The TCG EK Credential Profile's endorsement key: the key whose certificate the
// manufacturer issues, so its Name identifies the TPM. TPM2_ALG_ECC: ECC P-256
// (template L-2), unique 32 zero bytes for x and y; TPM2_ALG_RSA: RSA 2048 (template
// L-1), unique 256 zero bytes. Both restricted|decrypt|fixedTPM|fixedParent|
// sensitiveDataOrigin|adminWithPolicy, AES-128-CFB, authPolicy
// PolicySecret(TPM_RH_ENDORSEMENT).
TPM2B_PUBLIC EndorsementKeyTemplate(TPMI_ALG_PUBLIC type);

// Fails with ERR_INVALID_ARGUMENT ("`what` must be RSA or ECC") unless `type` is one of
// the two an AK or EK can have.
Status CheckKeyType(TPMI_ALG_PUBLIC type, const std::string& what);

// go-tpm-tools' AK templates: RSA 2048 RSASSA-SHA256 or ECC P-256 ECDSA-SHA256,
// restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth, nameAlg
// SHA-256, no symmetric algorithm; unique empty (RSA) or zero x and y (ECC).
TPM2B_PUBLIC AkTemplate(TPMI_ALG_PUBLIC type);

// An unrestricted signing key with a NULL scheme, so the scheme (RSASSA or RSAPSS,
// ECDSA) is chosen per signature: fixedTPM|fixedParent|sensitiveDataOrigin|
// userWithAuth|sign.
TPM2B_PUBLIC SigningKeyTemplate(const KeySpec& spec);

}  // namespace tss
