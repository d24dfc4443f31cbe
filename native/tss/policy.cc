#include "policy.h"

#include "esys_ptr.h"

namespace tss {

namespace {

Status SelectionOf(const PcrPolicy& policy, TPML_PCR_SELECTION* out) {
  *out = {};
  out->count = 1;
  TPMS_PCR_SELECTION& selection = out->pcrSelections[0];
  selection.hash = policy.bank;
  selection.sizeofSelect = 3;  // PCRs 0-23
  for (uint8_t index : policy.indexes) {
    if (index > 23) return Status::Fail(ErrorCode::kInvalidArgument, "PCR indexes are 0 to 23");
    selection.pcrSelect[index / 8] |= static_cast<uint8_t>(1u << (index % 8));
  }
  return Status();
}

Status StartSession(ESYS_CONTEXT* esys, TPM2_SE type, TPMI_ALG_HASH hash, Transient* out) {
  TPMT_SYM_DEF no_symmetric = {};
  no_symmetric.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  TSS_CALL(Esys_StartAuthSession, esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
           ESYS_TR_NONE, nullptr, type, &no_symmetric, hash, &session);
  out->Own(session);
  return Status();
}

Status Apply(ESYS_CONTEXT* esys, ESYS_TR session, const PcrPolicy& policy) {
  TPML_PCR_SELECTION selection;
  TSS_RETURN_IF_ERROR(SelectionOf(policy, &selection));
  // An empty pcrDigest makes the TPM use the PCRs' current values.
  const TPM2B_DIGEST current = {};
  TSS_CALL(Esys_PolicyPCR, esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current,
           &selection);
  if (policy.auth_value) {
    TSS_CALL(Esys_PolicyAuthValue, esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
  }
  return Status();
}

}  // namespace

Status PolicyDigest(ESYS_CONTEXT* esys, const PcrPolicy& policy, TPM2B_DIGEST* out) {
  Transient trial(esys);
  TSS_RETURN_IF_ERROR(StartSession(esys, TPM2_SE_TRIAL, TPM2_ALG_SHA256, &trial));
  TSS_RETURN_IF_ERROR(Apply(esys, trial.get(), policy));
  TPM2B_DIGEST* digest_raw = nullptr;
  TSS_CALL(Esys_PolicyGetDigest, esys, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
           &digest_raw);
  EsysPtr<TPM2B_DIGEST> digest(digest_raw);
  *out = *digest;
  return Status();
}

Status StartPolicySession(ESYS_CONTEXT* esys, TPMI_ALG_HASH hash, Transient* out) {
  TSS_RETURN_IF_ERROR(StartSession(esys, TPM2_SE_POLICY, hash, out));
  // Kept after the command so the guard's flush is the one path that ends it.
  TSS_CALL(Esys_TRSess_SetAttributes, esys, out->get(), TPMA_SESSION_CONTINUESESSION,
           TPMA_SESSION_CONTINUESESSION);
  return Status();
}

Status StartPolicy(ESYS_CONTEXT* esys, const PcrPolicy& policy, Transient* out) {
  TSS_RETURN_IF_ERROR(StartPolicySession(esys, TPM2_ALG_SHA256, out));
  return Apply(esys, out->get(), policy);
}

}  // namespace tss
