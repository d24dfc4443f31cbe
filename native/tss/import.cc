#include "import.h"

#include <tss2/tss2_mu.h>

#include <cstring>

#include "esys_ptr.h"
#include "keys.h"
#include "loader.h"
#include "marshal.h"
#include "transient.h"

namespace tss {

namespace {

template <typename TPM2B, typename Bytes>
Status Fill(TPM2B* out, const Bytes& bytes, const char* what) {
  if (bytes.size() > sizeof out->buffer) {
    return Status::Fail(ErrorCode::kInvalidArgument,
                        std::string(what) + " is too long for the TPM");
  }
  out->size = static_cast<UINT16>(bytes.size());
  if (!bytes.empty()) memcpy(out->buffer, bytes.data(), bytes.size());
  return Status();
}

constexpr TPMA_OBJECT kNotForImport =
    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;

}  // namespace

Status MarshalImportable(const ImportableKey& key, std::vector<uint8_t>* pub,
                         SecretBytes* sensitive) {
  TPM2B_PUBLIC public_area = SigningKeyTemplate(key.spec);
  TPMT_PUBLIC& area = public_area.publicArea;
  area.objectAttributes &= ~kNotForImport;

  // The plaintext key: zeroed when this returns, whichever way.
  Wiped<TPM2B_SENSITIVE> sensitive_area;
  TPMT_SENSITIVE& secret = sensitive_area->sensitiveArea;
  secret.sensitiveType = key.spec.type;
  TSS_RETURN_IF_ERROR(Fill(&secret.authValue, key.auth, "auth value"));
  if (key.spec.type == TPM2_ALG_RSA) {
    area.parameters.rsaDetail.exponent = key.rsa_exponent;
    TSS_RETURN_IF_ERROR(Fill(&area.unique.rsa, key.rsa_modulus, "RSA modulus"));
    TSS_RETURN_IF_ERROR(Fill(&secret.sensitive.rsa, key.secret, "RSA prime"));
  } else {
    TSS_RETURN_IF_ERROR(Fill(&area.unique.ecc.x, key.ecc_x, "EC point"));
    TSS_RETURN_IF_ERROR(Fill(&area.unique.ecc.y, key.ecc_y, "EC point"));
    TSS_RETURN_IF_ERROR(Fill(&secret.sensitive.ecc, key.secret, "EC private scalar"));
  }
  *pub = MarshalPublic(public_area);

  sensitive->assign(sizeof(TPM2B_SENSITIVE), 0);
  size_t offset = 0;
  TSS2_RC rc = Tss2_MU_TPM2B_SENSITIVE_Marshal(sensitive_area.get(), sensitive->data(),
                                               sensitive->size(), &offset);
  if (rc != TSS2_RC_SUCCESS) return Status::Tss(rc, "Tss2_MU_TPM2B_SENSITIVE_Marshal");
  sensitive->resize(offset);
  return Status();
}

Status ReadParentPublic(Context& ctx, TPM2_HANDLE parent, std::vector<uint8_t>* out) {
  Transient parent_obj(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadParent(ctx, parent, &parent_obj));
  return ReadObjectPublic(ctx.esys(), parent_obj.get(), out);
}

Status Import(Context& ctx, TPM2_HANDLE parent, const std::vector<uint8_t>& pub,
              const std::vector<uint8_t>& duplicate, const std::vector<uint8_t>& seed,
              std::vector<uint8_t>* priv) {
  TPM2B_PUBLIC object_public;
  TSS_RETURN_IF_ERROR(UnmarshalPublic(pub, &object_public));
  TPM2B_PRIVATE dup;
  TSS_RETURN_IF_ERROR(UnmarshalPrivate(duplicate, &dup));
  TPM2B_ENCRYPTED_SECRET in_sym_seed = {};
  if (seed.size() > sizeof in_sym_seed.secret) {
    return Status::Fail(ErrorCode::kInvalidArgument, "encrypted seed is too long for the TPM");
  }
  in_sym_seed.size = static_cast<UINT16>(seed.size());
  memcpy(in_sym_seed.secret, seed.data(), seed.size());
  const TPM2B_DATA no_inner_key = {};
  TPMT_SYM_DEF_OBJECT no_inner_wrapper = {};
  no_inner_wrapper.algorithm = TPM2_ALG_NULL;

  Transient parent_obj(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadParent(ctx, parent, &parent_obj));
  ESYS_TR auth = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT, &auth));
  TPM2B_PRIVATE* out_raw = nullptr;
  TSS_CALL(Esys_Import, ctx.esys(), parent_obj.get(), auth, ESYS_TR_NONE, ESYS_TR_NONE,
           &no_inner_key, &object_public, &dup, &in_sym_seed, &no_inner_wrapper, &out_raw);
  EsysPtr<TPM2B_PRIVATE> out(out_raw);
  *priv = MarshalPrivate(*out);
  return Status();
}

}  // namespace tss
