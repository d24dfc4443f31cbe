// The authValue ESYS uses for an object's HMAC or password session. tpm2-tss keeps a
// copy in its record of the object for as long as the object is open, so the value is
// set only for the commands that need it and cleared right after.
#pragma once

#include <tss2/tss2_esys.h>

#include "secret.h"
#include "status.h"

namespace tss {

Status SetAuth(ESYS_CONTEXT* esys, ESYS_TR object, const SecretBytes& auth);

// Overwrites tpm2-tss's copy of the object's authValue with an empty one.
void ClearAuth(ESYS_CONTEXT* esys, ESYS_TR object);

// Sets an object's authValue for the length of a scope, and clears it when the scope
// ends, whichever way it ends.
class ScopedAuth {
 public:
  ScopedAuth(ESYS_CONTEXT* esys, ESYS_TR object) : esys_(esys), object_(object) {}
  ~ScopedAuth() {
    if (set_) ClearAuth(esys_, object_);
  }
  ScopedAuth(const ScopedAuth&) = delete;
  ScopedAuth& operator=(const ScopedAuth&) = delete;

  Status Set(const SecretBytes& auth) {
    set_ = true;
    return SetAuth(esys_, object_, auth);
  }

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR object_;
  bool set_ = false;
};

}  // namespace tss
