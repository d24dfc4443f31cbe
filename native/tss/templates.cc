#include "templates.h"

#include <cstring>

#include "marshal.h"

namespace tss {

namespace {

constexpr TPMA_OBJECT kStorageAttributes =
    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA;

constexpr TPMA_OBJECT kSigningAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                           TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                           TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT;

constexpr TPMA_OBJECT kEndorsementAttributes =
    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
    TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;

constexpr TPMA_OBJECT kAkAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
                                      TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH;

// PolicySecret(TPM_RH_ENDORSEMENT) in SHA-256, the EK profile's policy A: the EK is used
// only with endorsement auth.
constexpr uint8_t kEndorsementPolicy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
    0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

// What the profile's low-range templates share: the attributes, the SHA-256 name and
// policy, and AES-128-CFB.
TPM2B_PUBLIC EndorsementBase(TPMI_ALG_PUBLIC type) {
  TPM2B_PUBLIC out = {};
  TPMT_PUBLIC& pub = out.publicArea;
  pub.type = type;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.objectAttributes = kEndorsementAttributes;
  pub.authPolicy.size = sizeof kEndorsementPolicy;
  memcpy(pub.authPolicy.buffer, kEndorsementPolicy, sizeof kEndorsementPolicy);
  TPMT_SYM_DEF_OBJECT& symmetric = type == TPM2_ALG_ECC ? pub.parameters.eccDetail.symmetric
                                                        : pub.parameters.rsaDetail.symmetric;
  symmetric.algorithm = TPM2_ALG_AES;
  symmetric.keyBits.aes = 128;
  symmetric.mode.aes = TPM2_ALG_CFB;
  return out;
}

}  // namespace

Status CheckKeyType(TPMI_ALG_PUBLIC type, const std::string& what) {
  if (type == TPM2_ALG_RSA || type == TPM2_ALG_ECC) return Status();
  return Status::Fail(ErrorCode::kInvalidArgument, what + " must be RSA or ECC");
}

TPM2B_PUBLIC StoragePrimaryTemplate(TPMI_ALG_PUBLIC type) {
  TPM2B_PUBLIC out = {};
  TPMT_PUBLIC& pub = out.publicArea;
  pub.type = type;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.objectAttributes = kStorageAttributes;
  TPMT_SYM_DEF_OBJECT aes128cfb = {};
  aes128cfb.algorithm = TPM2_ALG_AES;
  aes128cfb.keyBits.aes = 128;
  aes128cfb.mode.aes = TPM2_ALG_CFB;
  if (type == TPM2_ALG_ECC) {
    pub.parameters.eccDetail.symmetric = aes128cfb;
    pub.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    pub.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    pub.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  } else {
    pub.parameters.rsaDetail.symmetric = aes128cfb;
    pub.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    pub.parameters.rsaDetail.keyBits = 2048;
    pub.parameters.rsaDetail.exponent = 0;
  }
  return out;
}

bool HasStoragePrimaryTemplate(const TPM2B_PUBLIC& pub) {
  const TPMI_ALG_PUBLIC type = pub.publicArea.type;
  if (type != TPM2_ALG_ECC && type != TPM2_ALG_RSA) return false;
  // Compared as marshaled, so padding and the unused parts of unions play no part.
  TPM2B_PUBLIC without_unique = pub;
  without_unique.publicArea.unique = TPMU_PUBLIC_ID{};
  return MarshalPublic(without_unique) == MarshalPublic(StoragePrimaryTemplate(type));
}

TPM2B_PUBLIC EndorsementKeyTemplate(TPMI_ALG_PUBLIC type) {
  TPM2B_PUBLIC out = EndorsementBase(type);
  TPMT_PUBLIC& pub = out.publicArea;
  if (type == TPM2_ALG_ECC) {
    pub.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    pub.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    pub.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    // The profile's unique field: 32 zero bytes for x and y.
    pub.unique.ecc.x.size = 32;
    pub.unique.ecc.y.size = 32;
  } else {
    pub.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    pub.parameters.rsaDetail.keyBits = 2048;
    pub.parameters.rsaDetail.exponent = 0;
    // The profile's unique field: 256 zero bytes.
    pub.unique.rsa.size = 256;
  }
  return out;
}

TPM2B_PUBLIC AkTemplate(TPMI_ALG_PUBLIC type) {
  TPM2B_PUBLIC out = {};
  TPMT_PUBLIC& pub = out.publicArea;
  pub.type = type;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.objectAttributes = kAkAttributes;
  if (type == TPM2_ALG_ECC) {
    TPMS_ECC_PARMS& ecc = pub.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_NULL;
    ecc.scheme.scheme = TPM2_ALG_ECDSA;
    ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    // go-tpm-tools' unique: 32 zero bytes each, which changes the key: kept to match.
    pub.unique.ecc.x.size = 32;
    pub.unique.ecc.y.size = 32;
  } else {
    TPMS_RSA_PARMS& rsa = pub.parameters.rsaDetail;
    rsa.symmetric.algorithm = TPM2_ALG_NULL;
    rsa.scheme.scheme = TPM2_ALG_RSASSA;
    rsa.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    rsa.keyBits = 2048;
    rsa.exponent = 0;
  }
  return out;
}

TPM2B_PUBLIC SigningKeyTemplate(const KeySpec& spec) {
  TPM2B_PUBLIC out = {};
  TPMT_PUBLIC& pub = out.publicArea;
  pub.type = spec.type;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.objectAttributes = kSigningAttributes;
  if (spec.type == TPM2_ALG_ECC) {
    pub.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    pub.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    pub.parameters.eccDetail.curveID = spec.curve;
    pub.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  } else {
    pub.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    pub.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    pub.parameters.rsaDetail.keyBits = spec.bits;
    pub.parameters.rsaDetail.exponent = 0;
  }
  return out;
}

}  // namespace tss
