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
  TSS_CALL(Esys_ContextLoad, esys, blob_.get(), out);
  if (is_session) blob_.reset();
  return Status();
}

}  // namespace tss
