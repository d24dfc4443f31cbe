// A TPM context saved with TPM2_ContextSave: what lets an object or session leave the
// TPM's few slots and come back later without being re-created. tpm2-tss appends its
// own record of the object to the blob (for a session: the session key), so the blob
// is a secret and is zeroed when it is released. Plain C++: no N-API here.
#pragma once

#include <tss2/tss2_esys.h>

#include "esys_ptr.h"
#include "status.h"

namespace tss {

class SavedContext {
 public:
  SavedContext() = default;
  bool empty() const { return blob_ == nullptr; }
  void Reset() { blob_.reset(); }

  // TPM2_ContextSave of `object`. tpm2-tss closes a session's ESYS_TR when it is saved;
  // an object stays loaded (the caller flushes it).
  Status Save(ESYS_CONTEXT* esys, ESYS_TR object);
  // TPM2_ContextLoad of the blob. A session's blob is used up by loading it (the TPM
  // accepts each one once), so it is released; an object's may be loaded again. A blob
  // the TPM no longer accepts is stale: it is released and `out` is ESYS_TR_NONE, with
  // success. Only a lost connection or full slots fail, and keep the blob.
  Status Load(ESYS_CONTEXT* esys, bool is_session, ESYS_TR* out);
  // For a saved session: TPM2_FlushContext of its handle, which a saved session keeps
  // in the TPM, then releases the blob. It needs no free slot, unlike loading it to
  // flush it (ESYS has no handle for a saved session: this goes through SAPI).
  void FlushSession(ESYS_CONTEXT* esys);

 private:
  EsysSecretPtr<TPMS_CONTEXT> blob_;
};

}  // namespace tss
