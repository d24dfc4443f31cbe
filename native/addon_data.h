// Per-environment state of the addon (workers and the main thread each load it anew).
#pragma once

#include <napi.h>

struct AddonData {
  // TpmJwtError, handed over by lib/native.ts so native failures are the same typed
  // errors the rest of the library throws.
  Napi::FunctionReference error_class;
};
