#include "sign.h"

#include <cstring>

#include "auth.h"
#include "esys_ptr.h"
#include "loader.h"
#include "policy.h"
#include "transient.h"

namespace tss {

namespace {

void AppendPadded(const TPM2B_ECC_PARAMETER& value, size_t width, std::vector<uint8_t>* out) {
  // A TPM drops leading zero bytes; JWS wants fixed-width integers.
  const size_t size = value.size < width ? value.size : width;
  out->insert(out->end(), width - size, 0);
  out->insert(out->end(), value.buffer + (value.size - size), value.buffer + value.size);
}

// TPM2_Sign of a digest with its hash-check ticket; the JWS form of the result.
Status SignWithTicket(Context& ctx, const KeyRef& key, const TPM2B_DIGEST& digest,
                      const TPMT_TK_HASHCHECK& validation, const SignScheme& scheme,
                      std::vector<uint8_t>* out) {
  TPMT_SIG_SCHEME in_scheme = {};
  in_scheme.scheme = scheme.scheme;
  in_scheme.details.any.hashAlg = scheme.hash;

  Transient loaded(ctx.esys());
  TSS_RETURN_IF_ERROR(LoadKey(ctx, key, &loaded));
  // Before `loaded` is flushed, tpm2-tss's copy of the auth value is cleared.
  ScopedAuth key_auth(ctx.esys(), loaded.get());
  TSS_RETURN_IF_ERROR(key_auth.Set(key.auth));

  // The digest (the first parameter) goes encrypted; the signature is public anyway.
  // A key with a PCR policy is authorised by a policy session, and the salted session
  // rides along only to encrypt.
  Transient policy(ctx.esys());
  ESYS_TR auth = ESYS_TR_NONE;
  ESYS_TR crypt = ESYS_TR_NONE;
  if (key.policy.enabled()) {
    TSS_RETURN_IF_ERROR(StartPolicy(ctx.esys(), key.policy, &policy));
    auth = policy.get();
    TSS_RETURN_IF_ERROR(ctx.CryptSession(TPMA_SESSION_DECRYPT, &crypt));
  } else {
    TSS_RETURN_IF_ERROR(ctx.Auth(TPMA_SESSION_DECRYPT, &auth));
  }
  TPMT_SIGNATURE* sig_raw = nullptr;
  TSS_CALL(Esys_Sign, ctx.esys(), loaded.get(), auth, crypt, ESYS_TR_NONE, &digest, &in_scheme,
           &validation, &sig_raw);
  EsysPtr<TPMT_SIGNATURE> sig(sig_raw);

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
      return Status::Fail(ErrorCode::kTpmUnsupported,
                          "the TPM returned an unexpected signature type");
  }
  return Status();
}

// The digest of `message` and the TPM's ticket saying it hashed it.
Status HashInTpm(ESYS_CONTEXT* esys, TPMI_ALG_HASH alg, const std::vector<uint8_t>& message,
                 TPM2B_DIGEST* digest, TPMT_TK_HASHCHECK* ticket) {
  TPM2B_DIGEST* digest_raw = nullptr;
  TPMT_TK_HASHCHECK* ticket_raw = nullptr;
  TPM2B_MAX_BUFFER chunk = {};
  const size_t max = sizeof chunk.buffer;
  if (message.size() <= max) {
    chunk.size = static_cast<UINT16>(message.size());
    if (!message.empty()) memcpy(chunk.buffer, message.data(), message.size());
    TSS_CALL(Esys_Hash, esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &chunk, alg,
             ESYS_TR_RH_OWNER, &digest_raw, &ticket_raw);
  } else {
    const TPM2B_AUTH no_auth = {};
    ESYS_TR sequence_tr = ESYS_TR_NONE;
    TSS_CALL(Esys_HashSequenceStart, esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &no_auth, alg,
             &sequence_tr);
    Transient sequence(esys);
    sequence.Own(sequence_tr);
    size_t offset = 0;
    // Every chunk but the last goes through SequenceUpdate; the last, which may be
    // full too, through SequenceComplete.
    while (message.size() - offset > max) {
      chunk.size = static_cast<UINT16>(max);
      memcpy(chunk.buffer, message.data() + offset, max);
      TSS_CALL(Esys_SequenceUpdate, esys, sequence.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
               ESYS_TR_NONE, &chunk);
      offset += max;
    }
    chunk.size = static_cast<UINT16>(message.size() - offset);
    memcpy(chunk.buffer, message.data() + offset, chunk.size);
    TSS_CALL(Esys_SequenceComplete, esys, sequence.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
             ESYS_TR_NONE, &chunk, ESYS_TR_RH_OWNER, &digest_raw, &ticket_raw);
    sequence.Release();  // SequenceComplete flushed it
  }
  EsysPtr<TPM2B_DIGEST> owned_digest(digest_raw);
  EsysPtr<TPMT_TK_HASHCHECK> owned_ticket(ticket_raw);
  *digest = *owned_digest;
  *ticket = *owned_ticket;
  return Status();
}

}  // namespace

Status Sign(Context& ctx, const KeyRef& key, const std::vector<uint8_t>& digest,
            const SignScheme& scheme, std::vector<uint8_t>* out) {
  TPM2B_DIGEST in_digest = {};
  if (digest.size() > sizeof in_digest.buffer) {
    return Status::Fail(ErrorCode::kInvalidArgument, "digest longer than 64 bytes");
  }
  in_digest.size = static_cast<UINT16>(digest.size());
  memcpy(in_digest.buffer, digest.data(), digest.size());
  // The key is unrestricted: a NULL ticket says the digest was not made by the TPM.
  TPMT_TK_HASHCHECK validation = {};
  validation.tag = TPM2_ST_HASHCHECK;
  validation.hierarchy = TPM2_RH_NULL;
  return SignWithTicket(ctx, key, in_digest, validation, scheme, out);
}

Status SignMessage(Context& ctx, const KeyRef& key, const std::vector<uint8_t>& message,
                   const SignScheme& scheme, std::vector<uint8_t>* out) {
  TPM2B_DIGEST digest = {};
  TPMT_TK_HASHCHECK ticket = {};
  TSS_RETURN_IF_ERROR(HashInTpm(ctx.esys(), scheme.hash, message, &digest, &ticket));
  return SignWithTicket(ctx, key, digest, ticket, scheme, out);
}

}  // namespace tss
