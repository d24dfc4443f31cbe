// Ownership of the structures ESYS allocates for a command's outputs: each is freed with
// Esys_Free when its owner goes out of scope, on every path, errors included.
#pragma once

#include <tss2/tss2_esys.h>

#include <memory>

namespace tss {

struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};

template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

}  // namespace tss
