#include "certify.h"

#include <cstring>

#include "auth.h"
#include "esys_ptr.h"
#include "keys.h"
#include "loader.h"
#include "marshal.h"
#include "transient.h"

namespace tss {

Status Certify(Context& ctx, const KeyRef& key, const AkSpec& ak,
               const std::vector<uint8_t>& qualifying_data, Certification* out) {
  TPM2B_DATA extra = {};
  static_assert(kMaxQualifyingData <= sizeof extra.buffer, "qualifying data fits a TPM2B_DATA");
  if (qualifying_data.size() > kMaxQualifyingData) {
    return Status::Fail(ErrorCode::kInvalidArgument, "qualifying data longer than 64 bytes");
  }
  extra.size = static_cast<UINT16>(qualifying_data.size());
  if (!qualifying_data.empty()) memcpy(extra.buffer, qualifying_data.data(), extra.size);

  // Cached objects out first: then the key (with its parent, for a key file) and the AK
  // take at most three slots, what a resource manager gives one connection.
  ctx.ReleaseSlots();
  Transient loaded(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadKey(ctx, key, &loaded));
  Transient signer(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadAk(ctx, ak, AkHandleUse::kPersist, &signer));

  // TPM2_Certify takes ADMIN role for the key: its authValue, since tpm-jwt's keys
  // never set adminWithPolicy (a PCR-bound key included). A session may authorise only
  // one handle of a command: the salted session goes to the key, whose authValue may
  // be secret, and the AK's empty authValue goes in a password session.
  ScopedAuth key_auth(ctx.esys(), loaded.get());
  TSS_RETURN_IF_ERROR(key_auth.Set(key.auth));
  ESYS_TR auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(0, &auth));
  TPMT_SIG_SCHEME the_aks_own = {};
  the_aks_own.scheme = TPM2_ALG_NULL;
  TPM2B_ATTEST* attest_raw = nullptr;
  TPMT_SIGNATURE* signature_raw = nullptr;
  TSS_CALL(Esys_Certify, ctx.esys(), loaded.get(), signer.get(), auth, ESYS_TR_PASSWORD,
           ESYS_TR_NONE, &extra, &the_aks_own, &attest_raw, &signature_raw);
  EsysPtr<TPM2B_ATTEST> attest(attest_raw);
  EsysPtr<TPMT_SIGNATURE> signature(signature_raw);

  out->attest.assign(attest->attestationData, attest->attestationData + attest->size);
  out->signature = ToWire(*signature, Tss2_MU_TPMT_SIGNATURE_Marshal);
  TSS_RETURN_IF_ERROR(ReadObjectPublic(ctx.esys(), signer.get(), &out->ak_public));
  return ReadObjectPublic(ctx.esys(), loaded.get(), &out->key_public);
}

}  // namespace tss
