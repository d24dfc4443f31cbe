#include "attestation_key.h"

#include <cstdio>
#include <string>

#include "keys.h"
#include "primary.h"
#include "wire.h"

namespace tss {

namespace {

constexpr TPMA_OBJECT kAkAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
                                      TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH;

std::string Hex(TPM2_HANDLE handle) {
  char out[16];
  snprintf(out, sizeof out, "0x%08x", handle);
  return out;
}

Status TemplateOf(const AkSpec& spec, TPM2B_PUBLIC* out) {
  if (spec.tmpl.empty()) {
    if (spec.type != TPM2_ALG_RSA && spec.type != TPM2_ALG_ECC) {
      return Status::Fail(ErrorCode::kInvalidArgument, "the AK type must be RSA or ECC");
    }
    *out = AkTemplate(spec.type);
    return Status();
  }
  *out = {};
  TSS_RETURN_IF_ERROR(
      FromWire(spec.tmpl, Tss2_MU_TPMT_PUBLIC_Unmarshal, "the AK template", &out->publicArea));
  if (!IsAttestationKey(out->publicArea)) {
    return Status::Fail(ErrorCode::kTpmUnsupported,
                        "the AK template in NV is not a restricted signing key");
  }
  return Status();
}

// Makes the AK at `handle`, after evicting what is there when `occupied`.
Status PersistNew(Context& ctx, const TPM2B_PUBLIC& tmpl, TPM2_HANDLE handle, bool occupied) {
  Transient made(ctx.esys());
  ESYS_TR auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
  ESYS_TR tr = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(CreatePrimary(ctx.esys(), ESYS_TR_RH_ENDORSEMENT, auth, tmpl, &tr));
  made.Own(tr);
  if (occupied) TSS_RETURN_IF_ERROR(Evict(ctx, handle));
  // EvictControl has no TPM2B parameter to encrypt: the session only authorises.
  TSS_RETURN_IF_ERROR(ctx.Auth(0, &auth));
  ESYS_TR persistent = ESYS_TR_NONE;
  const TSS2_RC rc = Esys_EvictControl(ctx.esys(), ESYS_TR_RH_OWNER, made.get(), auth, ESYS_TR_NONE,
                                       ESYS_TR_NONE, handle, &persistent);
  if (rc != TSS2_RC_SUCCESS) {
    Status s = Status::Tss(rc, "Esys_EvictControl");
    if (occupied) s.Detail("the object that was at " + Hex(handle) + " has been evicted");
    return s;
  }
  Esys_TR_Close(ctx.esys(), &persistent);
  return Status();
}

}  // namespace

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

bool IsAttestationKey(const TPMT_PUBLIC& pub) {
  constexpr TPMA_OBJECT kRequired = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
                                    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
  return (pub.objectAttributes & kRequired) == kRequired &&
         (pub.objectAttributes & TPMA_OBJECT_DECRYPT) == 0;
}

Status LoadAk(Context& ctx, const AkSpec& spec, Transient* out) {
  TPM2B_PUBLIC tmpl;
  TSS_RETURN_IF_ERROR(TemplateOf(spec, &tmpl));
  if (spec.handle == 0) {
    ESYS_TR auth = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(CreatePrimary(ctx.esys(), ESYS_TR_RH_ENDORSEMENT, auth, tmpl, &tr));
    out->Own(tr);
    return Status();
  }
  std::vector<TPM2_HANDLE> used;
  TSS_RETURN_IF_ERROR(ListHandles(ctx, spec.handle, 1, &used));
  const bool occupied = !used.empty() && used[0] == spec.handle;
  if (occupied && !spec.force) {
    TPM2B_PUBLIC existing;
    TSS_RETURN_IF_ERROR(ReadPublic(ctx, spec.handle, &existing));
    if (!IsAttestationKey(existing.publicArea)) {
      return Status::Fail(ErrorCode::kTpmHandleInUse,
                          "handle " + Hex(spec.handle) +
                              " holds an object that is not an attestation key; pass force to "
                              "replace it");
    }
  } else {
    TSS_RETURN_IF_ERROR(PersistNew(ctx, tmpl, spec.handle, occupied));
    // Whatever this context knew at the handle before is not what is there now.
    ctx.ForgetHandle(spec.handle);
  }
  ESYS_TR tr = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.OpenHandle(spec.handle, &tr));
  out->Borrow(tr);
  return Status();
}

}  // namespace tss
