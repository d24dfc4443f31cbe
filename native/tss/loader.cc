#include "loader.h"

#include "marshal.h"
#include "templates.h"

namespace tss {

namespace {

// Whether key files under the storage primary load under the persistent SRK: it has
// the template (read from what ESYS keeps of it: no command), and no Load under it has
// been refused yet.
bool SrkMayBeStoragePrimary(Context& ctx) {
  if (ctx.srk() == ESYS_TR_NONE) return false;
  if (!ctx.srk_is_storage_primary().has_value()) {
    TPM2B_PUBLIC pub;
    ctx.set_srk_is_storage_primary(OpenedPublic(ctx.esys(), ctx.srk(), &pub).ok() &&
                                   HasStoragePrimaryTemplate(pub));
  }
  return *ctx.srk_is_storage_primary();
}

Status LoadUnder(Context& ctx, ESYS_TR parent, const TPM2B_PRIVATE& priv, const TPM2B_PUBLIC& pub,
                 ESYS_TR* out) {
  ESYS_TR auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
  TSS_CALL(Esys_Load, ctx.esys(), parent, auth, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, out);
  return Status();
}

}  // namespace

Status LoadParent(Context& ctx, TPM2_HANDLE parent, Transient* out) {
  ESYS_TR tr = ESYS_TR_NONE;
  if (parent != TPM2_RH_OWNER) {
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(parent, &tr));
  } else {
    TSS_RETURN_IF_ERROR(ctx.StoragePrimary(&tr));
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
        bool srk_refused = false;
        if (key.parent == TPM2_RH_OWNER && SrkMayBeStoragePrimary(ctx)) {
          Status s = LoadUnder(ctx, ctx.srk(), priv, pub, made);
          if (s.ok() || !IsRefusal(s)) return s;
          srk_refused = true;
        }
        Transient parent(ctx.esys());
        TSS_RETURN_IF_ERROR(LoadParent(ctx, key.parent, &parent));
        TSS_RETURN_IF_ERROR(LoadUnder(ctx, parent.get(), priv, pub, made));
        // Refused by the SRK, loaded by the storage primary: the SRK has the template but
        // is another key, and key files go under the primary from now on. (A file both
        // refuse is the file's fault, not the SRK's.)
        if (srk_refused) ctx.set_srk_is_storage_primary(false);
        // Once the key is in, its parent is not needed: on a shared TPM its slot is
        // freed at once.
        if (key.parent == TPM2_RH_OWNER) ctx.UnloadStoragePrimary();
        return Status();
      },
      &tr));
  out->Borrow(tr);
  return Status();
}

}  // namespace tss
