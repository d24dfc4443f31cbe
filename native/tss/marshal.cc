#include "marshal.h"

#include "esys_ptr.h"

namespace tss {

std::vector<uint8_t> MarshalPublic(const TPM2B_PUBLIC& pub) {
  return ToWire(pub, Tss2_MU_TPM2B_PUBLIC_Marshal);
}

std::vector<uint8_t> MarshalPrivate(const TPM2B_PRIVATE& priv) {
  return ToWire(priv, Tss2_MU_TPM2B_PRIVATE_Marshal);
}

Status UnmarshalPublic(const std::vector<uint8_t>& bytes, TPM2B_PUBLIC* out) {
  return FromWire(bytes, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "the key's public blob", out,
                  ErrorCode::kKeyFileInvalid);
}

Status UnmarshalPrivate(const std::vector<uint8_t>& bytes, TPM2B_PRIVATE* out) {
  return FromWire(bytes, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "the key's private blob", out,
                  ErrorCode::kKeyFileInvalid);
}

Status OpenedPublic(ESYS_CONTEXT* esys, ESYS_TR object, TPM2B_PUBLIC* out) {
  uint8_t* raw = nullptr;
  size_t size = 0;
  TSS_CALL(Esys_TR_Serialize, esys, object, &raw, &size);
  EsysPtr<uint8_t> record(raw);
  // ESYS's IESYS_RESOURCE, the format of tpm2-tools' serialized handle files: the
  // handle, the Name, the kind of resource (1: an object), then its TPM2B_PUBLIC.
  constexpr UINT32 kObjectResource = 1;
  size_t offset = 0;
  TPM2_HANDLE handle = 0;
  TPM2B_NAME name = {};
  UINT32 kind = 0;
  TSS_CALL(Tss2_MU_TPM2_HANDLE_Unmarshal, record.get(), size, &offset, &handle);
  TSS_CALL(Tss2_MU_TPM2B_NAME_Unmarshal, record.get(), size, &offset, &name);
  TSS_CALL(Tss2_MU_UINT32_Unmarshal, record.get(), size, &offset, &kind);
  if (kind != kObjectResource) {
    return Status::Fail(ErrorCode::kTpm, "handle " + HandleHex(handle) + " is not an object");
  }
  // Tss2_MU's TPM2B unmarshalling refuses a destination whose size is not 0.
  *out = {};
  TSS_CALL(Tss2_MU_TPM2B_PUBLIC_Unmarshal, record.get(), size, &offset, out);
  return Status();
}

Status ObjectName(ESYS_CONTEXT* esys, ESYS_TR object, std::vector<uint8_t>* out) {
  TPM2B_NAME* raw = nullptr;
  TSS_CALL(Esys_TR_GetName, esys, object, &raw);
  EsysPtr<TPM2B_NAME> name(raw);
  out->assign(name->name, name->name + name->size);
  return Status();
}

}  // namespace tss
