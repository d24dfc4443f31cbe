#include "sign.h"

#include <cstring>
#include <memory>

#include "loader.h"
#include "transient.h"

namespace tss {

namespace {

void AppendPadded(const TPM2B_ECC_PARAMETER& value, size_t width,
                  std::vector<uint8_t>* out) {
  // A TPM drops leading zero bytes; JWS wants fixed-width integers.
  const size_t size = value.size < width ? value.size : width;
  out->insert(out->end(), width - size, 0);
  out->insert(out->end(), value.buffer + (value.size - size), value.buffer + value.size);
}

}  // namespace

Status Sign(Context& ctx, const KeyRef& key, const std::vector<uint8_t>& digest,
            const SignScheme& scheme, std::vector<uint8_t>* out) {
  TPM2B_DIGEST in_digest = {};
  if (digest.size() > sizeof in_digest.buffer) {
    return Status::Fail("ERR_INVALID_ARGUMENT", "digest longer than 64 bytes");
  }
  in_digest.size = static_cast<UINT16>(digest.size());
  memcpy(in_digest.buffer, digest.data(), digest.size());

  TPMT_SIG_SCHEME in_scheme = {};
  in_scheme.scheme = scheme.scheme;
  in_scheme.details.any.hashAlg = scheme.hash;

  TPMT_TK_HASHCHECK validation = {};
  validation.tag = TPM2_ST_HASHCHECK;
  validation.hierarchy = TPM2_RH_NULL;

  Transient loaded(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadKey(ctx, key, &loaded));

  TPMT_SIGNATURE* sig_raw = nullptr;
  TSS_CALL(Esys_Sign, ctx.esys(), loaded.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
           ESYS_TR_NONE, &in_digest, &in_scheme, &validation, &sig_raw);
  std::unique_ptr<TPMT_SIGNATURE, void (*)(void*)> sig(sig_raw, Esys_Free);

  out->clear();
  switch (sig->sigAlg) {
    case TPM2_ALG_RSASSA:
    case TPM2_ALG_RSAPSS: {
      const TPM2B_PUBLIC_KEY_RSA& rsa = sig->signature.rsassa.sig;
      out->assign(rsa.buffer, rsa.buffer + rsa.size);
      break;
    }
    case TPM2_ALG_ECDSA: {
      AppendPadded(sig->signature.ecdsa.signatureR, scheme.coordinate_size, out);
      AppendPadded(sig->signature.ecdsa.signatureS, scheme.coordinate_size, out);
      break;
    }
    default:
      return Status::Fail("ERR_TPM_UNSUPPORTED", "the TPM returned an unexpected signature type");
  }
  return Status();
}

}  // namespace tss
