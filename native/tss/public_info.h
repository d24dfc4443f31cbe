// The parts of a TPMT_PUBLIC that callers need to build a public key and show a key's
// attributes, decoded from its wire bytes.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <vector>

namespace tss {

struct PublicInfo {
  TPMI_ALG_PUBLIC type = TPM2_ALG_NULL;
  TPMI_ALG_HASH name_alg = TPM2_ALG_NULL;
  TPMA_OBJECT attributes = 0;
  // The key's own signing scheme; TPM2_ALG_NULL lets each signature choose.
  TPMI_ALG_SIG_SCHEME scheme = TPM2_ALG_NULL;
  TPMI_ALG_HASH scheme_hash = TPM2_ALG_NULL;
  uint16_t rsa_bits = 0;
  uint32_t rsa_exponent = 0;  // as the TPM stores it: 0 means 65537
  std::vector<uint8_t> rsa_modulus;
  TPMI_ECC_CURVE ecc_curve = TPM2_ECC_NONE;
  std::vector<uint8_t> ecc_x;
  std::vector<uint8_t> ecc_y;
  // The policy digest that authorises the key (empty: none), for checking it still holds.
  std::vector<uint8_t> auth_policy;
};

PublicInfo DescribePublic(const TPMT_PUBLIC& pub);

}  // namespace tss
