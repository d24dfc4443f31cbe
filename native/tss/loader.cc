#include "loader.h"

#include <string>

#include "marshal.h"
#include "primary.h"

namespace tss {

namespace {

// Cache ids: the storage primary, and a key file's key by everything the TPM would
// check when loading it (parent, public and private blob): a file that differs in any
// of them is loaded, and so checked, on its own.
const char kStoragePrimary[] = "storage-primary";

std::string KeyId(const KeyRef& key) {
  std::string id = "key:";
  id.append(reinterpret_cast<const char*>(&key.parent), sizeof key.parent);
  id.append(key.blob.pub.begin(), key.blob.pub.end());
  id.append(key.blob.priv.begin(), key.blob.priv.end());
  return id;
}

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
      KeyId(key),
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
