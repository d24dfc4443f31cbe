// Reading call arguments into the plain structs of native/tss, and writing results
// back. lib/ validates everything first; the TypeErrors here are a backstop.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tss/attestation_key.h"
#include "tss/endorsement.h"
#include "tss/import.h"
#include "tss/key_ref.h"
#include "tss/secret.h"
#include "tss/session.h"
#include "tss/sign.h"
#include "tss/templates.h"

std::vector<uint8_t> ToBytes(const Napi::Value& value, const char* name);
// undefined or null reads as empty.
std::vector<uint8_t> ToOptionalBytes(const Napi::Value& value, const char* name);
// The same for secrets (auth values, key material): every copy is wiped when freed.
tss::SecretBytes ToSecret(const Napi::Value& value, const char* name);
tss::SecretBytes ToOptionalSecret(const Napi::Value& value, const char* name);
uint32_t ToUint32(const Napi::Value& value, const char* name);
std::string ToOptionalString(const Napi::Value& value, const char* name);
tss::KeyRef ToKeyRef(const Napi::Value& value);

// A key parsed once and shared by every call that signs with it (the sign path would
// otherwise re-read the key object, blobs included, on each signature).
using PreparedKey = std::shared_ptr<const tss::KeyRef>;
Napi::Value ToPreparedKey(Napi::Env env, tss::KeyRef key);
PreparedKey FromPreparedKey(const Napi::Value& value);
// { bank: TPMI_ALG_HASH, indexes: number[], authValue: boolean }; undefined: none.
tss::PcrPolicy ToPcrPolicy(const Napi::Value& value);
tss::KeySpec ToKeySpec(const Napi::Value& value);
tss::SignScheme ToSignScheme(const Napi::Value& value);
tss::ImportableKey ToImportableKey(const Napi::Value& value);
// { type: TPMI_ALG_PUBLIC, template?: Uint8Array, handle?: number, force?: boolean }.
tss::AkSpec ToAkSpec(const Napi::Value& value);
// { type: TPMI_ALG_PUBLIC, handle?: number, unique?: Uint8Array }.
tss::EkSpec ToEkSpec(const Napi::Value& value);
// { encrypt = true, saltKey: 'primary' | 'ek', saltKeyName?: Uint8Array }; undefined
// reads as the defaults.
tss::SessionOptions ToSessionOptions(const Napi::Value& value);

template <typename Allocator>
Napi::Buffer<uint8_t> ToBuffer(Napi::Env env, const std::vector<uint8_t, Allocator>& bytes) {
  return Napi::Buffer<uint8_t>::Copy(env, bytes.data(), bytes.size());
}
