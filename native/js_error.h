// Turns a tss::Status into the JavaScript error the library throws.
#pragma once

#include <napi.h>

#include "tss/status.h"

// A TpmJwtError (code, message, tpmRc, tpmRcText, command) for a failed status.
Napi::Value ToJsError(Napi::Env env, const tss::Status& status);
