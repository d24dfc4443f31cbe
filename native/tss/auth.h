// Sets the authValue ESYS uses for the password session on an object.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "status.h"

namespace tss {

Status SetAuth(ESYS_CONTEXT* esys, ESYS_TR object, const std::vector<uint8_t>& auth);

}  // namespace tss
