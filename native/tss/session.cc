#include "session.h"

#include <cstring>

#include "esys_ptr.h"
#include "primary.h"
#include "transient.h"

namespace tss {

Status StartSaltedSession(ESYS_CONTEXT* esys, const SessionOptions& options, ESYS_TR* session,
                          std::vector<uint8_t>* salt_key_name) {
  // The salt key is made with a password session: no session exists yet, and an empty
  // hierarchy auth (the usual case) reveals nothing.
  Transient salt(esys);
  ESYS_TR tr = ESYS_TR_NONE;
  if (options.salt_with_ek) {
    TSS_RETURN_IF_ERROR(CreateEndorsementKey(esys, ESYS_TR_PASSWORD, TPM2_ALG_ECC, &tr));
  } else {
    TSS_RETURN_IF_ERROR(CreateStoragePrimary(esys, ESYS_TR_PASSWORD, &tr));
  }
  salt.Own(tr);

  TPM2B_NAME* name_raw = nullptr;
  TSS_CALL(Esys_TR_GetName, esys, salt.get(), &name_raw);
  EsysPtr<TPM2B_NAME> name(name_raw);
  salt_key_name->assign(name->name, name->name + name->size);
  if (!options.salt_key_name.empty() && options.salt_key_name != *salt_key_name) {
    return Status::Fail(ErrorCode::kTpmConnection,
                        "the TPM's salt key does not have the pinned Name (saltKeyName): "
                        "this is not the TPM you expect, or something sits between you");
  }

  TPMT_SYM_DEF symmetric = {};
  symmetric.algorithm = TPM2_ALG_AES;
  symmetric.keyBits.aes = 128;
  symmetric.mode.aes = TPM2_ALG_CFB;
  TSS_CALL(Esys_StartAuthSession, esys, salt.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
           ESYS_TR_NONE, nullptr, TPM2_SE_HMAC, &symmetric, TPM2_ALG_SHA256, session);
  return Status();
}

}  // namespace tss
