// The context's TLS calls: a TLS client connection whose handshake the TPM signs, run
// step by step on the context's executor (tss/tls_session.h), so that its signature is
// made on the context's own thread with every call's recovery.
#include <napi.h>

#include <memory>

#include "context_wrap.h"
#include "convert.h"
#include "js_error.h"
#include "tpm_call.h"
#include "tss/tls_session.h"

namespace {

using Session = std::shared_ptr<tss::TlsSession>;

constexpr napi_type_tag kSessionTag = {0x9c1d5e7a40b36f21ULL, 0x5a2e8f0c7d914b63ULL};

// The session an External from tlsOpen holds; null once tlsRelease let it go.
Session* SessionSlot(const Napi::Value& value) {
  if (!value.IsExternal() || !value.As<Napi::External<Session>>().CheckTypeTag(&kSessionTag)) {
    throw Napi::TypeError::New(value.Env(), "session must come from tlsOpen()");
  }
  return value.As<Napi::External<Session>>().Data();
}

Session FromSession(const Napi::Value& value) {
  Session session = *SessionSlot(value);
  if (!session) {
    throw Napi::Error(value.Env(),
                      ToJsError(value.Env(), tss::Status::Fail(tss::ErrorCode::kTls,
                                                               "the TLS session was released")));
  }
  return session;
}

Napi::Value ToStepResult(Napi::Env env, const tss::TlsStep& step, const tss::Status& signing) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("toPeer", ToBuffer(env, step.to_peer));
  out.Set("received", ToBuffer(env, step.received));
  out.Set("written", Napi::Number::New(env, static_cast<double>(step.written)));
  out.Set("established", Napi::Boolean::New(env, step.established));
  out.Set("closed", Napi::Boolean::New(env, step.closed));
  if (!signing.ok()) {
    out.Set("failure", ToJsError(env, signing));
  } else if (!step.error.empty()) {
    out.Set("failure", ToJsError(env, tss::Status::Fail(tss::ErrorCode::kTls, step.error)));
  }
  return out;
}

}  // namespace

Napi::Value ContextWrap::TlsOpen(const Napi::CallbackInfo& info) {
  PreparedKey prepared = FromPreparedKey(info[0]);
  auto key = std::make_shared<tss::TlsKey>();
  key->ref = *prepared;
  key->spki_der = ToBytes(info[1], "spki");
  key->ec = info[2].ToBoolean();
  if (!info[3].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  Napi::Object options = info[3].As<Napi::Object>();
  tss::TlsOptions tls;
  tls.servername = ToOptionalString(options.Get("servername"), "servername");
  tls.certificates_pem = ToOptionalString(options.Get("certificate"), "certificate");
  tls.ca_pem = ToOptionalString(options.Get("ca"), "ca");
  std::unique_ptr<tss::TlsSession> session;
  tss::Status status = tss::TlsSession::Create(std::move(key), tls, &session);
  if (!status.ok()) throw Napi::Error(info.Env(), ToJsError(info.Env(), status));
  auto external = Napi::External<Session>::New(info.Env(), new Session(std::move(session)),
                                               [](Napi::Env, Session* s) { delete s; });
  external.TypeTag(&kSessionTag);
  return external;
}

// Frees the connection's OpenSSL state now rather than when the collector finds the
// External (it looks small to V8); a step still queued keeps its own reference.
Napi::Value ContextWrap::TlsRelease(const Napi::CallbackInfo& info) {
  SessionSlot(info[0])->reset();
  return info.Env().Undefined();
}

Napi::Value ContextWrap::TlsStep(const Napi::CallbackInfo& info) {
  Session session = FromSession(info[0]);
  std::vector<uint8_t> from_peer = ToBytes(info[1], "fromPeer");
  std::vector<uint8_t> plaintext = ToBytes(info[2], "plaintext");
  const bool shutdown = info[3].ToBoolean();
  auto step = std::make_shared<tss::TlsStep>();
  auto signing = std::make_shared<tss::Status>();
  // The step itself never fails the call: a retry would feed the same bytes twice. What
  // went wrong (the handshake, the TPM's signature) is in its result.
  return Submit(
      [session, from_peer = std::move(from_peer), plaintext = std::move(plaintext), shutdown, step,
       signing](tss::Context& ctx) {
        tss::TlsSigningScope scope(
            [&ctx](const tss::TlsKey& key, const std::vector<uint8_t>& digest,
                   const tss::SignScheme& scheme, std::vector<uint8_t>* out) {
              return RunRecovering(
                  ctx, [&](tss::Context& c) { return tss::Sign(c, key.ref, digest, scheme, out); },
                  /*reconnect=*/true, /*idempotent=*/true);
            });
        if (shutdown) {
          session->Shutdown(step.get());
        } else {
          session->Step(from_peer, plaintext, step.get());
        }
        *signing = scope.failure();
        return tss::Status();
      },
      [step, signing](Napi::Env env) { return ToStepResult(env, *step, *signing); },
      Effect::kChanges);
}
