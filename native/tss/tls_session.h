// A TLS client connection whose private-key operation is the TPM's (tls_key.h), over
// memory: the caller carries the bytes to and from the socket, and runs each step on
// the thread that may sign (the context's executor). TLS 1.2 and 1.3, the server's
// certificate checked against the given roots (or the system's, SSL_CERT_FILE and
// NODE_EXTRA_CA_CERTS) and its name.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "status.h"
#include "tls_key.h"

namespace tss {

struct TlsOptions {
  std::string servername;        // a host name or an IP address, checked in the certificate
  std::string certificates_pem;  // the client certificate (the TPM key's), then its chain
  std::string ca_pem;            // roots to trust instead of the system's (empty: the system's)
};

struct TlsStep {
  std::vector<uint8_t> to_peer;   // ciphertext to send
  std::vector<uint8_t> received;  // plaintext that arrived
  size_t written = 0;             // bytes of the plaintext to send that went out
  bool established = false;       // the handshake is done
  bool closed = false;            // the peer closed the connection (close_notify)
  std::string error;              // why the connection failed (empty: it did not)
};

class TlsSession {
 public:
  // Checks the certificate against the key before any byte is sent. ErrorCode
  // kInvalidArgument for certificates that cannot be used, kTls when OpenSSL fails.
  static Status Create(std::shared_ptr<const TlsKey> key, const TlsOptions& options,
                       std::unique_ptr<TlsSession>* out);
  ~TlsSession();

  // Feeds what arrived from the peer, advances the handshake, sends `plaintext` once it is
  // done, and reads what it can. Signs (on this thread, through the scope's signer) when
  // the handshake asks for the client's proof.
  void Step(const std::vector<uint8_t>& from_peer, const std::vector<uint8_t>& plaintext,
            TlsStep* step);
  // Queues a close_notify for the peer.
  void Shutdown(TlsStep* step);

 private:
  TlsSession() = default;
  void Drain(TlsStep* step);
  void Fail(TlsStep* step, const char* what);

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  EVP_PKEY* key_ = nullptr;
  bool failed_ = false;
};

}  // namespace tss
