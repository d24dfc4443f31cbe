// A TPM key as OpenSSL 3 sees it, for TLS client authentication: an OpenSSL provider of
// this library's own ("tpmjwt") in a library context of its own, beside the default
// provider. Its key management holds the key's public half (an ordinary default-provider
// key) and its KeyRef; its signatures (RSA PKCS#1 v1.5 and PSS, ECDSA) hash in OpenSSL
// and sign the digest with TPM2_Sign through the signer the calling thread has set, on
// that thread. The private half never exists outside the TPM, and the provider never
// exports one: that refusal is what makes libssl sign with this provider and not try the
// default one, which would fail with "missing private key".
#pragma once

#include <openssl/evp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "key_ref.h"
#include "sign.h"
#include "status.h"

namespace tss {

struct TlsKey {
  KeyRef ref;
  bool ec = false;
  std::vector<uint8_t> spki_der;  // SubjectPublicKeyInfo of the TPM key
};

// How a signature is made on this thread: the TPM signs `digest` with `key`.
using TlsSigner = std::function<Status(const TlsKey& key, const std::vector<uint8_t>& digest,
                                       const SignScheme& scheme, std::vector<uint8_t>* out)>;

// Sets the thread's signer for the scope's life; the status of a signature that failed
// under it is kept for the caller (OpenSSL only learns that signing failed).
class TlsSigningScope {
 public:
  explicit TlsSigningScope(TlsSigner signer);
  ~TlsSigningScope();
  TlsSigningScope(const TlsSigningScope&) = delete;
  TlsSigningScope& operator=(const TlsSigningScope&) = delete;
  // The last signature's failure under this scope (ok when none failed).
  const Status& failure() const;
};

// What OpenSSL's error queue on this thread says, emptied: `a; b; c`.
std::string OpenSslErrors();

// The library context with the default provider and "tpmjwt", made once; null with
// `error` set when OpenSSL cannot make it.
OSSL_LIB_CTX* TlsLibContext(std::string* error);

// An EVP_PKEY in TlsLibContext() whose private operations are the TPM's (see above).
// Null with `error` set for a key OpenSSL cannot read.
EVP_PKEY* NewTlsKey(std::shared_ptr<const TlsKey> key, std::string* error);

}  // namespace tss
