// The attestation key (AK): a restricted signing key in the endorsement hierarchy. It
// signs only what the TPM itself produced (TPM2_Certify), so its signature over a
// key's Name is the TPM's word that the key lives there. A primary: the same template
// gives the same key on every call and in every process, so it is made, used and
// flushed, or kept at a persistent handle the caller picks.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "context.h"
#include "transient.h"

namespace tss {

struct AkSpec {
  // The standard template of this type (see AkTemplate, templates.h) unless `tmpl` is given.
  TPMI_ALG_PUBLIC type = TPM2_ALG_RSA;
  // A marshaled TPMT_PUBLIC to use instead: the AK template a platform keeps in NV next
  // to the AK certificate it issued (GCE Shielded VM).
  std::vector<uint8_t> tmpl;
  // Where the AK is persisted; 0: a transient AK, flushed after the call.
  TPM2_HANDLE handle = 0;
  // With AkHandleUse::kPersist: replace an object at `handle` that is not the AK.
  bool force = false;
};

// What LoadAk may do at the AK's persistent handle.
enum class AkHandleUse {
  // Use the AK there; persist a new one at an empty handle; refuse any other object
  // (ERR_TPM_HANDLE_IN_USE) unless `force`, which replaces it. For attestation.
  kPersist,
  // Use the AK there and nothing else: an empty handle or another object is
  // ERR_TPM_KEY_NOT_FOUND, and nothing is created, persisted or evicted. For credential
  // activation, whose challenge comes from elsewhere.
  kExisting,
};

// Whether a public area is one an attestation can rest on: a restricted signing key
// (not a decryption key) bound to its TPM (fixedTPM|fixedParent).
bool IsAttestationKey(const TPMT_PUBLIC& pub);

// The AK of `spec`, loaded: without a handle the transient primary of its template,
// owned by `out`; with one, the object there when it is that AK (the template's
// public area, and an endorsement-hierarchy primary rather than a key with the same
// template under another parent, such as tpm2_createak's), borrowed by `out`. What else
// happens at the handle is `use`'s to say.
Status LoadAk(Context& ctx, const AkSpec& spec, AkHandleUse use, Transient* out);

}  // namespace tss
