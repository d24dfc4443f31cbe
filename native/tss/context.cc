#include "context.h"

#include <cstdio>

#include "auth.h"

namespace tss {

Context::~Context() { Close(); }

Status Context::Open(const std::string& tcti_conf,
                     const std::vector<uint8_t>& owner_auth) {
  Close();
  TSS2_RC rc = Tss2_TctiLdr_Initialize(
      tcti_conf.empty() ? nullptr : tcti_conf.c_str(), &tcti_);
  if (rc != TSS2_RC_SUCCESS) {
    tcti_ = nullptr;
    Status s = Status::Tss(rc, "Tss2_TctiLdr_Initialize");
    // Whatever tctildr reports (no library, no device, refused socket), the TPM is
    // unreachable from here.
    return Status::Fail("ERR_TPM_CONNECTION",
                        "cannot reach the TPM through TCTI '" +
                            (tcti_conf.empty() ? std::string("(default search)")
                                               : tcti_conf) +
                            "': " + s.RcText());
  }
  rc = Esys_Initialize(&esys_, tcti_, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    esys_ = nullptr;
    Close();
    return Status::Tss(rc, "Esys_Initialize");
  }
  rc = Esys_Startup(esys_, TPM2_SU_CLEAR);
  // TPM_RC_INITIALIZE: the platform (or swtpm's startup-clear flag) already started it.
  if (rc != TSS2_RC_SUCCESS && (rc & 0xFFFF) != TPM2_RC_INITIALIZE) {
    Close();
    return Status::Tss(rc, "Esys_Startup");
  }
  return SetAuth(esys_, ESYS_TR_RH_OWNER, owner_auth);
}

void Context::Close() {
  for (auto& entry : handles_) Esys_TR_Close(esys_, &entry.second);
  handles_.clear();
  if (esys_ != nullptr) Esys_Finalize(&esys_);
  if (tcti_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_);
  esys_ = nullptr;
  tcti_ = nullptr;
}

Status Context::OpenHandle(TPM2_HANDLE handle, ESYS_TR* out) {
  auto found = handles_.find(handle);
  if (found != handles_.end()) {
    *out = found->second;
    return Status();
  }
  ESYS_TR tr = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(esys_, handle, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, &tr);
  if (rc != TSS2_RC_SUCCESS) {
    char hex[16];
    snprintf(hex, sizeof hex, "0x%08x", handle);
    return Status::Tss(rc, "Esys_TR_FromTPMPublic")
        .Detail(std::string("no object at handle ") + hex);
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
