/*
 * The baseline tpm-jwt's sign path is measured against: a plain C loop of Esys_Sign
 * on one ESYS context and a persistent key, nothing else. Built and run by
 * bench/index.ts on the same TPM, key and digest.
 *
 *   raw-sign TCTI HANDLE COUNT SCHEME ENCRYPT
 *   SCHEME: rsassa | ecdsa; ENCRYPT: 0 = password session, 1 = salted HMAC session
 *   with parameter encryption (salted with the ECC storage primary, as tpm-jwt does).
 * Prints the signatures per second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#define CHECK(call)                                     \
  do {                                                  \
    TSS2_RC rc_ = (call);                               \
    if (rc_ != TSS2_RC_SUCCESS) {                       \
      fprintf(stderr, "%s failed: 0x%x\n", #call, rc_); \
      exit(1);                                          \
    }                                                   \
  } while (0)

static ESYS_TR salted_session(ESYS_CONTEXT *esys) {
  TPM2B_PUBLIC tmpl = {0};
  tmpl.publicArea.type = TPM2_ALG_ECC;
  tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
  tmpl.publicArea.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
                                     TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                     TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                     TPMA_OBJECT_NODA;
  tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
  tmpl.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
  tmpl.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  tmpl.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  tmpl.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  tmpl.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  TPM2B_SENSITIVE_CREATE sensitive = {0};
  TPM2B_DATA outside = {0};
  TPML_PCR_SELECTION pcrs = {0};
  ESYS_TR primary;
  CHECK(Esys_CreatePrimary(esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           &sensitive, &tmpl, &outside, &pcrs, &primary, NULL, NULL, NULL, NULL));
  TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB};
  ESYS_TR session;
  CHECK(Esys_StartAuthSession(esys, primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              NULL, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &session));
  CHECK(Esys_FlushContext(esys, primary));
  CHECK(Esys_TRSess_SetAttributes(esys, session,
                                  TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT, 0xff));
  return session;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: raw-sign TCTI HANDLE COUNT rsassa|ecdsa 0|1\n");
    return 2;
  }
  TSS2_TCTI_CONTEXT *tcti;
  ESYS_CONTEXT *esys;
  CHECK(Tss2_TctiLdr_Initialize(argv[1], &tcti));
  CHECK(Esys_Initialize(&esys, tcti, NULL));
  ESYS_TR key;
  CHECK(Esys_TR_FromTPMPublic(esys, (TPM2_HANDLE)strtoul(argv[2], NULL, 16), ESYS_TR_NONE,
                              ESYS_TR_NONE, ESYS_TR_NONE, &key));
  const long count = atol(argv[3]);
  const int ecdsa = strcmp(argv[4], "ecdsa") == 0;
  ESYS_TR auth = atoi(argv[5]) ? salted_session(esys) : ESYS_TR_PASSWORD;

  TPM2B_DIGEST digest = {.size = 32};
  memset(digest.buffer, 0x5a, 32);
  TPMT_SIG_SCHEME scheme = {.scheme = ecdsa ? TPM2_ALG_ECDSA : TPM2_ALG_RSASSA};
  scheme.details.any.hashAlg = TPM2_ALG_SHA256;
  TPMT_TK_HASHCHECK ticket = {.tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL};

  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (long i = 0; i < count; i++) {
    TPMT_SIGNATURE *signature;
    CHECK(Esys_Sign(esys, key, auth, ESYS_TR_NONE, ESYS_TR_NONE, &digest, &scheme, &ticket,
                    &signature));
    Esys_Free(signature);
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  const double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
  printf("%.3f\n", count / seconds);

  if (auth != ESYS_TR_PASSWORD) Esys_FlushContext(esys, auth);
  Esys_TR_Close(esys, &key);
  Esys_Finalize(&esys);
  Tss2_TctiLdr_Finalize(&tcti);
  return 0;
}
