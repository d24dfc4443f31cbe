#include "tls_session.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <mutex>

namespace tss {
namespace {

// Every certificate in `pem`, in order; false when there is none or one is malformed.
bool ReadCertificates(OSSL_LIB_CTX* libctx, const std::string& pem, std::vector<X509*>* out) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return false;
  ERR_clear_error();
  for (;;) {
    X509* cert = X509_new_ex(libctx, nullptr);
    if (cert == nullptr) break;
    if (PEM_read_bio_X509(bio, &cert, nullptr, nullptr) == nullptr) {
      X509_free(cert);
      break;
    }
    out->push_back(cert);
  }
  BIO_free(bio);
  // The read ends at the end of the text ("no start line"); anything else is a bad certificate.
  const unsigned long last = ERR_peek_last_error();
  const bool clean = last == 0 || (ERR_GET_LIB(last) == ERR_LIB_PEM &&
                                   ERR_GET_REASON(last) == PEM_R_NO_START_LINE);
  ERR_clear_error();
  if (!clean) {
    for (X509* cert : *out) X509_free(cert);
    out->clear();
  }
  return !out->empty();
}

void FreeAll(std::vector<X509*>* certs) {
  for (X509* cert : *certs) X509_free(cert);
  certs->clear();
}

// The system's roots (OpenSSL reads SSL_CERT_FILE and SSL_CERT_DIR) and those
// NODE_EXTRA_CA_CERTS adds, as Node's own TLS trusts them: read once, shared by every
// connection (a store is reference-counted).
X509_STORE* SystemRoots(OSSL_LIB_CTX* libctx) {
  static std::once_flag once;
  static X509_STORE* roots = nullptr;
  std::call_once(once, [libctx] {
    X509_STORE* store = X509_STORE_new();
    if (store == nullptr || !X509_STORE_set_default_paths_ex(store, libctx, nullptr)) {
      X509_STORE_free(store);
      return;
    }
    if (const char* extra = std::getenv("NODE_EXTRA_CA_CERTS"); extra != nullptr && *extra != 0) {
      // As Node: a file that cannot be read adds nothing, and is no reason to fail.
      X509_STORE_load_file_ex(store, extra, libctx, nullptr);
    }
    ERR_clear_error();
    roots = store;
  });
  return roots;
}

// The roots: the given ones only, else the system's.
Status SetRoots(OSSL_LIB_CTX* libctx, SSL_CTX* ctx, const std::string& ca_pem) {
  if (!ca_pem.empty()) {
    std::vector<X509*> roots;
    if (!ReadCertificates(libctx, ca_pem, &roots)) {
      return Status::Fail(ErrorCode::kInvalidArgument,
                          "ca holds no PEM certificate, or a malformed one");
    }
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (X509* root : roots) X509_STORE_add_cert(store, root);
    FreeAll(&roots);
    return Status();
  }
  X509_STORE* system = SystemRoots(libctx);
  if (system == nullptr) return Status::Fail(ErrorCode::kTls, "cannot read the system's roots");
  SSL_CTX_set1_cert_store(ctx, system);
  return Status();
}

}  // namespace

Status TlsSession::Create(std::shared_ptr<const TlsKey> key, const TlsOptions& options,
                          std::unique_ptr<TlsSession>* out) {
  std::string error;
  OSSL_LIB_CTX* libctx = TlsLibContext(&error);
  if (libctx == nullptr) return Status::Fail(ErrorCode::kTls, error);
  std::unique_ptr<TlsSession> session(new TlsSession);
  session->key_ = NewTlsKey(std::move(key), &error);
  if (session->key_ == nullptr) return Status::Fail(ErrorCode::kTls, error);
  session->ctx_ = SSL_CTX_new_ex(libctx, nullptr, TLS_client_method());
  if (session->ctx_ == nullptr) {
    return Status::Fail(ErrorCode::kTls, "cannot make a TLS context: " + OpenSslErrors());
  }
  SSL_CTX* ctx = session->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);

  if (options.servername.empty()) {
    return Status::Fail(
        ErrorCode::kInvalidArgument,
        "servername is empty: the server's certificate would be checked for no name");
  }
  std::vector<X509*> certs;
  if (!ReadCertificates(libctx, options.certificates_pem, &certs)) {
    return Status::Fail(ErrorCode::kInvalidArgument,
                        "certificate holds no PEM certificate, or a malformed one");
  }
  // The certificate must be for the TPM key: refused here, before any byte is sent.
  // (libssl keeps a certificate and a key of different types apart without a word.)
  const bool ok = X509_check_private_key(certs[0], session->key_) == 1 &&
                  SSL_CTX_use_certificate(ctx, certs[0]) == 1 &&
                  SSL_CTX_use_PrivateKey(ctx, session->key_) == 1;
  bool chained = true;
  for (size_t i = 1; ok && chained && i < certs.size(); ++i) {
    chained = SSL_CTX_add1_chain_cert(ctx, certs[i]) == 1;
  }
  FreeAll(&certs);
  if (!ok) {
    return Status::Fail(ErrorCode::kInvalidArgument,
                        "the certificate is not for the TPM key: " + OpenSslErrors());
  }
  if (!chained) {
    return Status::Fail(ErrorCode::kInvalidArgument,
                        "cannot send the certificate chain: " + OpenSslErrors());
  }
  Status roots = SetRoots(libctx, ctx, options.ca_pem);
  if (!roots.ok()) return roots;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);

  session->ssl_ = SSL_new(ctx);
  session->in_ = BIO_new(BIO_s_mem());
  session->out_ = BIO_new(BIO_s_mem());
  if (session->ssl_ == nullptr || session->in_ == nullptr || session->out_ == nullptr) {
    BIO_free(session->in_);
    BIO_free(session->out_);
    return Status::Fail(ErrorCode::kTls, "cannot make a TLS connection: " + OpenSslErrors());
  }
  SSL_set_bio(session->ssl_, session->in_, session->out_);
  SSL_set_connect_state(session->ssl_);
  const std::string& name = options.servername;
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str());
  if (ip != nullptr) {
    ASN1_OCTET_STRING_free(ip);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session->ssl_), name.c_str());
  } else {
    ERR_clear_error();
    // SNI is for names only (RFC 6066).
    SSL_set_tlsext_host_name(session->ssl_, name.c_str());
    SSL_set1_host(session->ssl_, name.c_str());
  }
  *out = std::move(session);
  return Status();
}

TlsSession::~TlsSession() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
  EVP_PKEY_free(key_);
}

void TlsSession::Fail(TlsStep* step, const char* what) {
  failed_ = true;
  std::string why = OpenSslErrors();
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) why = X509_verify_cert_error_string(verify);
  step->error = why.empty() ? what : std::string(what) + ": " + why;
}

void TlsSession::Step(const std::vector<uint8_t>& from_peer, const std::vector<uint8_t>& plaintext,
                      TlsStep* step) {
  if (failed_) {
    step->error = "the TLS connection failed before";
    return;
  }
  // SSL_get_error reads the thread's error queue, which tpm2-tss's own use of OpenSSL on
  // this thread may have left full: only this step's errors may count.
  ERR_clear_error();
  if (!from_peer.empty()) BIO_write(in_, from_peer.data(), static_cast<int>(from_peer.size()));
  if (!SSL_is_init_finished(ssl_)) {
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        Fail(step, "TLS handshake failed");
        Drain(step);
        return;
      }
    }
  }
  step->established = SSL_is_init_finished(ssl_);
  if (step->established) {
    while (step->written < plaintext.size()) {
      size_t n = 0;
      if (SSL_write_ex(ssl_, plaintext.data() + step->written, plaintext.size() - step->written,
                       &n) != 1) {
        const int e = SSL_get_error(ssl_, 0);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) Fail(step, "TLS write failed");
        break;
      }
      step->written += n;
    }
    uint8_t buf[16384];
    for (;;) {
      size_t n = 0;
      if (SSL_read_ex(ssl_, buf, sizeof buf, &n) == 1) {
        step->received.insert(step->received.end(), buf, buf + n);
        continue;
      }
      const int e = SSL_get_error(ssl_, 0);
      if (e == SSL_ERROR_ZERO_RETURN) {
        step->closed = true;
      } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        Fail(step, "TLS read failed");
      }
      break;
    }
  }
  Drain(step);
}

void TlsSession::Shutdown(TlsStep* step) {
  ERR_clear_error();
  if (!failed_ && SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);
  ERR_clear_error();
  Drain(step);
}

void TlsSession::Drain(TlsStep* step) {
  uint8_t buf[16384];
  int n;
  while ((n = BIO_read(out_, buf, sizeof buf)) > 0)
    step->to_peer.insert(step->to_peer.end(), buf, buf + n);
}

}  // namespace tss
