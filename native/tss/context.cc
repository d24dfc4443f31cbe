#include "context.h"

#include "auth.h"
#include "marshal.h"
#include "primary.h"
#include "transient.h"

namespace tss {

namespace {

// The kernel's /dev/tpmrmN and tabrmd virtualise slots per connection: what a client
// keeps loaded costs other clients nothing. Anything else (swtpm, mssim, /dev/tpmN,
// the default search, which may pick any of them) is shared as it is.
bool HasResourceManager(const std::string& tcti_conf) {
  return tcti_conf.rfind("tabrmd", 0) == 0 || tcti_conf.rfind("device:/dev/tpmrm", 0) == 0;
}

}  // namespace

Context::~Context() { Close(); }

Status Context::Open(const std::string& tcti_conf, const SecretBytes& owner_auth,
                     const SessionOptions& session,
                     const std::vector<ObjectCache::Loaded>& orphans) {
  Close();
  tcti_conf_ = tcti_conf;
  owner_auth_ = owner_auth;
  session_options_ = session;
  resource_manager_ = HasResourceManager(tcti_conf);
  // Whatever fails on the way to the first answer (no library, no device, a refused
  // socket), the TPM is unreachable from here.
  const auto unreachable = [&tcti_conf](const std::string& why) {
    return Status::Fail(ErrorCode::kTpmConnection,
                        "cannot reach the TPM through TCTI '" +
                            (tcti_conf.empty() ? std::string("(default search)") : tcti_conf) +
                            "': " + why);
  };
  Status linked = link_.Open(tcti_conf);
  if (!linked.ok()) {
    return linked.code() == ErrorCode::kInvalidArgument ? linked : unreachable(linked.RcText());
  }
  TSS2_RC rc = Esys_Initialize(&esys_, link_.tcti(), nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    esys_ = nullptr;
    Close();
    return Status::Tss(rc, "Esys_Initialize");
  }
  Status s = FindSrk();
  if (!s.ok()) {
    if (link_.failed()) s = unreachable(link_.failure().Message()).WithCode(link_.failure().code());
    Close();
    return s;
  }
  // Before anything new takes a slot.
  FlushOrphans(orphans);
  s = SetAuth(esys_, ESYS_TR_RH_OWNER, owner_auth);
  if (s.ok() && session_options_.encrypt) {
    // A pinned Name that is not the SRK's may be the storage primary's: the SRK then
    // salts nothing, and the primary is checked against the pin instead.
    if (srk_salts_ && !AcceptSaltKey(srk_).ok()) srk_salts_ = false;
    // Salted to the SRK, the session waits for the first command that needs it; the
    // storage primary or the EK would be made for it anyway, so it starts now.
    if (!srk_salts_) {
      ESYS_TR unused = ESYS_TR_NONE;
      s = Auth(0, &unused);
    }
  }
  if (!s.ok()) Close();
  return s;
}

Status Context::FindSrk() {
  // The first command. A TPM not started yet answers TPM_RC_INITIALIZE to it, and only
  // then is TPM2_Startup sent: a chip's platform has started it, swtpm may not have.
  TSS2_RC rc =
      Esys_TR_FromTPMPublic(esys_, kSrkHandle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &srk_);
  if ((rc & 0xFFFF) == TPM2_RC_INITIALIZE) {
    rc = Esys_Startup(esys_, TPM2_SU_CLEAR);
    if (rc != TSS2_RC_SUCCESS && (rc & 0xFFFF) != TPM2_RC_INITIALIZE) {
      return Status::Tss(rc, "Esys_Startup");
    }
    rc = Esys_TR_FromTPMPublic(esys_, kSrkHandle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &srk_);
  }
  if (rc != TSS2_RC_SUCCESS) {
    srk_ = ESYS_TR_NONE;
    const Status failed = Status::Tss(rc, "Esys_TR_FromTPMPublic");
    // A lost link fails the open, and "not now" is tried again by the caller; any other
    // answer (no object at the handle, the usual one) means no SRK to use.
    if (link_.failed() || IsTransient(failed)) return failed;
    return Status();
  }
  // Only a key the TPM can salt a session to: RSA or ECC, restricted and decrypt (a
  // storage key). Anything else there (a signing key, a sealed blob) salts nothing.
  TPM2B_PUBLIC pub;
  const TPMA_OBJECT storage = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  const bool can_salt =
      OpenedPublic(esys_, srk_, &pub).ok() &&
      (pub.publicArea.type == TPM2_ALG_RSA || pub.publicArea.type == TPM2_ALG_ECC) &&
      (pub.publicArea.objectAttributes & storage) == storage;
  srk_salts_ = can_salt && !session_options_.salt_with_ek;
  return Status();
}

void Context::ForgetSrk() {
  if (srk_ != ESYS_TR_NONE && esys_ != nullptr) Esys_TR_Close(esys_, &srk_);
  srk_ = ESYS_TR_NONE;
  srk_salts_ = false;
  srk_is_storage_primary_ = false;
}

Status Context::AcceptSaltKey(ESYS_TR key) {
  std::vector<uint8_t> got;
  TSS_RETURN_IF_ERROR(ObjectName(esys_, key, &got));
  if (!session_options_.salt_key_name.empty() && session_options_.salt_key_name != got) {
    return Status::Fail(ErrorCode::kTpmConnection,
                        "the TPM's salt key does not have the pinned Name (saltKeyName): "
                        "this is not the TPM you expect, or something sits between you");
  }
  salt_key_name_ = got;
  return Status();
}

Status Context::StartSession() {
  if (srk_salts_) {
    Status s = StartSaltedSession(esys_, srk_, &session_);
    if (s.ok() || !IsRefusal(s)) return s;
    // An object at the SRK's handle that cannot salt a session: the storage primary will.
    session_ = ESYS_TR_NONE;
    srk_salts_ = false;
  }
  if (session_options_.salt_with_ek) {
    // Made with a password session: no session exists yet, and an empty hierarchy
    // auth (the usual case) reveals nothing.
    Transient ek(esys_);
    ESYS_TR tr = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(CreateEndorsementKey(esys_, ESYS_TR_PASSWORD, TPM2_ALG_ECC, &tr));
    ek.Own(tr);
    TSS_RETURN_IF_ERROR(AcceptSaltKey(ek.get()));
    return StartSaltedSession(esys_, ek.get(), &session_);
  }
  ESYS_TR primary = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(StoragePrimary(&primary));
  TSS_RETURN_IF_ERROR(AcceptSaltKey(primary));
  return StartSaltedSession(esys_, primary, &session_);
}

Status Context::StoragePrimary(ESYS_TR* out) {
  // Made under the session when there is one or the SRK can start it; otherwise with a
  // password session (it is being made to salt the session), where an empty owner
  // auth, the usual case, reveals nothing. Not through Auth(): with no SRK that would
  // make this very primary to salt the session.
  return objects_.Get(
      esys_, kStoragePrimary,
      [this](ESYS_TR* made) {
        ESYS_TR auth = ESYS_TR_PASSWORD;
        if (session_options_.encrypt && session_ == ESYS_TR_NONE && !saved_session_.empty()) {
          TSS_RETURN_IF_ERROR(saved_session_.Load(esys_, true, &session_));
        }
        if (session_options_.encrypt && session_ == ESYS_TR_NONE && srk_salts_ &&
            !StartSaltedSession(esys_, srk_, &session_).ok()) {
          session_ = ESYS_TR_NONE;
        }
        if (session_options_.encrypt && session_ != ESYS_TR_NONE) {
          TSS_RETURN_IF_ERROR(Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
        }
        return CreateStoragePrimary(esys_, auth, made);
      },
      out);
}

Status Context::Reopen() {
  // Copies: Open starts by clearing the context, settings included.
  const std::string tcti = tcti_conf_;
  const SecretBytes owner_auth = owner_auth_;
  const SessionOptions session = session_options_;
  // Cut off mid-command, the old connection could flush nothing it had loaded; unless
  // the TPM restarted, those objects still take its few slots.
  const std::vector<ObjectCache::Loaded> orphans =
      esys_ != nullptr ? objects_.LoadedObjects(esys_) : std::vector<ObjectCache::Loaded>();
  Status s = Open(tcti, owner_auth, session, orphans);
  broken_ = !s.ok();
  return s;
}

void Context::FlushOrphans(const std::vector<ObjectCache::Loaded>& orphans) {
  for (const ObjectCache::Loaded& orphan : orphans) {
    ESYS_TR tr = ESYS_TR_NONE;
    if (Esys_TR_FromTPMPublic(esys_, orphan.handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              &tr) != TSS2_RC_SUCCESS) {
      continue;  // gone: the TPM restarted, or another process flushed it
    }
    std::vector<uint8_t> name;
    const bool ours = ObjectName(esys_, tr, &name).ok() && name == orphan.name;
    // Only the same object (same Name) is flushed: after a restart the handle may hold
    // another process's. One with the same Name (the storage primary, or a key file
    // another process also loaded) would be flushed even so, if it got that handle
    // between the restart and this reconnect; a tpm-jwt process loads it again.
    if (ours) {
      Esys_FlushContext(esys_, tr);
    } else {
      Esys_TR_Close(esys_, &tr);
    }
  }
}

Status Context::Auth(TPMA_SESSION crypt, ESYS_TR* out) {
  if (!session_options_.encrypt) {
    *out = ESYS_TR_PASSWORD;
    return Status();
  }
  if (session_ == ESYS_TR_NONE && !saved_session_.empty()) {
    // A saved session the TPM no longer has is dropped: a new one serves as well.
    TSS_RETURN_IF_ERROR(saved_session_.Load(esys_, true, &session_));
  }
  if (session_ == ESYS_TR_NONE) TSS_RETURN_IF_ERROR(StartSession());
  // continueSession: one session serves every call on this context.
  TSS_CALL(Esys_TRSess_SetAttributes, esys_, session_, TPMA_SESSION_CONTINUESESSION | crypt,
           TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT);
  *out = session_;
  return Status();
}

Status Context::CryptSession(TPMA_SESSION crypt, ESYS_TR* out) {
  if (!session_options_.encrypt) {
    *out = ESYS_TR_NONE;
    return Status();
  }
  return Auth(crypt, out);
}

void Context::DropSession() {
  saved_session_.Reset();
  if (session_ == ESYS_TR_NONE) return;
  // The TPM has lost it already; flushing is only to free ESYS's record of it.
  Esys_FlushContext(esys_, session_);
  Esys_TR_Close(esys_, &session_);
  session_ = ESYS_TR_NONE;
}

void Context::Idle() {
  if (!resource_manager_) ReleaseSlots();
}

void Context::ReleaseSlots() {
  if (esys_ == nullptr || broken()) return;
  if (session_ != ESYS_TR_NONE) {
    // Saving closes the session's ESYS_TR; if it fails, the session is simply dropped
    // and the next call starts a new one.
    if (saved_session_.Save(esys_, session_).ok()) {
      session_ = ESYS_TR_NONE;
    } else {
      DropSession();
    }
  }
  // A link that broke just now flushes nothing: what is loaded stays on record for
  // the reconnect (Reopen).
  if (!link_.failed()) objects_.UnloadAll(esys_);
}

Status Context::CachedObject(const std::string& id, const ObjectCache::Make& make, ESYS_TR* out) {
  return objects_.Get(esys_, id, make, out);
}

void Context::UnloadObject(const std::string& id) {
  if (!resource_manager_) objects_.Unload(esys_, id);
}

void Context::ForgetLoadedObjects() { objects_.ForgetLoaded(esys_); }

void Context::Close() {
  // Sessions take TPM slots like objects do: flush it, or the next user runs out. A
  // saved session still holds one of the TPM's session handles. After the link failed
  // nothing more is sent (ESYS refuses anyway, SAPI would not): if the TPM restarted,
  // the handles this context knew may be another process's by now.
  if (!saved_session_.empty() && esys_ != nullptr && !link_.failed()) {
    saved_session_.FlushSession(esys_);
  }
  saved_session_.Reset();
  if (session_ != ESYS_TR_NONE && esys_ != nullptr) Esys_FlushContext(esys_, session_);
  session_ = ESYS_TR_NONE;
  objects_.Clear(esys_);
  salt_key_name_.clear();
  ForgetSrk();
  srk_is_storage_primary_.reset();
  for (auto& entry : handles_) Esys_TR_Close(esys_, &entry.second);
  handles_.clear();
  if (esys_ != nullptr) ClearAuth(esys_, ESYS_TR_RH_OWNER);
  if (esys_ != nullptr) Esys_Finalize(&esys_);
  esys_ = nullptr;
  link_.Close();
}

void Context::Release() {
  Close();
  // Assigning a new buffer frees the old one, which the allocator wipes.
  owner_auth_ = SecretBytes();
}

Status Context::OpenHandle(TPM2_HANDLE handle, ESYS_TR* out) {
  auto found = handles_.find(handle);
  if (found != handles_.end()) {
    *out = found->second;
    return Status();
  }
  ESYS_TR tr = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(esys_, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
  if (rc != TSS2_RC_SUCCESS) {
    return Status::Tss(rc, "Esys_TR_FromTPMPublic")
        .Detail("no object at handle " + HandleHex(handle));
  }
  handles_[handle] = tr;
  *out = tr;
  return Status();
}

void Context::ForgetHandle(TPM2_HANDLE handle) {
  auto found = handles_.find(handle);
  if (found == handles_.end()) return;
  // Evicting a persistent object leaves its ESYS_TR allocated: close it here.
  Esys_TR_Close(esys_, &found->second);
  handles_.erase(found);
}

}  // namespace tss
