#include "tls_key.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstring>
#include <mutex>

namespace tss {
namespace {

constexpr char kProvider[] = "tpmjwt";
constexpr char kOurs[] = "provider=tpmjwt";
constexpr char kDefault[] = "provider=default";
// The import parameter that carries a TlsKey (a pointer to a shared_ptr<const TlsKey>).
constexpr char kKeyParam[] = "tpmjwt-key";

OSSL_LIB_CTX* g_libctx = nullptr;

struct SigningState {
  TlsSigner signer;
  Status failure;
};
thread_local SigningState* t_signing = nullptr;

// ---- key management ----------------------------------------------------------------

struct KeyData {
  bool ec = false;
  std::shared_ptr<const TlsKey> tpm;  // null for a public key imported from parameters
  EVP_PKEY* pub = nullptr;            // the public half, a default-provider key
};

template <bool kEc>
void* KeyNew(void*) {
  auto* key = new KeyData;
  key->ec = kEc;
  return key;
}

void KeyFree(void* keydata) {
  auto* key = static_cast<KeyData*>(keydata);
  if (key == nullptr) return;
  EVP_PKEY_free(key->pub);
  delete key;
}

int KeyHas(const void* keydata, int selection) {
  const auto* key = static_cast<const KeyData*>(keydata);
  if (key == nullptr || key->pub == nullptr) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) return key->tpm != nullptr;
  return 1;
}

// A TlsKey (kKeyParam), or a public key's own parameters: what comparing a certificate's
// key with this one exports into this key management.
int KeyImport(void* keydata, int selection, const OSSL_PARAM params[]) {
  auto* key = static_cast<KeyData*>(keydata);
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, kKeyParam)) {
    const void* ptr = nullptr;
    size_t size = 0;
    if (!OSSL_PARAM_get_octet_ptr(p, &ptr, &size) ||
        size != sizeof(std::shared_ptr<const TlsKey>)) {
      return 0;
    }
    key->tpm = *static_cast<const std::shared_ptr<const TlsKey>*>(ptr);
    const unsigned char* der = key->tpm->spki_der.data();
    key->pub = d2i_PUBKEY_ex(nullptr, &der, static_cast<long>(key->tpm->spki_der.size()), g_libctx,
                             kDefault);
    return key->pub != nullptr;
  }
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) return 0;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(g_libctx, key->ec ? "EC" : "RSA", kDefault);
  int ok =
      ctx != nullptr && EVP_PKEY_fromdata_init(ctx) > 0 &&
      EVP_PKEY_fromdata(ctx, &key->pub, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) > 0;
  EVP_PKEY_CTX_free(ctx);
  return ok;
}

const OSSL_PARAM kRsaPublic[] = {OSSL_PARAM_octet_ptr(kKeyParam, nullptr, 0),
                                 OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                 OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM kEcPublic[] = {OSSL_PARAM_octet_ptr(kKeyParam, nullptr, 0),
                                OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
                                OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
                                OSSL_PARAM_END};

template <bool kEc>
const OSSL_PARAM* KeyImportTypes(int) {
  return kEc ? kEcPublic : kRsaPublic;
}

template <bool kEc>
const OSSL_PARAM* KeyExportTypes(int) {
  return (kEc ? kEcPublic : kRsaPublic) + 1;
}

// The public half only: there is no private one to give. libssl's first try at a
// signature exports the key to the default provider with everything selected; that it
// fails is what sends libssl to this provider's own signature.
int KeyExport(void* keydata, int selection, OSSL_CALLBACK* callback, void* arg) {
  const auto* key = static_cast<const KeyData*>(keydata);
  if (key->pub == nullptr || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) return 0;
  OSSL_PARAM* params = nullptr;
  if (EVP_PKEY_todata(key->pub, EVP_PKEY_PUBLIC_KEY, &params) <= 0) return 0;
  const int ok = callback(params, arg);
  OSSL_PARAM_free(params);
  return ok;
}

int KeyMatch(const void* a, const void* b, int) {
  const auto* k1 = static_cast<const KeyData*>(a);
  const auto* k2 = static_cast<const KeyData*>(b);
  return k1->pub != nullptr && k2->pub != nullptr && EVP_PKEY_eq(k1->pub, k2->pub) == 1;
}

// Bits, security bits, maximum signature size, the curve: the public half's answers.
int KeyGetParams(void* keydata, OSSL_PARAM params[]) {
  const auto* key = static_cast<const KeyData*>(keydata);
  return key->pub != nullptr && EVP_PKEY_get_params(key->pub, params) > 0;
}

const OSSL_PARAM kGettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
    OSSL_PARAM_END};

const OSSL_PARAM* KeyGettableParams(void*) { return kGettable; }

template <bool kEc>
const char* KeyOperationName(int operation) {
  return operation == OSSL_OP_SIGNATURE ? (kEc ? "ECDSA" : "RSA") : nullptr;
}

void* KeyDup(const void* from, int) {
  const auto* key = static_cast<const KeyData*>(from);
  auto* copy = new KeyData(*key);
  if (copy->pub != nullptr) EVP_PKEY_up_ref(copy->pub);
  return copy;
}

template <bool kEc>
const OSSL_DISPATCH kKeyManagement[] = {
    {OSSL_FUNC_KEYMGMT_NEW, reinterpret_cast<void (*)()>(KeyNew<kEc>)},
    {OSSL_FUNC_KEYMGMT_FREE, reinterpret_cast<void (*)()>(KeyFree)},
    {OSSL_FUNC_KEYMGMT_HAS, reinterpret_cast<void (*)()>(KeyHas)},
    {OSSL_FUNC_KEYMGMT_IMPORT, reinterpret_cast<void (*)()>(KeyImport)},
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, reinterpret_cast<void (*)()>(KeyImportTypes<kEc>)},
    {OSSL_FUNC_KEYMGMT_EXPORT, reinterpret_cast<void (*)()>(KeyExport)},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, reinterpret_cast<void (*)()>(KeyExportTypes<kEc>)},
    {OSSL_FUNC_KEYMGMT_MATCH, reinterpret_cast<void (*)()>(KeyMatch)},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, reinterpret_cast<void (*)()>(KeyGetParams)},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, reinterpret_cast<void (*)()>(KeyGettableParams)},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, reinterpret_cast<void (*)()>(KeyOperationName<kEc>)},
    {OSSL_FUNC_KEYMGMT_DUP, reinterpret_cast<void (*)()>(KeyDup)},
    {0, nullptr}};

// ---- signatures ----------------------------------------------------------------------

struct SignatureContext {
  const KeyData* key = nullptr;
  EVP_MD_CTX* md = nullptr;
  int padding = RSA_PKCS1_PADDING;
  int salt = RSA_PSS_SALTLEN_DIGEST;
};

void* SignatureNew(void*, const char*) { return new SignatureContext; }

void SignatureFree(void* ctx) {
  auto* sig = static_cast<SignatureContext*>(ctx);
  EVP_MD_CTX_free(sig->md);
  delete sig;
}

void* SignatureDup(void* ctx) {
  const auto* from = static_cast<SignatureContext*>(ctx);
  auto* copy = new SignatureContext(*from);
  copy->md = nullptr;
  if (from->md != nullptr) {
    copy->md = EVP_MD_CTX_new();
    if (copy->md == nullptr || !EVP_MD_CTX_copy_ex(copy->md, from->md)) {
      SignatureFree(copy);
      return nullptr;
    }
  }
  return copy;
}

// RSA padding and PSS salt, as libssl sets them: numbers or names.
int SignatureSetParams(void* ctx, const OSSL_PARAM params[]) {
  auto* sig = static_cast<SignatureContext*>(ctx);
  if (params == nullptr) return 1;
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) {
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
      const char* name = static_cast<const char*>(p->data);
      if (std::strcmp(name, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0) {
        sig->padding = RSA_PKCS1_PSS_PADDING;
      } else if (std::strcmp(name, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0) {
        sig->padding = RSA_PKCS1_PADDING;
      } else {
        return 0;
      }
    } else if (!OSSL_PARAM_get_int(p, &sig->padding)) {
      return 0;
    }
  }
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) {
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
      // The TPM salts with the digest's length, as TLS 1.3 asks: nothing else is given.
      if (std::strcmp(static_cast<const char*>(p->data), OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) != 0)
        return 0;
      sig->salt = RSA_PSS_SALTLEN_DIGEST;
    } else if (!OSSL_PARAM_get_int(p, &sig->salt)) {
      return 0;
    }
  }
  return 1;
}

const OSSL_PARAM kSettable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0), OSSL_PARAM_END};

const OSSL_PARAM* SignatureSettableParams(void*, void*) { return kSettable; }

int SignatureGetParams(void*, OSSL_PARAM*) { return 1; }

const OSSL_PARAM kNone[] = {OSSL_PARAM_END};
const OSSL_PARAM* SignatureGettableParams(void*, void*) { return kNone; }

int DigestSignInit(void* ctx, const char* mdname, void* keydata, const OSSL_PARAM params[]) {
  auto* sig = static_cast<SignatureContext*>(ctx);
  if (keydata != nullptr) sig->key = static_cast<const KeyData*>(keydata);
  if (sig->key == nullptr || sig->key->tpm == nullptr) return 0;
  EVP_MD* md = EVP_MD_fetch(g_libctx, mdname != nullptr ? mdname : "SHA256", kDefault);
  if (md == nullptr) return 0;
  EVP_MD_CTX_free(sig->md);
  sig->md = EVP_MD_CTX_new();
  const int ok = sig->md != nullptr && EVP_DigestInit_ex2(sig->md, md, nullptr);
  EVP_MD_free(md);
  return ok && SignatureSetParams(ctx, params);
}

int DigestSignUpdate(void* ctx, const unsigned char* data, size_t size) {
  auto* sig = static_cast<SignatureContext*>(ctx);
  return sig->md != nullptr && EVP_DigestUpdate(sig->md, data, size);
}

bool HashAlgorithm(const EVP_MD* md, TPMI_ALG_HASH* hash) {
  switch (EVP_MD_get_type(md)) {
    case NID_sha256:
      *hash = TPM2_ALG_SHA256;
      return true;
    case NID_sha384:
      *hash = TPM2_ALG_SHA384;
      return true;
    case NID_sha512:
      *hash = TPM2_ALG_SHA512;
      return true;
    default:
      return false;
  }
}

// JWS r || s to the DER ECDSA-Sig-Value TLS sends.
bool EcdsaDer(const std::vector<uint8_t>& rs, std::vector<uint8_t>* der) {
  const int half = static_cast<int>(rs.size() / 2);
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(rs.data(), half, nullptr);
  BIGNUM* s = BN_bin2bn(rs.data() + half, half, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || !ECDSA_SIG_set0(sig, r, s)) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return false;
  }
  unsigned char* out = nullptr;
  const int size = i2d_ECDSA_SIG(sig, &out);
  ECDSA_SIG_free(sig);
  if (size <= 0) return false;
  der->assign(out, out + size);
  OPENSSL_free(out);
  return true;
}

int DigestSignFinal(void* ctx, unsigned char* out, size_t* size, size_t capacity) {
  auto* sig = static_cast<SignatureContext*>(ctx);
  const KeyData* key = sig->key;
  if (key == nullptr || key->pub == nullptr || sig->md == nullptr) return 0;
  if (out == nullptr) {
    *size = static_cast<size_t>(EVP_PKEY_get_size(key->pub));
    return 1;
  }
  SignScheme scheme;
  if (!HashAlgorithm(EVP_MD_CTX_get0_md(sig->md), &scheme.hash)) return 0;
  if (key->ec) {
    scheme.scheme = TPM2_ALG_ECDSA;
    scheme.coordinate_size = static_cast<size_t>((EVP_PKEY_get_bits(key->pub) + 7) / 8);
  } else if (sig->padding == RSA_PKCS1_PSS_PADDING) {
    // The TPM's PSS salt is the digest's length (TPM 2.0 Part 1, B.7): nothing else is made.
    if (sig->salt != RSA_PSS_SALTLEN_DIGEST && sig->salt != EVP_MD_CTX_get_size(sig->md)) return 0;
    scheme.scheme = TPM2_ALG_RSAPSS;
  } else if (sig->padding == RSA_PKCS1_PADDING) {
    scheme.scheme = TPM2_ALG_RSASSA;
  } else {
    return 0;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (!EVP_DigestFinal_ex(sig->md, digest, &digest_size)) return 0;
  if (t_signing == nullptr) return 0;
  std::vector<uint8_t> signature;
  // What the TPM's work leaves on OpenSSL's error queue (ESYS uses OpenSSL too, and a
  // retried command may have failed first) is not the handshake's.
  ERR_set_mark();
  Status status = t_signing->signer(*key->tpm, std::vector<uint8_t>(digest, digest + digest_size),
                                    scheme, &signature);
  ERR_pop_to_mark();
  if (!status.ok()) {
    t_signing->failure = status;
    return 0;
  }
  if (key->ec) {
    std::vector<uint8_t> der;
    if (!EcdsaDer(signature, &der)) return 0;
    signature.swap(der);
  }
  if (signature.size() > capacity) return 0;
  std::memcpy(out, signature.data(), signature.size());
  *size = signature.size();
  return 1;
}

const OSSL_DISPATCH kSignature[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, reinterpret_cast<void (*)()>(SignatureNew)},
    {OSSL_FUNC_SIGNATURE_FREECTX, reinterpret_cast<void (*)()>(SignatureFree)},
    {OSSL_FUNC_SIGNATURE_DUPCTX, reinterpret_cast<void (*)()>(SignatureDup)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, reinterpret_cast<void (*)()>(DigestSignInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, reinterpret_cast<void (*)()>(DigestSignUpdate)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, reinterpret_cast<void (*)()>(DigestSignFinal)},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, reinterpret_cast<void (*)()>(SignatureSetParams)},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
     reinterpret_cast<void (*)()>(SignatureSettableParams)},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, reinterpret_cast<void (*)()>(SignatureGetParams)},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
     reinterpret_cast<void (*)()>(SignatureGettableParams)},
    {0, nullptr}};

// ---- the provider ---------------------------------------------------------------------

const OSSL_ALGORITHM kKeyManagements[] = {
    {"RSA:rsaEncryption", kOurs, kKeyManagement<false>, "a TPM RSA key"},
    {"EC:id-ecPublicKey", kOurs, kKeyManagement<true>, "a TPM EC key"},
    {nullptr, nullptr, nullptr, nullptr}};

const OSSL_ALGORITHM kSignatures[] = {{"RSA:rsaEncryption", kOurs, kSignature, "TPM2_Sign"},
                                      {"ECDSA", kOurs, kSignature, "TPM2_Sign"},
                                      {nullptr, nullptr, nullptr, nullptr}};

const OSSL_ALGORITHM* Query(void*, int operation, int* no_cache) {
  *no_cache = 0;
  if (operation == OSSL_OP_KEYMGMT) return kKeyManagements;
  if (operation == OSSL_OP_SIGNATURE) return kSignatures;
  return nullptr;
}

const OSSL_DISPATCH kProviderFunctions[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, reinterpret_cast<void (*)()>(Query)}, {0, nullptr}};

int ProviderInit(const OSSL_CORE_HANDLE*, const OSSL_DISPATCH*, const OSSL_DISPATCH** out,
                 void** provctx) {
  *out = kProviderFunctions;
  *provctx = nullptr;
  return 1;
}

}  // namespace

std::string OpenSslErrors() {
  std::string message;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!message.empty()) message += "; ";
    message += buf;
  }
  return message;
}

TlsSigningScope::TlsSigningScope(TlsSigner signer) {
  t_signing = new SigningState{std::move(signer), Status()};
}

TlsSigningScope::~TlsSigningScope() {
  delete t_signing;
  t_signing = nullptr;
}

const Status& TlsSigningScope::failure() const { return t_signing->failure; }

OSSL_LIB_CTX* TlsLibContext(std::string* error) {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    OSSL_LIB_CTX* libctx = OSSL_LIB_CTX_new();
    if (libctx == nullptr || OSSL_PROVIDER_load(libctx, "default") == nullptr ||
        !OSSL_PROVIDER_add_builtin(libctx, kProvider, ProviderInit) ||
        OSSL_PROVIDER_load(libctx, kProvider) == nullptr) {
      failure = "cannot set up OpenSSL's providers: " + OpenSslErrors();
      return;
    }
    g_libctx = libctx;
  });
  if (g_libctx == nullptr) *error = failure;
  return g_libctx;
}

EVP_PKEY* NewTlsKey(std::shared_ptr<const TlsKey> key, std::string* error) {
  OSSL_LIB_CTX* libctx = TlsLibContext(error);
  if (libctx == nullptr) return nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(libctx, key->ec ? "EC" : "RSA", kOurs);
  // An octet-pointer parameter holds the address of a pointer: here, to the shared_ptr.
  void* holder = &key;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_ptr(kKeyParam, &holder, sizeof key),
                         OSSL_PARAM_END};
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) <= 0 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) <= 0) {
    *error = "cannot make an OpenSSL key of the TPM key: " + OpenSslErrors();
    pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  return pkey;
}

}  // namespace tss
