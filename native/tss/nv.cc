#include "nv.h"

#include <algorithm>

#include "esys_ptr.h"

namespace tss {

namespace {

// What TPM2_NV_Read returns at most per command (TPM2_PT_NV_BUFFER_MAX), within what
// TPM2B_MAX_NV_BUFFER holds; 512 when the TPM does not say, which every TPM accepts.
uint16_t ChunkSize(ESYS_CONTEXT* esys) {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* data_raw = nullptr;
  if (Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                         TPM2_PT_NV_BUFFER_MAX, 1, &more, &data_raw) != TSS2_RC_SUCCESS) {
    return 512;
  }
  EsysPtr<TPMS_CAPABILITY_DATA> data(data_raw);
  const TPML_TAGGED_TPM_PROPERTY& list = data->data.tpmProperties;
  if (list.count == 0 || list.tpmProperty[0].property != TPM2_PT_NV_BUFFER_MAX) return 512;
  constexpr uint32_t kMost = sizeof(TPM2B_MAX_NV_BUFFER::buffer);
  return static_cast<uint16_t>(
      std::min<uint32_t>(std::max<uint32_t>(list.tpmProperty[0].value, 64), kMost));
}

}  // namespace

Status ReadNv(Context& ctx, TPM2_HANDLE index, std::vector<uint8_t>* out) {
  ESYS_TR nv = ESYS_TR_NONE;
  TSS_RETURN_IF_ERROR(ctx.OpenHandle(index, &nv));
  TPM2B_NV_PUBLIC* public_raw = nullptr;
  TSS_CALL(Esys_NV_ReadPublic, ctx.esys(), nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
           &public_raw, nullptr);
  EsysPtr<TPM2B_NV_PUBLIC> nv_public(public_raw);
  const TPMA_NV attributes = nv_public->nvPublic.attributes;
  const uint16_t size = nv_public->nvPublic.dataSize;
  // Said here, before the TPM answers TPM_RC_NV_UNINITIALIZED or _NV_LOCKED.
  if (!(attributes & TPMA_NV_WRITTEN)) {
    return Status::Fail(ErrorCode::kTpmKeyNotFound, "the NV index has never been written");
  }
  if (attributes & TPMA_NV_READLOCKED) {
    return Status::Fail(ErrorCode::kTpmUnsupported,
                        "the NV index is read-locked until the TPM is next reset");
  }
  ESYS_TR authorizer = nv;
  if (!(attributes & TPMA_NV_AUTHREAD)) {
    if (!(attributes & TPMA_NV_OWNERREAD)) {
      return Status::Fail(ErrorCode::kTpmUnsupported,
                          "the NV index can be read neither with its own nor the owner's auth");
    }
    authorizer = ESYS_TR_RH_OWNER;
  }
  const uint16_t chunk = ChunkSize(ctx.esys());
  out->clear();
  out->reserve(size);
  for (uint16_t offset = 0; offset < size;) {
    const uint16_t want = std::min<uint16_t>(chunk, size - offset);
    ESYS_TR auth = ESYS_TR_NONE;
    TSS_RETURN_IF_ERROR(ctx.Auth(0, &auth));
    TPM2B_MAX_NV_BUFFER* data_raw = nullptr;
    TSS_CALL(Esys_NV_Read, ctx.esys(), authorizer, nv, auth, ESYS_TR_NONE, ESYS_TR_NONE, want,
             offset, &data_raw);
    EsysPtr<TPM2B_MAX_NV_BUFFER> data(data_raw);
    if (data->size == 0) break;
    out->insert(out->end(), data->buffer, data->buffer + data->size);
    offset = static_cast<uint16_t>(offset + data->size);
  }
  return Status();
}

}  // namespace tss
