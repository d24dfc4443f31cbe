#include "endorsement.h"

#include "keys.h"
#include "policy.h"
#include "primary.h"
#include "templates.h"

namespace tss {

namespace {

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

Status LoadEk(Context& ctx, const EkSpec& spec, Transient* out, TPMT_PUBLIC* pub) {
  TPM2B_PUBLIC made = {};
  if (spec.handle != 0) {
    TSS_RETURN_IF_ERROR(ReadPublic(ctx, spec.handle, &made));
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(spec.handle, &tr));
    out->Borrow(tr);
  } else {
    TSS_RETURN_IF_ERROR(CheckKeyType(spec.type, "the EK type"));
    ESYS_TR auth = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(CreateEndorsementKey(ctx.esys(), auth, spec.type, &tr, &made));
    out->Own(tr);
  }
  *pub = made.publicArea;
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
  TSS_RETURN_IF_ERROR(StartPolicySession(ctx.esys(), ek.nameAlg, policy));
  // The endorsement hierarchy's authValue (empty unless its owner set one) proves the
  // secret; PolicySecret has no parameter worth encrypting.
  ESYS_TR endorsement_auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(0, &endorsement_auth));
  TSS_CALL(Esys_PolicySecret, ctx.esys(), ESYS_TR_RH_ENDORSEMENT, policy->get(), endorsement_auth,
           ESYS_TR_NONE, ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, nullptr, nullptr);
  *out = policy->get();
  return Status();
}

}  // namespace tss
