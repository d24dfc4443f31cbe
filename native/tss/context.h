// One connection to a TPM: the TCTI, the ESYS context on it, and the ESYS_TR objects
// opened for persistent handles (cached so a sign does not re-read the public area).
// Not thread-safe: the glue runs one call at a time on it.
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "status.h"

namespace tss {

class Context {
 public:
  Context() = default;
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Connects through tctildr. An empty conf lets tpm2-tss search its defaults.
  // Sends TPM2_Startup(CLEAR), accepting a TPM that has already been started.
  Status Open(const std::string& tcti_conf, const std::vector<uint8_t>& owner_auth);
  void Close();
  bool is_open() const { return esys_ != nullptr; }

  ESYS_CONTEXT* esys() const { return esys_; }

  // The ESYS_TR for a persistent (or other permanent) TPM handle, opened once.
  Status OpenHandle(TPM2_HANDLE handle, ESYS_TR* out);
  // Drops a cached handle after the object behind it is evicted.
  void ForgetHandle(TPM2_HANDLE handle);

 private:
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* esys_ = nullptr;
  std::map<TPM2_HANDLE, ESYS_TR> handles_;
};

}  // namespace tss
