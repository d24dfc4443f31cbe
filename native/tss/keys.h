// Key lifecycle on the TPM: create under the storage parent, read the public area,
// make persistent, evict, and list what occupies a handle range.
#pragma once

#include <cstdint>
#include <vector>

#include "context.h"
#include "key_ref.h"
#include "policy.h"
#include "templates.h"

namespace tss {

// Creates a signing key under `parent` (see LoadParent) and returns its blobs. With
// a PCR policy, the key's authPolicy is that policy over the PCRs' current values and
// userWithAuth is clear, so the auth value alone can never authorise it.
Status CreateKey(Context& ctx, TPM2_HANDLE parent, const KeySpec& spec, const SecretBytes& auth,
                 const PcrPolicy& policy, KeyBlob* out);

// The public area of the object at a persistent handle.
Status ReadPublic(Context& ctx, TPM2_HANDLE handle, TPM2B_PUBLIC* out);

// TPM2_ReadPublic of an object this context has open: its public area and, when
// asked, its Name and Qualified Name.
Status ReadObjectPublic(ESYS_CONTEXT* esys, ESYS_TR object, TPM2B_PUBLIC* out,
                        TPM2B_NAME* name = nullptr, TPM2B_NAME* qualified_name = nullptr);
// The same public area marshaled, as the addon returns public areas (a TPM2B_PUBLIC).
Status ReadObjectPublic(ESYS_CONTEXT* esys, ESYS_TR object, std::vector<uint8_t>* out);

// Makes the key (given as blobs) persistent at `handle`. An occupied handle is
// ERR_TPM_HANDLE_IN_USE unless `force`, which evicts the old object only after the
// new key has loaded, so a key that cannot load never costs the old one.
Status Persist(Context& ctx, const KeyRef& key, TPM2_HANDLE handle, bool force);

// What is at the SRK's handle (0x81000001) compared with the storage primary.
enum class SrkState { kAbsent, kStoragePrimary, kOther };

// Reads the SRK's handle, and with `persist` makes the storage primary persistent there
// (TCG TPM v2.0 Provisioning Guidance's SRK), so that no cold start creates it again.
// Another object there is ERR_TPM_HANDLE_IN_USE unless `force`. `out` is the state
// after the call.
Status PersistentSrk(Context& ctx, bool persist, bool force, SrkState* out);

// Whether a persistent object is at `handle`.
Status IsOccupied(Context& ctx, TPM2_HANDLE handle, bool* out);

// Makes the loaded `object` persistent at `handle`, evicting what is there first when
// `occupied` (the TPM has no atomic replace: a failure then says the handle is empty).
Status MakePersistent(Context& ctx, ESYS_TR object, TPM2_HANDLE handle, bool occupied);

// Removes the persistent object at `handle`.
Status Evict(Context& ctx, TPM2_HANDLE handle);

// Handles in use from `first` on (at most `max`), within first's handle type.
Status ListHandles(Context& ctx, TPM2_HANDLE first, uint32_t max, std::vector<TPM2_HANDLE>* out);

}  // namespace tss
