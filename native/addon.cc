// Entry point of the tpm_jwt addon: the Context class and the pure helper that needs
// tpm2-tss's marshaling code. Public areas leave the addon as their marshaled bytes;
// TypeScript decodes them (lib/wire/tpm-structures.ts), for the device and the verifier alike.
#include <napi.h>

#include <cstdlib>

#include "addon_data.h"
#include "context_wrap.h"
#include "convert.h"
#include "js_error.h"
#include "tss/error_code.h"
#include "tss/import.h"

namespace {

// tpm2-tss logs every failed command to stderr; failures reach the caller as errors
// instead. TSS2_LOG set by the user still wins. This runs once per process, when the
// shared object is loaded: Init runs again in every worker thread that requires the
// addon, and a setenv there would race with other threads reading the environment
// (tpm2-tss on an executor thread, Node, libuv). At load time none of the addon's
// threads exist yet.
const struct QuietTssLog {
  QuietTssLog() { setenv("TSS2_LOG", "all+none", 0); }
} kQuietTssLog;

// setErrorClass(TpmJwtError): native failures become instances of it.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "expected a class");
  info.Env().GetInstanceData<AddonData>()->error_class =
      Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// marshalImportable(key): { public, sensitive } for a key to import. The sensitive
// area is the plaintext private key: the caller wraps it and wipes the buffer.
Napi::Value MarshalImportable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tss::ImportableKey key = ToImportableKey(info[0]);
  std::vector<uint8_t> pub;
  tss::SecretBytes sensitive;
  tss::Status status = tss::MarshalImportable(key, &pub, &sensitive);
  if (!status.ok()) throw Napi::Error(env, ToJsError(env, status));
  Napi::Object out = Napi::Object::New(env);
  out.Set("public", ToBuffer(env, pub));
  out.Set("sensitive", ToBuffer(env, sensitive));
  return out;
}

// errorCodes: every code native failures can carry, frozen; lib/errors.ts's ERROR_CODES
// must be the same set.
Napi::Array ErrorCodes(Napi::Env env) {
  Napi::Array names = Napi::Array::New(env, tss::kErrorCodeCount);
  for (size_t i = 0; i < tss::kErrorCodeCount; ++i) {
    names.Set(static_cast<uint32_t>(i), tss::ErrorCodeName(static_cast<tss::ErrorCode>(i)));
  }
  names.Freeze();
  return names;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("Context", ContextWrap::Define(env));
  exports.Set("setErrorClass", Napi::Function::New<SetErrorClass>(env, "setErrorClass"));
  exports.Set("marshalImportable",
              Napi::Function::New<MarshalImportable>(env, "marshalImportable"));
  exports.Set("errorCodes", ErrorCodes(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(tpm_jwt, Init)
