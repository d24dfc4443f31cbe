#include "context.h"

#include "auth.h"

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
                     const SessionOptions& session) {
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
  rc = Esys_Startup(esys_, TPM2_SU_CLEAR);
  // TPM_RC_INITIALIZE: the platform (or swtpm's startup-clear flag) already started it.
  if (rc != TSS2_RC_SUCCESS && (rc & 0xFFFF) != TPM2_RC_INITIALIZE) {
    Status failed =
        link_.failed() ? unreachable(link_.failure().Message()) : Status::Tss(rc, "Esys_Startup");
    Close();
    return failed;
  }
  Status s = SetAuth(esys_, ESYS_TR_RH_OWNER, owner_auth);
  if (s.ok() && session_options_.encrypt) {
    ESYS_TR unused = ESYS_TR_NONE;
    s = Auth(0, &unused);
  }
  if (!s.ok()) Close();
  return s;
}

Status Context::Reopen() {
  // Copies: Open starts by clearing the context, settings included.
  const std::string tcti = tcti_conf_;
  const SecretBytes owner_auth = owner_auth_;
  const SessionOptions session = session_options_;
  Status s = Open(tcti, owner_auth, session);
  broken_ = !s.ok();
  return s;
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
  if (session_ == ESYS_TR_NONE) {
    TSS_RETURN_IF_ERROR(StartSaltedSession(esys_, session_options_, &session_, &salt_key_name_));
  }
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
  objects_.UnloadAll(esys_);
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
