#include "keys.h"

#include <cstring>

#include "esys_ptr.h"
#include "loader.h"
#include "marshal.h"
#include "transient.h"

namespace tss {

Status CreateKey(Context& ctx, TPM2_HANDLE parent, const KeySpec& spec, const SecretBytes& auth,
                 const PcrPolicy& policy, KeyBlob* out) {
  Wiped<TPM2B_SENSITIVE_CREATE> sensitive;
  TPM2B_AUTH& user_auth = sensitive->sensitive.userAuth;
  if (auth.size() > sizeof user_auth.buffer) {
    return Status::Fail(ErrorCode::kInvalidArgument, "auth value longer than 64 bytes");
  }
  user_auth.size = static_cast<UINT16>(auth.size());
  if (!auth.empty()) memcpy(user_auth.buffer, auth.data(), auth.size());
  TPM2B_PUBLIC tmpl = SigningKeyTemplate(spec);
  if (policy.enabled()) {
    TSS_RETURN_IF_ERROR(PolicyDigest(ctx.esys(), policy, &tmpl.publicArea.authPolicy));
    tmpl.publicArea.objectAttributes &= ~TPMA_OBJECT_USERWITHAUTH;
  }
  const TPM2B_DATA outside_info = {};
  const TPML_PCR_SELECTION creation_pcr = {};

  Transient parent_obj(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadParent(ctx, parent, &parent_obj));
  ESYS_TR session = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &session));
  TPM2B_PRIVATE* priv_raw = nullptr;
  TPM2B_PUBLIC* pub_raw = nullptr;
  TSS_CALL(Esys_Create, ctx.esys(), parent_obj.get(), session, ESYS_TR_NONE, ESYS_TR_NONE,
           sensitive.get(), &tmpl, &outside_info, &creation_pcr, &priv_raw, &pub_raw, nullptr,
           nullptr, nullptr);
  EsysPtr<TPM2B_PRIVATE> priv(priv_raw);
  EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
  out->pub = MarshalPublic(*pub);
  out->priv = MarshalPrivate(*priv);
  return Status();
}

Status ReadPublic(Context& ctx, TPM2_HANDLE handle, TPM2B_PUBLIC* out) {
  // Opening a key re-reads the handle: another process may have replaced the object
  // there, and signing with a stale Name would fail the session's HMAC.
  ctx.ForgetHandle(handle);
  ESYS_TR tr = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.OpenHandle(handle, &tr));
  return OpenedPublic(ctx.esys(), tr, out);
}

Status ReadObjectPublic(ESYS_CONTEXT* esys, ESYS_TR object, TPM2B_PUBLIC* out, TPM2B_NAME* name,
                        TPM2B_NAME* qualified_name) {
  TPM2B_PUBLIC* pub_raw = nullptr;
  TPM2B_NAME* name_raw = nullptr;
  TPM2B_NAME* qualified_raw = nullptr;
  TSS_CALL(Esys_ReadPublic, esys, object, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw,
           name != nullptr ? &name_raw : nullptr,
           qualified_name != nullptr ? &qualified_raw : nullptr);
  EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
  EsysPtr<TPM2B_NAME> owned_name(name_raw);
  EsysPtr<TPM2B_NAME> owned_qualified(qualified_raw);
  *out = *pub;
  if (name != nullptr) *name = *owned_name;
  if (qualified_name != nullptr) *qualified_name = *owned_qualified;
  return Status();
}

Status ReadObjectPublic(ESYS_CONTEXT* esys, ESYS_TR object, std::vector<uint8_t>* out) {
  TPM2B_PUBLIC pub;
  TSS_RETURN_IF_ERROR(ReadObjectPublic(esys, object, &pub));
  *out = MarshalPublic(pub);
  return Status();
}

Status Persist(Context& ctx, const KeyRef& key, TPM2_HANDLE handle, bool force) {
  if (key.handle != 0) {
    return Status::Fail(ErrorCode::kInvalidArgument, "the key is already persistent");
  }
  bool occupied = false;
  TSS_RETURN_IF_ERROR(IsOccupied(ctx, handle, &occupied));
  if (occupied && !force) {
    return Status::Fail(ErrorCode::kTpmHandleInUse,
                        "handle " + HandleHex(handle) +
                            " already holds a persistent object; pass force to replace it");
  }
  Transient loaded(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadKey(ctx, key, &loaded));
  return MakePersistent(ctx, loaded.get(), handle, occupied);
}

Status PersistentSrk(Context& ctx, bool persist, bool force, SrkState* out) {
  ESYS_TR primary = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.StoragePrimary(&primary));
  std::vector<uint8_t> primary_name;
  TSS_RETURN_IF_ERROR(ObjectName(ctx.esys(), primary, &primary_name));
  bool occupied = false;
  TSS_RETURN_IF_ERROR(IsOccupied(ctx, Context::kSrkHandle, &occupied));
  *out = SrkState::kAbsent;
  if (occupied) {
    ctx.ForgetHandle(Context::kSrkHandle);
    ESYS_TR srk = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.OpenHandle(Context::kSrkHandle, &srk));
    std::vector<uint8_t> srk_name;
    TSS_RETURN_IF_ERROR(ObjectName(ctx.esys(), srk, &srk_name));
    *out = srk_name == primary_name ? SrkState::kStoragePrimary : SrkState::kOther;
  }
  if (!persist || *out == SrkState::kStoragePrimary) return Status();
  if (*out == SrkState::kOther && !force) {
    return Status::Fail(ErrorCode::kTpmHandleInUse,
                        "handle " + HandleHex(Context::kSrkHandle) +
                            " holds another object, not the storage primary; pass force to "
                            "replace it (whatever uses that object then loses it)");
  }
  Status made = MakePersistent(ctx, primary, Context::kSrkHandle, occupied);
  ctx.ForgetHandle(Context::kSrkHandle);
  if (occupied) ctx.ForgetSrk();
  TSS_RETURN_IF_ERROR(made);
  *out = SrkState::kStoragePrimary;
  return Status();
}

Status IsOccupied(Context& ctx, TPM2_HANDLE handle, bool* out) {
  std::vector<TPM2_HANDLE> used;
  TSS_RETURN_IF_ERROR(ListHandles(ctx, handle, 1, &used));
  *out = !used.empty() && used[0] == handle;
  return Status();
}

Status MakePersistent(Context& ctx, ESYS_TR object, TPM2_HANDLE handle, bool occupied) {
  if (occupied) TSS_RETURN_IF_ERROR(Evict(ctx, handle));
  // EvictControl has no TPM2B parameter to encrypt: the session only authorises.
  ESYS_TR auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(0, &auth));
  ESYS_TR persistent = ESYS_TR_NONE;
  TSS2_RC rc = Esys_EvictControl(ctx.esys(), ESYS_TR_RH_OWNER, object, auth, ESYS_TR_NONE,
                                 ESYS_TR_NONE, handle, &persistent);
  if (rc != TSS2_RC_SUCCESS) {
    Status s = Status::Tss(rc, "Esys_EvictControl");
    // The TPM has no atomic replace: say plainly what state the handle is in.
    if (occupied) s.Detail("the object that was at " + HandleHex(handle) + " has been evicted");
    return s;
  }
  Esys_TR_Close(ctx.esys(), &persistent);
  return Status();
}

Status Evict(Context& ctx, TPM2_HANDLE handle) {
  ESYS_TR tr = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.OpenHandle(handle, &tr));
  ESYS_TR auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(0, &auth));
  ESYS_TR none = ESYS_TR_NONE;
  TSS2_RC rc = Esys_EvictControl(ctx.esys(), ESYS_TR_RH_OWNER, tr, auth, ESYS_TR_NONE, ESYS_TR_NONE,
                                 handle, &none);
  // Forgotten either way: gone, or not what this context thought it was.
  ctx.ForgetHandle(handle);
  if (handle == Context::kSrkHandle) ctx.ForgetSrk();
  if (rc != TSS2_RC_SUCCESS) return Status::Tss(rc, "Esys_EvictControl");
  return Status();
}

Status ListHandles(Context& ctx, TPM2_HANDLE first, uint32_t max, std::vector<TPM2_HANDLE>* out) {
  out->clear();
  const TPM2_HANDLE type = first & TPM2_HR_RANGE_MASK;
  TPM2_HANDLE next = first;
  TPMI_YES_NO more = TPM2_YES;
  while (more && out->size() < max) {
    TPMS_CAPABILITY_DATA* data_raw = nullptr;
    TSS_CALL(Esys_GetCapability, ctx.esys(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
             TPM2_CAP_HANDLES, next, max - static_cast<uint32_t>(out->size()), &more, &data_raw);
    EsysPtr<TPMS_CAPABILITY_DATA> data(data_raw);
    const TPML_HANDLE& list = data->data.handles;
    if (list.count == 0) break;
    for (uint32_t i = 0; i < list.count && out->size() < max; ++i) {
      if ((list.handle[i] & TPM2_HR_RANGE_MASK) != type) return Status();
      out->push_back(list.handle[i]);
    }
    next = list.handle[list.count - 1] + 1;
  }
  return Status();
}

}  // namespace tss
