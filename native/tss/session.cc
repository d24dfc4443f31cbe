#include "session.h"

namespace tss {

Status StartSaltedSession(ESYS_CONTEXT* esys, ESYS_TR salt_key, ESYS_TR* session) {
  TPMT_SYM_DEF symmetric = {};
  symmetric.algorithm = TPM2_ALG_AES;
  symmetric.keyBits.aes = 128;
  symmetric.mode.aes = TPM2_ALG_CFB;
  TSS_CALL(Esys_StartAuthSession, esys, salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
           ESYS_TR_NONE, nullptr, TPM2_SE_HMAC, &symmetric, TPM2_ALG_SHA256, session);
  return Status();
}

}  // namespace tss
