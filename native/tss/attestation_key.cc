#include "attestation_key.h"

#include <cstring>

#include "esys_ptr.h"
#include "keys.h"
#include "marshal.h"
#include "primary.h"
#include "templates.h"

namespace tss {

namespace {

Status TemplateOf(const AkSpec& spec, TPM2B_PUBLIC* out) {
  if (spec.tmpl.empty()) {
    TSS_RETURN_IF_ERROR(CheckKeyType(spec.type, "the AK type"));
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

// The public area without its unique field, which the TPM fills in from the seed: what
// a primary shares with the template it was made from.
std::vector<uint8_t> WithoutUnique(TPMT_PUBLIC pub) {
  pub.unique = {};
  return ToWire(pub, Tss2_MU_TPMT_PUBLIC_Marshal);
}

// Whether the object `tr` is the AK of `tmpl`: the template's public area, and a primary
// of the endorsement hierarchy, whose Qualified Name is H(TPM_RH_ENDORSEMENT || Name).
// The TPM hashes (TPM2_Hash, no object slot); this layer links no crypto library.
Status IsAkOf(Context& ctx, ESYS_TR tr, const TPM2B_PUBLIC& tmpl, bool* out) {
  *out = false;
  TPM2B_PUBLIC pub;
  TPM2B_NAME name;
  TPM2B_NAME qualified;
  TSS_RETURN_IF_ERROR(ReadObjectPublic(ctx.esys(), tr, &pub, &name, &qualified));
  if (WithoutUnique(pub.publicArea) != WithoutUnique(tmpl.publicArea)) return Status();

  TPM2B_MAX_BUFFER data = {};
  const TPM2_HANDLE hierarchy = TPM2_RH_ENDORSEMENT;
  for (int i = 0; i < 4; ++i) data.buffer[i] = static_cast<uint8_t>(hierarchy >> (24 - 8 * i));
  memcpy(data.buffer + 4, name.name, name.size);
  data.size = static_cast<UINT16>(4 + name.size);
  TPM2B_DIGEST* digest_raw = nullptr;
  TPMT_TK_HASHCHECK* ticket_raw = nullptr;
  TSS_CALL(Esys_Hash, ctx.esys(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &data,
           pub.publicArea.nameAlg, ESYS_TR_RH_NULL, &digest_raw, &ticket_raw);
  EsysPtr<TPM2B_DIGEST> digest(digest_raw);
  EsysPtr<TPMT_TK_HASHCHECK> ticket(ticket_raw);
  const uint16_t alg = pub.publicArea.nameAlg;
  *out = qualified.size == 2 + digest->size && qualified.name[0] == (alg >> 8) &&
         qualified.name[1] == (alg & 0xff) &&
         memcmp(qualified.name + 2, digest->buffer, digest->size) == 0;
  return Status();
}

// The endorsement primary of `tmpl`, made now and owned by `out`.
Status CreateAk(Context& ctx, const TPM2B_PUBLIC& tmpl, Transient* out) {
  ESYS_TR auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
  ESYS_TR tr = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(CreatePrimary(ctx.esys(), ESYS_TR_RH_ENDORSEMENT, auth, tmpl, &tr));
  out->Own(tr);
  return Status();
}

// Makes the AK at `handle`, after evicting what is there when `occupied`.
Status PersistNew(Context& ctx, const TPM2B_PUBLIC& tmpl, TPM2_HANDLE handle, bool occupied) {
  Transient made(ctx.esys());
  TSS_RETURN_IF_ERROR(CreateAk(ctx, tmpl, &made));
  return MakePersistent(ctx, made.get(), handle, occupied);
}

}  // namespace

bool IsAttestationKey(const TPMT_PUBLIC& pub) {
  constexpr TPMA_OBJECT kRequired = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
                                    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
  return (pub.objectAttributes & kRequired) == kRequired &&
         (pub.objectAttributes & TPMA_OBJECT_DECRYPT) == 0;
}

Status LoadAk(Context& ctx, const AkSpec& spec, AkHandleUse use, Transient* out) {
  TPM2B_PUBLIC tmpl;
  TSS_RETURN_IF_ERROR(TemplateOf(spec, &tmpl));
  if (spec.handle == 0) return CreateAk(ctx, tmpl, out);
  bool occupied = false;
  TSS_RETURN_IF_ERROR(IsOccupied(ctx, spec.handle, &occupied));
  if (occupied) {
    // Another process may have replaced the object this context saw there before.
    ctx.ForgetHandle(spec.handle);
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(spec.handle, &tr));
    bool is_ak = false;
    TSS_RETURN_IF_ERROR(IsAkOf(ctx, tr, tmpl, &is_ak));
    if (is_ak) {
      out->Borrow(tr);
      return Status();
    }
    if (use == AkHandleUse::kExisting) {
      return Status::Fail(ErrorCode::kTpmKeyNotFound,
                          "the object at the AK's handle is not the AK of this type (an "
                          "endorsement primary of its template)");
    }
    if (!spec.force) {
      return Status::Fail(ErrorCode::kTpmHandleInUse,
                          "the AK's handle holds an object that is not the AK of this type (an "
                          "endorsement primary of its template); pass force to replace it");
    }
  } else if (use == AkHandleUse::kExisting) {
    return Status::Fail(
        ErrorCode::kTpmKeyNotFound,
        "no AK at the AK's handle: attest persists one there, activation never does");
  }
  TSS_RETURN_IF_ERROR(PersistNew(ctx, tmpl, spec.handle, occupied));
  // Whatever this context knew at the handle before is not what is there now.
  ctx.ForgetHandle(spec.handle);
  ESYS_TR tr = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.OpenHandle(spec.handle, &tr));
  out->Borrow(tr);
  return Status();
}

}  // namespace tss
