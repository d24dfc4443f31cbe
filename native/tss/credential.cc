#include "credential.h"

#include "marshal.h"
#include "transient.h"

namespace tss {

Status ActivateCredential(Context& ctx, const AkSpec& ak, const std::vector<uint8_t>& ak_name,
                          const EkSpec& ek, const std::vector<uint8_t>& credential_blob,
                          const std::vector<uint8_t>& encrypted_secret, SecretBytes* out) {
  TPM2B_ID_OBJECT blob;
  TSS_RETURN_IF_ERROR(
      FromWire(credential_blob, Tss2_MU_TPM2B_ID_OBJECT_Unmarshal, "the credential blob", &blob));
  TPM2B_ENCRYPTED_SECRET secret;
  TSS_RETURN_IF_ERROR(FromWire(encrypted_secret, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal,
                               "the encrypted secret", &secret));

  // The AK and the EK are transient beside the cache: free its slots first (see Certify).
  ctx.ReleaseSlots();
  Transient signer(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadAk(ctx, ak, AkHandleUse::kExisting, &signer));
  if (!ak_name.empty()) {
    std::vector<uint8_t> name;
    TSS_RETURN_IF_ERROR(ObjectName(ctx.esys(), signer.get(), &name));
    if (name != ak_name) {
      return Status::Fail(ErrorCode::kTpmKeyNotFound,
                          "the AK this TPM has is not the one the challenge names: another "
                          "TPM, another AK type, or an AK persisted elsewhere (ak handle)");
    }
  }
  Transient endorsement(ctx.esys());
  TPMT_PUBLIC ek_public;
  TSS_RETURN_IF_ERROR(LoadEk(ctx, ek, &endorsement, &ek_public));
  Transient policy(ctx.esys());
  ESYS_TR ek_auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(EndorsementAuth(ctx, ek_public, &policy, &ek_auth));

  // ActivateCredential takes ADMIN role for the AK (its empty authValue: the AK never
  // sets adminWithPolicy). The salted session authorises it and encrypts the response,
  // the recovered secret; without encryption, a password session does.
  ESYS_TR ak_auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_ENCRYPT, &ak_auth));
  TPM2B_DIGEST* cert_info_raw = nullptr;
  TSS_CALL(Esys_ActivateCredential, ctx.esys(), signer.get(), endorsement.get(), ak_auth, ek_auth,
           ESYS_TR_NONE, &blob, &secret, &cert_info_raw);
  // The recovered secret is wiped before ESYS's copy of it is freed.
  EsysSecretPtr<TPM2B_DIGEST> cert_info(cert_info_raw);
  out->assign(cert_info->buffer, cert_info->buffer + cert_info->size);
  return Status();
}

}  // namespace tss
