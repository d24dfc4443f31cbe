// Brings the objects a call needs into the TPM: the storage parent and the key itself.
// Everything loaded here is held by a Transient, so it is flushed on every path.
#pragma once

#include "context.h"
#include "key_ref.h"
#include "transient.h"

namespace tss {

// The parent of created and imported keys. TPM2_RH_OWNER means the storage primary
// of templates.h, created now (ECC P-256, or RSA-2048 on a TPM without ECC) and
// flushed when `out` goes; a persistent handle is borrowed as is.
Status LoadParent(Context& ctx, TPM2_HANDLE parent, Transient* out);

// The key: borrowed when persistent, loaded under its parent (and flushed when `out`
// goes) when given as blobs. Its authValue is the caller's to set (ScopedAuth), only
// around the command that needs it.
Status LoadKey(Context& ctx, const KeyRef& key, Transient* out);

}  // namespace tss
