// NV indices: where manufacturers and platforms leave certificates (the EK's, its
// chain, a platform's AK certificate and template) for anyone to read.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "context.h"

namespace tss {

// The whole content of NV index `index`, read in chunks the TPM accepts, authorised as
// the index allows: its own (empty) authValue, or else the owner's. A missing or
// never-written index is ERR_TPM_KEY_NOT_FOUND; one that is read-locked or readable only
// with a policy, ERR_TPM_UNSUPPORTED.
Status ReadNv(Context& ctx, TPM2_HANDLE index, std::vector<uint8_t>* out);

}  // namespace tss
