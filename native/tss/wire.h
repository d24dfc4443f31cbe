// TPM structures to and from their wire bytes, for the structures attestation passes
// through (TPMT_SIGNATURE, TPMT_PUBLIC templates, credential blobs): one helper over
// every Tss2_MU pair. Plain C++: no N-API here.
#pragma once

#include <tss2/tss2_mu.h>

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace tss {

// The wire form of `value`; cannot fail, the buffer being as large as the structure.
template <typename T, typename MarshalFn>
std::vector<uint8_t> ToWire(const T& value, MarshalFn marshal) {
  std::vector<uint8_t> out(sizeof(T));
  size_t offset = 0;
  marshal(&value, out.data(), out.size(), &offset);
  out.resize(offset);
  return out;
}

// Reads exactly one structure from `bytes`; anything else is ERR_INVALID_ARGUMENT
// naming `what`.
template <typename T, typename UnmarshalFn>
Status FromWire(const std::vector<uint8_t>& bytes, UnmarshalFn unmarshal, const char* what,
                T* out) {
  size_t offset = 0;
  *out = {};
  const TSS2_RC rc = unmarshal(bytes.data(), bytes.size(), &offset, out);
  if (rc != TSS2_RC_SUCCESS || offset != bytes.size()) {
    return Status::Fail(ErrorCode::kInvalidArgument, std::string(what) + " is malformed");
  }
  return Status();
}

}  // namespace tss
