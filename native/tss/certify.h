// TPM2_Certify: the AK signs the Name of a key loaded in the same TPM, with the
// verifier's qualifying data, in a structure only the TPM makes (TPMS_ATTEST with
// magic TPM_GENERATED_VALUE, which a restricted key refuses to sign from outside).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "attestation_key.h"
#include "context.h"
#include "key_ref.h"

namespace tss {

struct Certification {
  std::vector<uint8_t> attest;      // TPMS_ATTEST, the bytes the signature covers
  std::vector<uint8_t> signature;   // TPMT_SIGNATURE
  std::vector<uint8_t> ak_public;   // TPM2B_PUBLIC of the AK
  std::vector<uint8_t> key_public;  // TPM2B_PUBLIC of the certified key, as the TPM has it
};

// tpm-jwt's limit on qualifying data: a nonce of up to 64 bytes (a SHA-512 digest), as
// lib/wire/attestation-format.ts's parseNonce accepts. TPM2B_DATA itself holds up to 66
// (a TPMT_HA).
constexpr size_t kMaxQualifyingData = 64;

// Certifies `key` with the AK of `ak` (persisted at `ak.handle` when it is empty, see
// AkHandleUse::kPersist); `qualifying_data` is at most kMaxQualifyingData bytes. The AK
// is flushed afterwards unless persistent.
Status Certify(Context& ctx, const KeyRef& key, const AkSpec& ak,
               const std::vector<uint8_t>& qualifying_data, Certification* out);

}  // namespace tss
