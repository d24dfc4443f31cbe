#include "convert.h"

namespace {

[[noreturn]] void Fail(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

Napi::Object ToObject(const Napi::Value& value, const char* name) {
  if (!value.IsObject()) Fail(value.Env(), std::string(name) + " must be an object");
  return value.As<Napi::Object>();
}

// Any External reaches any addon's functions: IsExternal() alone would take one made by
// another addon (or by this one for another purpose) as a PreparedKey and dereference
// memory of some other type. Only Externals tagged with this value at creation are
// prepared keys. Fixed and random, so nothing else carries it by accident.
constexpr napi_type_tag kPreparedKeyTag = {0x4d8b26f350cfb02bULL, 0x2bbcbbf7fecced62ULL};

}  // namespace

namespace {

Napi::Uint8Array ToUint8Array(const Napi::Value& value, const char* name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Fail(value.Env(), std::string(name) + " must be a Uint8Array");
  }
  return value.As<Napi::Uint8Array>();
}

}  // namespace

std::vector<uint8_t> ToBytes(const Napi::Value& value, const char* name) {
  Napi::Uint8Array array = ToUint8Array(value, name);
  return std::vector<uint8_t>(array.Data(), array.Data() + array.ByteLength());
}

std::vector<uint8_t> ToOptionalBytes(const Napi::Value& value, const char* name) {
  if (value.IsUndefined() || value.IsNull()) return {};
  return ToBytes(value, name);
}

tss::SecretBytes ToSecret(const Napi::Value& value, const char* name) {
  Napi::Uint8Array array = ToUint8Array(value, name);
  return tss::SecretBytes(array.Data(), array.Data() + array.ByteLength());
}

tss::SecretBytes ToOptionalSecret(const Napi::Value& value, const char* name) {
  if (value.IsUndefined() || value.IsNull()) return {};
  return ToSecret(value, name);
}

uint32_t ToUint32(const Napi::Value& value, const char* name) {
  if (!value.IsNumber()) Fail(value.Env(), std::string(name) + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 0 && number <= 0xFFFFFFFFu) || number != static_cast<uint32_t>(number)) {
    Fail(value.Env(), std::string(name) + " must be a 32-bit unsigned integer");
  }
  return static_cast<uint32_t>(number);
}

std::string ToOptionalString(const Napi::Value& value, const char* name) {
  if (value.IsUndefined() || value.IsNull()) return "";
  if (!value.IsString()) Fail(value.Env(), std::string(name) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

tss::PcrPolicy ToPcrPolicy(const Napi::Value& value) {
  tss::PcrPolicy policy;
  if (value.IsUndefined() || value.IsNull()) return policy;
  Napi::Object object = ToObject(value, "policy");
  policy.bank = static_cast<TPMI_ALG_HASH>(ToUint32(object.Get("bank"), "policy.bank"));
  Napi::Value indexes = object.Get("indexes");
  if (!indexes.IsArray()) Fail(value.Env(), "policy.indexes must be an array");
  Napi::Array list = indexes.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    const uint32_t index = ToUint32(list.Get(i), "policy.indexes[]");
    if (index > 23) Fail(value.Env(), "policy.indexes must be 0 to 23");
    policy.indexes.push_back(static_cast<uint8_t>(index));
  }
  policy.auth_value = object.Get("authValue").ToBoolean();
  return policy;
}

tss::KeyRef ToKeyRef(const Napi::Value& value) {
  Napi::Object object = ToObject(value, "key");
  tss::KeyRef key;
  key.auth = ToOptionalSecret(object.Get("auth"), "key.auth");
  key.policy = ToPcrPolicy(object.Get("policy"));
  Napi::Value handle = object.Get("handle");
  if (!handle.IsUndefined()) {
    key.handle = ToUint32(handle, "key.handle");
    return key;
  }
  key.parent = ToUint32(object.Get("parent"), "key.parent");
  key.blob.pub = ToBytes(object.Get("public"), "key.public");
  key.blob.priv = ToBytes(object.Get("private"), "key.private");
  tss::SetCacheId(&key);
  return key;
}

Napi::Value ToPreparedKey(Napi::Env env, tss::KeyRef key) {
  auto* prepared = new PreparedKey(std::make_shared<const tss::KeyRef>(std::move(key)));
  auto external = Napi::External<PreparedKey>::New(
      env, prepared, [](Napi::Env, PreparedKey* data) { delete data; });
  external.TypeTag(&kPreparedKeyTag);
  return external;
}

PreparedKey FromPreparedKey(const Napi::Value& value) {
  // Only lib/ makes these; anything else is a programming error caught as TypeError.
  if (!value.IsExternal() ||
      !value.As<Napi::External<PreparedKey>>().CheckTypeTag(&kPreparedKeyTag)) {
    Fail(value.Env(), "key must come from prepareKey()");
  }
  return *value.As<Napi::External<PreparedKey>>().Data();
}

tss::KeySpec ToKeySpec(const Napi::Value& value) {
  Napi::Object object = ToObject(value, "spec");
  tss::KeySpec spec;
  spec.type = static_cast<TPMI_ALG_PUBLIC>(ToUint32(object.Get("type"), "spec.type"));
  if (spec.type == TPM2_ALG_RSA) {
    spec.bits = static_cast<uint16_t>(ToUint32(object.Get("bits"), "spec.bits"));
  } else if (spec.type == TPM2_ALG_ECC) {
    spec.curve = static_cast<TPMI_ECC_CURVE>(ToUint32(object.Get("curve"), "spec.curve"));
  } else {
    Fail(value.Env(), "spec.type must be TPM2_ALG_RSA or TPM2_ALG_ECC");
  }
  return spec;
}

tss::SignScheme ToSignScheme(const Napi::Value& value) {
  Napi::Object object = ToObject(value, "scheme");
  tss::SignScheme scheme;
  scheme.scheme = static_cast<TPMI_ALG_SIG_SCHEME>(ToUint32(object.Get("scheme"), "scheme.scheme"));
  scheme.hash = static_cast<TPMI_ALG_HASH>(ToUint32(object.Get("hash"), "scheme.hash"));
  Napi::Value size = object.Get("coordinateSize");
  if (!size.IsUndefined()) {
    scheme.coordinate_size = ToUint32(size, "scheme.coordinateSize");
    // P-521's 66 bytes is the largest coordinate of any TPM curve.
    if (scheme.coordinate_size > 66) Fail(object.Env(), "scheme.coordinateSize must be at most 66");
  }
  return scheme;
}

tss::ImportableKey ToImportableKey(const Napi::Value& value) {
  Napi::Object object = ToObject(value, "key");
  tss::ImportableKey key;
  key.spec = ToKeySpec(object.Get("spec"));
  key.secret = ToSecret(object.Get("secret"), "key.secret");
  key.auth = ToOptionalSecret(object.Get("auth"), "key.auth");
  if (key.spec.type == TPM2_ALG_RSA) {
    key.rsa_modulus = ToBytes(object.Get("modulus"), "key.modulus");
    key.rsa_exponent = ToUint32(object.Get("exponent"), "key.exponent");
  } else {
    key.ecc_x = ToBytes(object.Get("x"), "key.x");
    key.ecc_y = ToBytes(object.Get("y"), "key.y");
  }
  return key;
}

namespace {

// A persistent handle (0x81000000 to 0x81ffffff): lib/ checks it, this is the backstop.
TPM2_HANDLE ToPersistentHandle(const Napi::Value& value, const char* name) {
  const uint32_t handle = ToUint32(value, name);
  if ((handle & TPM2_HR_RANGE_MASK) != TPM2_HR_PERSISTENT) {
    Fail(value.Env(), std::string(name) + " must be a persistent handle (0x81xxxxxx)");
  }
  return handle;
}

// An AK's or EK's `type`: TPM2_ALG_RSA or TPM2_ALG_ECC.
TPMI_ALG_PUBLIC ToKeyType(const Napi::Value& value, const std::string& name) {
  const auto type = static_cast<TPMI_ALG_PUBLIC>(ToUint32(value, name.c_str()));
  const tss::Status valid = tss::CheckKeyType(type, name);
  if (!valid.ok()) Fail(value.Env(), valid.Message());
  return type;
}

}  // namespace

tss::AkSpec ToAkSpec(const Napi::Value& value) {
  Napi::Object object = ToObject(value, "ak");
  tss::AkSpec ak;
  ak.type = ToKeyType(object.Get("type"), "ak.type");
  ak.tmpl = ToOptionalBytes(object.Get("template"), "ak.template");
  Napi::Value handle = object.Get("handle");
  if (!handle.IsUndefined()) ak.handle = ToPersistentHandle(handle, "ak.handle");
  ak.force = object.Get("force").ToBoolean();
  return ak;
}

tss::EkSpec ToEkSpec(const Napi::Value& value) {
  Napi::Object object = ToObject(value, "ek");
  tss::EkSpec ek;
  ek.type = ToKeyType(object.Get("type"), "ek.type");
  Napi::Value handle = object.Get("handle");
  if (!handle.IsUndefined()) ek.handle = ToPersistentHandle(handle, "ek.handle");
  ek.unique = ToOptionalBytes(object.Get("unique"), "ek.unique");
  return ek;
}

tss::SessionOptions ToSessionOptions(const Napi::Value& value) {
  tss::SessionOptions options;
  if (value.IsUndefined() || value.IsNull()) return options;
  Napi::Object object = ToObject(value, "session");
  Napi::Value encrypt = object.Get("encrypt");
  if (!encrypt.IsUndefined()) options.encrypt = encrypt.ToBoolean();
  const std::string salt = ToOptionalString(object.Get("saltKey"), "session.saltKey");
  if (salt != "" && salt != "primary" && salt != "ek") {
    Fail(value.Env(), "session.saltKey must be 'primary' or 'ek'");
  }
  options.salt_with_ek = salt == "ek";
  options.salt_key_name = ToOptionalBytes(object.Get("saltKeyName"), "session.saltKeyName");
  return options;
}
