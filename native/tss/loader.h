// Brings the objects a call needs into the TPM: the storage parent and the key itself.
// Everything loaded here is held by a Transient, so it is flushed on every path.
#pragma once

#include "context.h"
#include "key_ref.h"
#include "transient.h"

namespace tss {

// The parent of created and imported keys. TPM2_RH_OWNER means the storage primary
// of templates.h (ECC P-256, or RSA-2048 on a TPM without ECC), created once and then
// reused through the context's object cache (Context::StoragePrimary); a persistent
// handle is used as is. New keys never go under the persistent SRK: only a Load can
// show that it is the storage primary itself.
// `out` only borrows it: the context decides when it is flushed.
Status LoadParent(Context& ctx, TPM2_HANDLE parent, Transient* out);

// The key: a persistent one as it is; one given as blobs loaded under its parent once
// (for the storage primary, under the persistent SRK when it is that key: no
// CreatePrimary), then reused through the context's object cache. `out` only borrows it. Its
// authValue is the caller's to set (ScopedAuth), only around the command that needs it.
Status LoadKey(Context& ctx, const KeyRef& key, Transient* out);

}  // namespace tss
