// The transient objects a context reuses from call to call: the owner's storage
// primary and the keys of key files, each made once (TPM2_CreatePrimary, TPM2_Load)
// and afterwards kept loaded or brought back from its saved context, which is one
// command instead of two and no key derivation. Plain C++: no N-API here.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "saved_context.h"
#include "status.h"

namespace tss {

class ObjectCache {
 public:
  // Makes the object from scratch when there is nothing to reuse.
  using Make = std::function<Status(ESYS_TR* out)>;

  // The object named `id`, loaded: as it is, from its saved context (a context the TPM
  // no longer accepts, after a restart, is dropped and the object made anew), or made
  // by `make`. The cache keeps the ESYS_TR: the caller must not flush it.
  Status Get(ESYS_CONTEXT* esys, const std::string& id, const Make& make, ESYS_TR* out);
  // Saves the object's context (once) and flushes it: its slot is free again.
  void Unload(ESYS_CONTEXT* esys, const std::string& id);
  // Unload for every object: what a context holds while idle without a resource manager.
  void UnloadAll(ESYS_CONTEXT* esys);
  // After the TPM lost objects this cache thought loaded (another process flushed
  // them): forgets the handles without flushing; saved contexts stay.
  void ForgetLoaded(ESYS_CONTEXT* esys);
  // Flushes what is loaded and drops everything (the connection is closing).
  void Clear(ESYS_CONTEXT* esys);

  // An object as the TPM knows it: its handle there, and its Name.
  struct Loaded {
    TPM2_HANDLE handle;
    std::vector<uint8_t> name;
  };
  // What is loaded now, read from ESYS's records (no command).
  std::vector<Loaded> LoadedObjects(ESYS_CONTEXT* esys) const;

 private:
  struct Entry {
    ESYS_TR loaded = ESYS_TR_NONE;
    SavedContext saved;
    uint64_t used = 0;
  };
  // The least recently used entry goes first when the cache is full.
  void Evict(ESYS_CONTEXT* esys);
  // Unloads the least recently used objects until another (not `id`) fits.
  void MakeRoom(ESYS_CONTEXT* esys, const std::string& id);

  std::map<std::string, Entry> entries_;
  uint64_t clock_ = 0;
};

}  // namespace tss
