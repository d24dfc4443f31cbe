#include "context_wrap.h"

#include <memory>
#include <utility>

#include "convert.h"
#include "js_error.h"
#include "tpm_call.h"
#include "tss/certify.h"
#include "tss/credential.h"
#include "tss/import.h"
#include "tss/keys.h"
#include "tss/loader.h"
#include "tss/marshal.h"
#include "tss/nv.h"
#include "tss/policy.h"
#include "tss/sign.h"

Napi::Function ContextWrap::Define(Napi::Env env) {
  return DefineClass(env, "Context",
                     {
                         InstanceMethod<&ContextWrap::Open>("open"),
                         InstanceMethod<&ContextWrap::CreateKey>("createKey"),
                         InstanceMethod<&ContextWrap::ReadPublic>("readPublic"),
                         InstanceMethod<&ContextWrap::Persist>("persist"),
                         InstanceMethod<&ContextWrap::Evict>("evict"),
                         InstanceMethod<&ContextWrap::Srk>("srk"),
                         InstanceMethod<&ContextWrap::PrepareKey>("prepareKey"),
                         InstanceMethod<&ContextWrap::Sign>("sign"),
                         InstanceMethod<&ContextWrap::SignMessage>("signMessage"),
                         InstanceMethod<&ContextWrap::Probe>("probe"),
                         InstanceMethod<&ContextWrap::ParentPublic>("parentPublic"),
                         InstanceMethod<&ContextWrap::Import>("importKey"),
                         InstanceMethod<&ContextWrap::Handles>("handles"),
                         InstanceMethod<&ContextWrap::PolicyDigest>("policyDigest"),
                         InstanceMethod<&ContextWrap::Certify>("certify"),
                         InstanceMethod<&ContextWrap::ActivateCredential>("activateCredential"),
                         InstanceMethod<&ContextWrap::NvRead>("nvRead"),
                         InstanceMethod<&ContextWrap::TlsOpen>("tlsOpen"),
                         InstanceMethod<&ContextWrap::TlsStep>("tlsStep"),
                         InstanceMethod<&ContextWrap::TlsRelease>("tlsRelease"),
                         InstanceMethod<&ContextWrap::Close>("close"),
                     });
}

ContextWrap::ContextWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ContextWrap>(info),
      // While calls are pending the object must not be collected: their work runs
      // on its context.
      executor_(std::make_unique<Executor>(info.Env(), &context_,
                                           [this](bool busy) { busy ? Ref() : Unref(); })),
      cleanup_hook_(info.Env().AddCleanupHook(&ContextWrap::Teardown, this)) {}

ContextWrap::~ContextWrap() {
  if (!cleanup_hook_.IsEmpty()) cleanup_hook_.Remove(Env());
  // Nothing is pending (a pending call holds a reference to this object), so the
  // executor thread is idle and stops at once.
  executor_->Stop();
  context_.Release();
}

void ContextWrap::Teardown(ContextWrap* self) {
  // The environment is going away (worker exit, process exit): let a running call
  // finish, then release the TPM connection.
  self->executor_->Stop(true);
  self->context_.Release();
  self->cleanup_hook_ = {};
}

Napi::Value ContextWrap::Open(const Napi::CallbackInfo& info) {
  std::string tcti = ToOptionalString(info[0], "tcti");
  tss::SecretBytes owner_auth = ToOptionalSecret(info[1], "ownerAuth");
  tss::SessionOptions session = ToSessionOptions(info[2]);
  const std::chrono::milliseconds retry_timeout(
      info[3].IsUndefined() ? 5000 : ToUint32(info[3], "retryTimeoutMs"));
  const std::chrono::milliseconds command_timeout(
      info[4].IsUndefined() ? 120000 : ToUint32(info[4], "commandTimeoutMs"));
  // Copied on the executor thread: the context's own copy changes if a later call
  // has to start a new session.
  auto salt_key_name = std::make_shared<std::vector<uint8_t>>();
  return Submit(
      [tcti, owner_auth, session, retry_timeout, command_timeout,
       salt_key_name](tss::Context& ctx) {
        ctx.set_retry_timeout(retry_timeout);
        ctx.set_command_timeout(command_timeout);
        tss::Status status = ctx.Open(tcti, owner_auth, session);
        *salt_key_name = ctx.salt_key_name();
        return status;
      },
      [salt_key_name](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("saltKeyName", ToBuffer(env, *salt_key_name));
        return out;
      });
}

Napi::Value ContextWrap::CreateKey(const Napi::CallbackInfo& info) {
  const uint32_t parent = ToUint32(info[0], "parent");
  const tss::KeySpec spec = ToKeySpec(info[1]);
  tss::SecretBytes auth = ToOptionalSecret(info[2], "auth");
  tss::PcrPolicy policy = ToPcrPolicy(info[3]);
  auto blob = std::make_shared<tss::KeyBlob>();
  return Submit(
      [parent, spec, auth, policy, blob](tss::Context& ctx) {
        return tss::CreateKey(ctx, parent, spec, auth, policy, blob.get());
      },
      [blob](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("public", ToBuffer(env, blob->pub));
        out.Set("private", ToBuffer(env, blob->priv));
        return out;
      });
}

Napi::Value ContextWrap::ReadPublic(const Napi::CallbackInfo& info) {
  const uint32_t handle = ToUint32(info[0], "handle");
  auto pub = std::make_shared<TPM2B_PUBLIC>();
  return Submit(
      [handle, pub](tss::Context& ctx) { return tss::ReadPublic(ctx, handle, pub.get()); },
      [pub](Napi::Env env) -> Napi::Value { return ToBuffer(env, tss::MarshalPublic(*pub)); },
      Effect::kNone);
}

Napi::Value ContextWrap::Persist(const Napi::CallbackInfo& info) {
  tss::KeyRef key = ToKeyRef(info[0]);
  const uint32_t handle = ToUint32(info[1], "handle");
  const bool force = info[2].ToBoolean();
  return Submit([key = std::move(key), handle,
                 force](tss::Context& ctx) { return tss::Persist(ctx, key, handle, force); },
                nullptr);
}

Napi::Value ContextWrap::Evict(const Napi::CallbackInfo& info) {
  const uint32_t handle = ToUint32(info[0], "handle");
  return Submit([handle](tss::Context& ctx) { return tss::Evict(ctx, handle); }, nullptr);
}

Napi::Value ContextWrap::Srk(const Napi::CallbackInfo& info) {
  const bool persist = info[0].ToBoolean();
  const bool force = info[1].ToBoolean();
  auto state = std::make_shared<tss::SrkState>(tss::SrkState::kAbsent);
  return Submit(
      [persist, force, state](tss::Context& ctx) {
        return tss::PersistentSrk(ctx, persist, force, state.get());
      },
      [state](Napi::Env env) -> Napi::Value {
        switch (*state) {
          case tss::SrkState::kStoragePrimary:
            return Napi::String::New(env, "storage-primary");
          case tss::SrkState::kOther:
            return Napi::String::New(env, "other");
          default:
            return Napi::String::New(env, "absent");
        }
      },
      persist ? Effect::kChanges : Effect::kNone);
}

Napi::Value ContextWrap::PrepareKey(const Napi::CallbackInfo& info) {
  return ToPreparedKey(info.Env(), ToKeyRef(info[0]));
}

Napi::Value ContextWrap::Sign(const Napi::CallbackInfo& info) {
  return SubmitSign(info, tss::Sign);
}

Napi::Value ContextWrap::SignMessage(const Napi::CallbackInfo& info) {
  return SubmitSign(info, tss::SignMessage);
}

Napi::Value ContextWrap::SubmitSign(const Napi::CallbackInfo& info, SignFunction sign) {
  PreparedKey key = FromPreparedKey(info[0]);
  std::vector<uint8_t> input = ToBytes(info[1], "input");
  const tss::SignScheme scheme = ToSignScheme(info[2]);
  auto signature = std::make_shared<std::vector<uint8_t>>();
  return Submit([sign, key = std::move(key), input = std::move(input), scheme, signature](
                    tss::Context& ctx) { return sign(ctx, *key, input, scheme, signature.get()); },
                [signature](Napi::Env env) -> Napi::Value { return ToBuffer(env, *signature); },
                Effect::kNone);
}

Napi::Value ContextWrap::Probe(const Napi::CallbackInfo& info) {
  tss::KeyRef key = ToKeyRef(info[0]);
  return Submit(
      [key = std::move(key)](tss::Context& ctx) {
        tss::Transient loaded(ctx.esys());
        return tss::LoadKey(ctx, key, &loaded);
      },
      nullptr, Effect::kNone);
}

Napi::Value ContextWrap::ParentPublic(const Napi::CallbackInfo& info) {
  const uint32_t parent = ToUint32(info[0], "parent");
  auto pub = std::make_shared<std::vector<uint8_t>>();
  return Submit(
      [parent, pub](tss::Context& ctx) { return tss::ReadParentPublic(ctx, parent, pub.get()); },
      [pub](Napi::Env env) -> Napi::Value { return ToBuffer(env, *pub); }, Effect::kNone);
}

Napi::Value ContextWrap::Import(const Napi::CallbackInfo& info) {
  const uint32_t parent = ToUint32(info[0], "parent");
  std::vector<uint8_t> pub = ToBytes(info[1], "public");
  std::vector<uint8_t> duplicate = ToBytes(info[2], "duplicate");
  std::vector<uint8_t> seed = ToBytes(info[3], "seed");
  auto priv = std::make_shared<std::vector<uint8_t>>();
  return Submit(
      [parent, pub = std::move(pub), duplicate = std::move(duplicate), seed = std::move(seed),
       priv](tss::Context& ctx) {
        return tss::Import(ctx, parent, pub, duplicate, seed, priv.get());
      },
      [priv](Napi::Env env) -> Napi::Value { return ToBuffer(env, *priv); });
}

Napi::Value ContextWrap::Handles(const Napi::CallbackInfo& info) {
  const uint32_t first = ToUint32(info[0], "first");
  const uint32_t max = ToUint32(info[1], "max");
  auto handles = std::make_shared<std::vector<TPM2_HANDLE>>();
  return Submit([first, max, handles](
                    tss::Context& ctx) { return tss::ListHandles(ctx, first, max, handles.get()); },
                [handles](Napi::Env env) -> Napi::Value {
                  Napi::Array out = Napi::Array::New(env, handles->size());
                  for (uint32_t i = 0; i < handles->size(); ++i) {
                    out.Set(i, Napi::Number::New(env, (*handles)[i]));
                  }
                  return out;
                },
                Effect::kNone);
}

Napi::Value ContextWrap::PolicyDigest(const Napi::CallbackInfo& info) {
  tss::PcrPolicy policy = ToPcrPolicy(info[0]);
  if (!policy.enabled()) throw Napi::TypeError::New(info.Env(), "policy must select PCRs");
  auto digest = std::make_shared<TPM2B_DIGEST>();
  // A trial session: it authorises nothing, and the TPM forgets it when it is flushed.
  return Submit(
      [policy, digest](tss::Context& ctx) {
        return tss::PolicyDigest(ctx.esys(), policy, digest.get());
      },
      [digest](Napi::Env env) -> Napi::Value {
        return Napi::Buffer<uint8_t>::Copy(env, digest->buffer, digest->size);
      },
      Effect::kNone);
}

Napi::Value ContextWrap::Certify(const Napi::CallbackInfo& info) {
  // The prepared key: its auth value is the addon's own copy (lib/ wiped its own).
  PreparedKey key = FromPreparedKey(info[0]);
  tss::AkSpec ak = ToAkSpec(info[1]);
  std::vector<uint8_t> qualifying_data = ToBytes(info[2], "qualifyingData");
  if (qualifying_data.size() > tss::kMaxQualifyingData) {
    throw Napi::TypeError::New(info.Env(), "qualifyingData must be at most 64 bytes");
  }
  auto out = std::make_shared<tss::Certification>();
  // Changes the TPM only when it persists a new AK; run again, it finds that AK and uses it.
  return Submit(
      [key = std::move(key), ak = std::move(ak), qualifying_data = std::move(qualifying_data),
       out](tss::Context& ctx) { return tss::Certify(ctx, *key, ak, qualifying_data, out.get()); },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object result = Napi::Object::New(env);
        result.Set("attest", ToBuffer(env, out->attest));
        result.Set("signature", ToBuffer(env, out->signature));
        result.Set("akPublic", ToBuffer(env, out->ak_public));
        result.Set("keyPublic", ToBuffer(env, out->key_public));
        return result;
      });
}

Napi::Value ContextWrap::ActivateCredential(const Napi::CallbackInfo& info) {
  tss::AkSpec ak = ToAkSpec(info[0]);
  std::vector<uint8_t> ak_name = ToOptionalBytes(info[1], "akName");
  tss::EkSpec ek = ToEkSpec(info[2]);
  std::vector<uint8_t> blob = ToBytes(info[3], "credentialBlob");
  std::vector<uint8_t> encrypted = ToBytes(info[4], "encryptedSecret");
  auto secret = std::make_shared<tss::SecretBytes>();
  return Submit(
      [ak = std::move(ak), ak_name = std::move(ak_name), ek = std::move(ek), blob = std::move(blob),
       encrypted = std::move(encrypted), secret](tss::Context& ctx) {
        return tss::ActivateCredential(ctx, ak, ak_name, ek, blob, encrypted, secret.get());
      },
      [secret](Napi::Env env) -> Napi::Value { return ToBuffer(env, *secret); });
}

Napi::Value ContextWrap::NvRead(const Napi::CallbackInfo& info) {
  const uint32_t index = ToUint32(info[0], "index");
  if ((index >> 24) != TPM2_HT_NV_INDEX)
    throw Napi::TypeError::New(info.Env(), "index must be an NV index (0x01xxxxxx)");
  auto data = std::make_shared<std::vector<uint8_t>>();
  return Submit([index, data](tss::Context& ctx) { return tss::ReadNv(ctx, index, data.get()); },
                [data](Napi::Env env) -> Napi::Value { return ToBuffer(env, *data); },
                Effect::kNone);
}

Napi::Value ContextWrap::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }
  closed_ = true;
  // Calls that have not started yet will never run; the running one finishes first.
  const tss::Status closed = tss::Status::Fail(tss::ErrorCode::kTpmClosed,
                                               "the TPM context was closed before this call ran");
  for (auto& call : executor_->TakeWaiting()) call->Reject(env, closed);
  auto call = std::make_unique<TpmCall>(
      env,
      [](tss::Context& ctx) {
        ctx.Release();
        return tss::Status();
      },
      nullptr);
  call->skip_reconnect();
  Napi::Promise promise = call->promise();
  executor_->Submit(env, std::move(call));
  executor_->StopWhenIdle(env);
  return promise;
}

Napi::Value ContextWrap::Submit(TpmCall::Work work, TpmCall::Result result, Effect effect) {
  Napi::Env env = Env();
  auto call = std::make_unique<TpmCall>(env, std::move(work), std::move(result));
  if (effect == Effect::kNone) call->set_idempotent();
  Napi::Promise promise = call->promise();
  if (closed_) {
    call->Reject(env, tss::Status::Fail(tss::ErrorCode::kTpmClosed, "the TPM context is closed"));
  } else {
    executor_->Submit(env, std::move(call));
  }
  return promise;
}
