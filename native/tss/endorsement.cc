#include "endorsement.h"

#include <cstring>

#include "esys_ptr.h"
#include "primary.h"
#include "templates.h"

namespace tss {

namespace {

// PolicySecret(TPM_RH_ENDORSEMENT) in SHA-256: the EK profile's policy A.
const uint8_t kEkPolicy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC,
                               0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52,
                               0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

std::vector<uint8_t> UniqueOf(const TPMT_PUBLIC& pub) {
  std::vector<uint8_t> out;
  if (pub.type == TPM2_ALG_RSA) {
    out.assign(pub.unique.rsa.buffer, pub.unique.rsa.buffer + pub.unique.rsa.size);
  } else if (pub.type == TPM2_ALG_ECC) {
    const TPMS_ECC_POINT& point = pub.unique.ecc;
    out.assign(point.x.buffer, point.x.buffer + point.x.size);
    out.insert(out.end(), point.y.buffer, point.y.buffer + point.y.size);
  }
  return out;
}

}  // namespace

TPM2B_PUBLIC RsaEndorsementKeyTemplate() {
  TPM2B_PUBLIC out = {};
  TPMT_PUBLIC& pub = out.publicArea;
  pub.type = TPM2_ALG_RSA;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                         TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                         TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  pub.authPolicy.size = sizeof kEkPolicy;
  memcpy(pub.authPolicy.buffer, kEkPolicy, sizeof kEkPolicy);
  TPMS_RSA_PARMS& rsa = pub.parameters.rsaDetail;
  rsa.symmetric.algorithm = TPM2_ALG_AES;
  rsa.symmetric.keyBits.aes = 128;
  rsa.symmetric.mode.aes = TPM2_ALG_CFB;
  rsa.scheme.scheme = TPM2_ALG_NULL;
  rsa.keyBits = 2048;
  rsa.exponent = 0;
  pub.unique.rsa.size = 256;
  return out;
}

Status LoadEk(Context& ctx, const EkSpec& spec, Transient* out, TPMT_PUBLIC* pub) {
  TPM2B_PUBLIC* pub_raw = nullptr;
  if (spec.handle != 0) {
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(spec.handle, &tr));
    out->Borrow(tr);
    TSS_CALL(Esys_ReadPublic, ctx.esys(), tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw,
             nullptr, nullptr);
  } else {
    if (spec.type != TPM2_ALG_RSA && spec.type != TPM2_ALG_ECC) {
      return Status::Fail(ErrorCode::kInvalidArgument, "the EK type must be RSA or ECC");
    }
    const TPM2B_PUBLIC tmpl =
        spec.type == TPM2_ALG_RSA ? RsaEndorsementKeyTemplate() : EndorsementKeyTemplate();
    const TPM2B_SENSITIVE_CREATE sensitive = {};
    const TPM2B_DATA outside_info = {};
    const TPML_PCR_SELECTION creation_pcr = {};
    ESYS_TR auth = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_CALL(Esys_CreatePrimary, ctx.esys(), ESYS_TR_RH_ENDORSEMENT, auth, ESYS_TR_NONE,
             ESYS_TR_NONE, &sensitive, &tmpl, &outside_info, &creation_pcr, &tr, &pub_raw, nullptr,
             nullptr, nullptr);
    out->Own(tr);
  }
  EsysPtr<TPM2B_PUBLIC> read(pub_raw);
  *pub = read->publicArea;
  if (!spec.unique.empty() && UniqueOf(*pub) != spec.unique) {
    return Status::Fail(
        ErrorCode::kTpmKeyNotFound,
        spec.handle != 0 ? "the EK at the given handle is not the key the challenge was made for"
                         : "this TPM's EK from the TCG default template is not the key the "
                           "challenge was made for: another TPM, or an EK at a persistent handle");
  }
  return Status();
}

Status EndorsementAuth(Context& ctx, const TPMT_PUBLIC& ek, Transient* policy, ESYS_TR* out) {
  if (ek.objectAttributes & TPMA_OBJECT_USERWITHAUTH) {
    // Its authValue is empty: a password session reveals nothing.
    *out = ESYS_TR_PASSWORD;
    return Status();
  }
  TPMT_SYM_DEF no_symmetric = {};
  no_symmetric.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  TSS_CALL(Esys_StartAuthSession, ctx.esys(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
           ESYS_TR_NONE, ESYS_TR_NONE, nullptr, TPM2_SE_POLICY, &no_symmetric, ek.nameAlg,
           &session);
  policy->Own(session);
  // Kept after the command so the guard's flush is the one path that ends it.
  TSS_CALL(Esys_TRSess_SetAttributes, ctx.esys(), session, TPMA_SESSION_CONTINUESESSION,
           TPMA_SESSION_CONTINUESESSION);
  // The endorsement hierarchy's authValue (empty unless its owner set one) proves the
  // secret; PolicySecret has no parameter worth encrypting.
  ESYS_TR endorsement_auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(0, &endorsement_auth));
  TSS_CALL(Esys_PolicySecret, ctx.esys(), ESYS_TR_RH_ENDORSEMENT, session, endorsement_auth,
           ESYS_TR_NONE, ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, nullptr, nullptr);
  *out = session;
  return Status();
}

}  // namespace tss
