// Owns a transient TPM object and flushes it when it goes out of scope, on every path:
// swtpm and /dev/tpm0 have no resource manager, and a leaked slot breaks the next
// caller with TPM_RC_OBJECT_MEMORY.
#pragma once

#include <tss2/tss2_esys.h>

namespace tss {

class Transient {
 public:
  explicit Transient(ESYS_CONTEXT* esys) : esys_(esys) {}
  ~Transient() { Flush(); }
  Transient(const Transient&) = delete;
  Transient& operator=(const Transient&) = delete;

  // Takes an object that must be flushed (a loaded key or a primary).
  void Own(ESYS_TR tr) {
    Flush();
    tr_ = tr;
    owned_ = true;
  }
  // Refers to an object that outlives this scope (a persistent handle).
  void Borrow(ESYS_TR tr) {
    Flush();
    tr_ = tr;
    owned_ = false;
  }
  ESYS_TR get() const { return tr_; }
  // The TPM has flushed the object itself (e.g. TPM2_SequenceComplete).
  void Release() {
    tr_ = ESYS_TR_NONE;
    owned_ = false;
  }

 private:
  void Flush() {
    if (owned_ && tr_ != ESYS_TR_NONE) Esys_FlushContext(esys_, tr_);
    tr_ = ESYS_TR_NONE;
    owned_ = false;
  }

  ESYS_CONTEXT* esys_;
  ESYS_TR tr_ = ESYS_TR_NONE;
  bool owned_ = false;
};

}  // namespace tss
