#include "primary.h"

#include "esys_ptr.h"
#include "templates.h"

namespace tss {

Status CreatePrimary(ESYS_CONTEXT* esys, ESYS_TR hierarchy, ESYS_TR auth, const TPM2B_PUBLIC& tmpl,
                     ESYS_TR* out, TPM2B_PUBLIC* out_public) {
  const TPM2B_SENSITIVE_CREATE sensitive = {};
  const TPM2B_DATA outside_info = {};
  const TPML_PCR_SELECTION creation_pcr = {};
  TPM2B_PUBLIC* pub_raw = nullptr;
  TSS_CALL(Esys_CreatePrimary, esys, hierarchy, auth, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl,
           &outside_info, &creation_pcr, out, out_public != nullptr ? &pub_raw : nullptr, nullptr,
           nullptr, nullptr);
  EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
  if (out_public != nullptr) *out_public = *pub;
  return Status();
}

Status CreateEndorsementKey(ESYS_CONTEXT* esys, ESYS_TR auth, TPMI_ALG_PUBLIC type, ESYS_TR* out,
                            TPM2B_PUBLIC* out_public) {
  return CreatePrimary(esys, ESYS_TR_RH_ENDORSEMENT, auth, EndorsementKeyTemplate(type), out,
                       out_public);
}

Status CreateStoragePrimary(ESYS_CONTEXT* esys, ESYS_TR auth, ESYS_TR* out) {
  Status s = CreatePrimary(esys, ESYS_TR_RH_OWNER, auth, StoragePrimaryTemplate(TPM2_ALG_ECC), out);
  if (!s.ok() && s.code() == ErrorCode::kTpmUnsupported) {
    s = CreatePrimary(esys, ESYS_TR_RH_OWNER, auth, StoragePrimaryTemplate(TPM2_ALG_RSA), out);
  }
  return s;
}

}  // namespace tss
