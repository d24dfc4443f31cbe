#include "js_error.h"

#include "addon_data.h"

Napi::Value ToJsError(Napi::Env env, const tss::Status& status) {
  Napi::Object details = Napi::Object::New(env);
  if (status.rc() != 0) {
    details.Set("tpmRc", Napi::Number::New(env, status.rc()));
    details.Set("tpmRcText", Napi::String::New(env, status.RcText()));
    details.Set("command", Napi::String::New(env, status.command()));
  }
  const char* code = tss::ErrorCodeName(status.code());
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->error_class.IsEmpty()) {
    return data->error_class.New(
        {Napi::String::New(env, code), Napi::String::New(env, status.Message()), details});
  }
  // Only before lib/native.ts registered the class: still carry the code.
  Napi::Error error = Napi::Error::New(env, status.Message());
  error.Set("code", Napi::String::New(env, code));
  return error.Value();
}
