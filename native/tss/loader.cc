#include "loader.h"

#include "auth.h"
#include "marshal.h"
#include "templates.h"

namespace tss {

namespace {

Status CreatePrimary(Context& ctx, TPMI_ALG_PUBLIC type, ESYS_TR* out) {
  const TPM2B_SENSITIVE_CREATE sensitive = {};
  const TPM2B_PUBLIC tmpl = StoragePrimaryTemplate(type);
  const TPM2B_DATA outside_info = {};
  const TPML_PCR_SELECTION creation_pcr = {};
  TSS_CALL(Esys_CreatePrimary, ctx.esys(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
           ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl, &outside_info,
           &creation_pcr, out, nullptr, nullptr, nullptr, nullptr);
  return Status();
}

bool LacksAlgorithm(const Status& s) { return s.code() == "ERR_TPM_UNSUPPORTED"; }

}  // namespace

Status LoadParent(Context& ctx, TPM2_HANDLE parent, Transient* out) {
  if (parent != TPM2_RH_OWNER) {
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(parent, &tr));
    out->Borrow(tr);
    return Status();
  }
  ESYS_TR tr = ESYS_TR_NONE;
  Status s = CreatePrimary(ctx, TPM2_ALG_ECC, &tr);
  if (!s.ok() && LacksAlgorithm(s)) s = CreatePrimary(ctx, TPM2_ALG_RSA, &tr);
  TSS_RETURN_IF_ERROR(s);
  out->Own(tr);
  return Status();
}

Status LoadKey(Context& ctx, const KeyRef& key, Transient* out) {
  if (key.handle != 0) {
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(key.handle, &tr));
    out->Borrow(tr);
  } else {
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
    TSS_RETURN_IF_ERROR(UnmarshalPublic(key.blob.pub, &pub));
    TSS_RETURN_IF_ERROR(UnmarshalPrivate(key.blob.priv, &priv));
    Transient parent(ctx.esys());
    TSS_RETURN_IF_ERROR(LoadParent(ctx, key.parent, &parent));
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_CALL(Esys_Load, ctx.esys(), parent.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
             ESYS_TR_NONE, &priv, &pub, &tr);
    out->Own(tr);
    // The parent is flushed here, as soon as the key is in: it holds a slot otherwise.
  }
  return SetAuth(ctx.esys(), out->get(), key.auth);
}

}  // namespace tss
