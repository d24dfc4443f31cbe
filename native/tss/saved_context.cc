#include "saved_context.h"

namespace tss {

Status SavedContext::Save(ESYS_CONTEXT* esys, ESYS_TR object) {
  TPMS_CONTEXT* saved = nullptr;
  TSS_CALL(Esys_ContextSave, esys, object, &saved);
  blob_.reset(saved);
  return Status();
}

void SavedContext::FlushSession(ESYS_CONTEXT* esys) {
  TSS2_SYS_CONTEXT* sys = nullptr;
  if (blob_ && Esys_GetSysContext(esys, &sys) == TSS2_RC_SUCCESS) {
    Tss2_Sys_FlushContext(sys, blob_->savedHandle);
  }
  blob_.reset();
}

Status SavedContext::Load(ESYS_CONTEXT* esys, bool is_session, ESYS_TR* out) {
  const TSS2_RC rc = Esys_ContextLoad(esys, blob_.get(), out);
  if (rc != TSS2_RC_SUCCESS) {
    Status failed = Status::Tss(rc, "Esys_ContextLoad");
    // A lost connection or full slots are the caller's to handle; anything else the
    // TPM says means the blob is no good here (a restart, another epoch, a session
    // another process flushed): dropped, so the caller makes the object anew.
    if (IsConnectionLost(failed) || IsSlotShortage(failed)) return failed;
    blob_.reset();
    *out = ESYS_TR_NONE;
    return Status();
  }
  if (is_session) blob_.reset();
  return Status();
}

}  // namespace tss
