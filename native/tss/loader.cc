#include "loader.h"

#include "marshal.h"
#include "primary.h"

namespace tss {

namespace {

// The storage primary's cache id; a key file's key has its own (KeyRef::cache_id).
const char kStoragePrimary[] = "storage-primary";

}  // namespace

Status LoadParent(Context& ctx, TPM2_HANDLE parent, Transient* out) {
  ESYS_TR tr = ESYS_TR_NONE;
  if (parent != TPM2_RH_OWNER) {
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(parent, &tr));
  } else {
    TSS_RETURN_IF_ERROR(ctx.CachedObject(
        kStoragePrimary,
        [&ctx](ESYS_TR* made) {
          ESYS_TR auth = ESYS_TR_NONE;
          TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
          return CreateStoragePrimary(ctx.esys(), auth, made);
        },
        &tr));
  }
  out->Borrow(tr);
  return Status();
}

Status LoadKey(Context& ctx, const KeyRef& key, Transient* out) {
  ESYS_TR tr = ESYS_TR_NONE;
  if (key.handle != 0) {
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(key.handle, &tr));
    out->Borrow(tr);
    return Status();
  }
  TSS_RETURN_IF_ERROR(ctx.CachedObject(
      key.cache_id,
      [&ctx, &key](ESYS_TR* made) {
        TPM2B_PUBLIC pub;
        TPM2B_PRIVATE priv;
        TSS_RETURN_IF_ERROR(UnmarshalPublic(key.blob.pub, &pub));
        TSS_RETURN_IF_ERROR(UnmarshalPrivate(key.blob.priv, &priv));
        Transient parent(ctx.esys());
        TSS_RETURN_IF_ERROR(LoadParent(ctx, key.parent, &parent));
        ESYS_TR auth = ESYS_TR_NONE;
        TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
        TSS_CALL(Esys_Load, ctx.esys(), parent.get(), auth, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub,
                 made);
        // Once the key is in, its parent is not needed: on a shared TPM its slot is
        // freed at once.
        if (key.parent == TPM2_RH_OWNER) ctx.UnloadObject(kStoragePrimary);
        return Status();
      },
      &tr));
  out->Borrow(tr);
  return Status();
}

}  // namespace tss
