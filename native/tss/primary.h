// Primary keys: derived from a hierarchy's seed and a template, so the same template
// gives the same key each time; created for a purpose and flushed after it.
#pragma once

#include <tss2/tss2_esys.h>

#include "status.h"

namespace tss {

// TPM2_CreatePrimary of `tmpl` under `hierarchy`, authorised by `auth`; with
// `out_public`, the public area the TPM made (the template with its unique field filled in).
Status CreatePrimary(ESYS_CONTEXT* esys, ESYS_TR hierarchy, ESYS_TR auth, const TPM2B_PUBLIC& tmpl,
                     ESYS_TR* out, TPM2B_PUBLIC* out_public = nullptr);

// The endorsement key of `type` (TPM2_ALG_RSA or TPM2_ALG_ECC) from the TCG default
// template in templates.h, under the endorsement hierarchy; `auth` and `out_public` as
// for CreatePrimary.
Status CreateEndorsementKey(ESYS_CONTEXT* esys, ESYS_TR auth, TPMI_ALG_PUBLIC type, ESYS_TR* out,
                            TPM2B_PUBLIC* out_public = nullptr);

// The owner's storage primary of templates.h: ECC P-256, or RSA-2048 on a TPM
// without ECC.
Status CreateStoragePrimary(ESYS_CONTEXT* esys, ESYS_TR auth, ESYS_TR* out);

}  // namespace tss
