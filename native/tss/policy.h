// PCR policies: a key whose authPolicy is PolicyPCR over chosen PCRs (and, with an
// auth value, PolicyAuthValue) signs only while those PCRs hold the values they had
// when the key was made.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <vector>

#include "status.h"
#include "transient.h"

namespace tss {

struct PcrPolicy {
  TPMI_ALG_HASH bank = TPM2_ALG_SHA256;
  std::vector<uint8_t> indexes;  // empty: no PCR policy
  bool auth_value = false;       // PolicyAuthValue after PolicyPCR

  bool enabled() const { return !indexes.empty(); }
};

// The digest a key's authPolicy must hold for `policy`, over the PCRs' current
// values (computed by the TPM in a trial session).
Status PolicyDigest(ESYS_CONTEXT* esys, const PcrPolicy& policy, TPM2B_DIGEST* out);

// An empty policy session in `hash` (the name algorithm of the key it will authorise),
// owned by `out` and kept across commands until `out` flushes it; the caller adds the
// policy commands.
Status StartPolicySession(ESYS_CONTEXT* esys, TPMI_ALG_HASH hash, Transient* out);

// A policy session that satisfies `policy` now; flushed when `out` goes.
Status StartPolicy(ESYS_CONTEXT* esys, const PcrPolicy& policy, Transient* out);

}  // namespace tss
