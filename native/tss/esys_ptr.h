// Ownership of the structures ESYS allocates for a command's outputs: each is freed with
// Esys_Free when its owner goes out of scope, on every path, errors included.
#pragma once

#include <tss2/tss2_esys.h>

#include <memory>

#include "secret.h"

namespace tss {

struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};

template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

// For outputs that hold a secret (a recovered credential, a saved context with its
// session key): zeroed before ESYS frees them, since a freed buffer can be handed out
// again.
struct EsysWipeFree {
  template <typename T>
  void operator()(T* p) const {
    Wipe(p, sizeof *p);
    Esys_Free(p);
  }
};

template <typename T>
using EsysSecretPtr = std::unique_ptr<T, EsysWipeFree>;

}  // namespace tss
