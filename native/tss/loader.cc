#include "loader.h"

#include "marshal.h"
#include "primary.h"

namespace tss {

Status LoadParent(Context& ctx, TPM2_HANDLE parent, Transient* out) {
  if (parent != TPM2_RH_OWNER) {
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(parent, &tr));
    out->Borrow(tr);
    return Status();
  }
  ESYS_TR auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
  ESYS_TR tr = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(CreateStoragePrimary(ctx.esys(), auth, &tr));
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
    ESYS_TR auth = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_CALL(Esys_Load, ctx.esys(), parent.get(), auth, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub,
             &tr);
    out->Own(tr);
    // The parent is flushed here, as soon as the key is in: it holds a slot otherwise.
  }
  return Status();
}

}  // namespace tss
