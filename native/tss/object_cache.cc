#include "object_cache.h"

#include <utility>

#include "marshal.h"

namespace tss {

namespace {

// Enough for every key file a process signs with in turn; each entry is a few
// hundred bytes of saved context.
constexpr size_t kMaxEntries = 32;
// Loaded at once: a key and its parent. A TPM may have only 3 object slots, and the
// kernel's resource manager gives each connection 3 as well; a hash sequence or a
// salt key may need the third.
constexpr size_t kMaxLoaded = 2;

}  // namespace

Status ObjectCache::Get(ESYS_CONTEXT* esys, const std::string& id, const Make& make, ESYS_TR* out) {
  auto found = entries_.find(id);
  if (found == entries_.end()) {
    if (entries_.size() >= kMaxEntries) Evict(esys);
    found = entries_.emplace(id, Entry()).first;
  }
  Entry& entry = found->second;
  entry.used = ++clock_;
  if (entry.loaded == ESYS_TR_NONE) MakeRoom(esys, id);
  if (entry.loaded == ESYS_TR_NONE && !entry.saved.empty()) {
    TSS_RETURN_IF_ERROR(entry.saved.Load(esys, false, &entry.loaded));
  }
  if (entry.loaded == ESYS_TR_NONE) {
    Status made = make(&entry.loaded);
    if (!made.ok()) {
      entry.loaded = ESYS_TR_NONE;
      return made;
    }
  }
  *out = entry.loaded;
  return Status();
}

void ObjectCache::Unload(ESYS_CONTEXT* esys, const std::string& id) {
  auto found = entries_.find(id);
  if (found == entries_.end() || found->second.loaded == ESYS_TR_NONE) return;
  Entry& entry = found->second;
  // Saved once (an object's context can be loaded again and again); if saving fails,
  // the object is simply made again next time.
  if (entry.saved.empty()) (void)entry.saved.Save(esys, entry.loaded);
  const TSS2_RC flushed = Esys_FlushContext(esys, entry.loaded);
  if (flushed == TSS2_RC_SUCCESS) {
    entry.loaded = ESYS_TR_NONE;
  } else if (IsTpmAnswer(Status::Tss(flushed, "Esys_FlushContext"))) {
    // The TPM has it no more (another process flushed it): only ESYS's record is left.
    Esys_TR_Close(esys, &entry.loaded);
    entry.loaded = ESYS_TR_NONE;
  }
  // Otherwise the flush never reached the TPM (the link broke): the object stays on
  // record as loaded, so that a reconnect knows what the TPM may still hold.
}

void ObjectCache::UnloadAll(ESYS_CONTEXT* esys) {
  for (auto& entry : entries_) Unload(esys, entry.first);
}

void ObjectCache::ForgetLoaded(ESYS_CONTEXT* esys) {
  for (auto& entry : entries_) {
    ESYS_TR& loaded = entry.second.loaded;
    if (loaded == ESYS_TR_NONE) continue;
    // Flushed if the TPM still has it (not every one need be gone); else only the
    // ESYS record is dropped.
    if (Esys_FlushContext(esys, loaded) != TSS2_RC_SUCCESS) Esys_TR_Close(esys, &loaded);
    loaded = ESYS_TR_NONE;
  }
}

void ObjectCache::Clear(ESYS_CONTEXT* esys) {
  for (auto& entry : entries_) {
    if (entry.second.loaded != ESYS_TR_NONE && esys != nullptr) {
      Esys_FlushContext(esys, entry.second.loaded);
    }
  }
  entries_.clear();
}

std::vector<ObjectCache::Loaded> ObjectCache::LoadedObjects(ESYS_CONTEXT* esys) const {
  std::vector<Loaded> out;
  for (const auto& entry : entries_) {
    const ESYS_TR tr = entry.second.loaded;
    Loaded loaded = {};
    if (tr != ESYS_TR_NONE && Esys_TR_GetTpmHandle(esys, tr, &loaded.handle) == TSS2_RC_SUCCESS &&
        ObjectName(esys, tr, &loaded.name).ok()) {
      out.push_back(std::move(loaded));
    }
  }
  return out;
}

void ObjectCache::MakeRoom(ESYS_CONTEXT* esys, const std::string& id) {
  for (;;) {
    size_t loaded = 0;
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first == id || it->second.loaded == ESYS_TR_NONE) continue;
      ++loaded;
      if (oldest == entries_.end() || it->second.used < oldest->second.used) oldest = it;
    }
    if (loaded < kMaxLoaded) return;
    Unload(esys, oldest->first);
    // Still loaded: the link broke. The command that follows fails the same way.
    if (oldest->second.loaded != ESYS_TR_NONE) return;
  }
}

void ObjectCache::Evict(ESYS_CONTEXT* esys) {
  auto oldest = entries_.begin();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.used < oldest->second.used) oldest = it;
  }
  if (oldest->second.loaded != ESYS_TR_NONE) Esys_FlushContext(esys, oldest->second.loaded);
  entries_.erase(oldest);
}

}  // namespace tss
