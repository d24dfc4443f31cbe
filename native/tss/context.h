// One connection to a TPM: the TCTI, the ESYS context on it, and the ESYS_TR objects
// opened for persistent handles (cached so a sign does not re-read the public area).
// Not thread-safe: the glue runs one call at a time on it.
#pragma once

#include <tss2/tss2_esys.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "link.h"
#include "object_cache.h"
#include "saved_context.h"
#include "secret.h"
#include "session.h"
#include "status.h"

namespace tss {

class Context {
 public:
  // Where the TCG provisioning guidance persists the storage root key.
  static constexpr TPM2_HANDLE kSrkHandle = 0x81000001;

  Context() { link_.set_stop_flag(&stop_requested_); }
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Connects through tctildr. An empty conf lets tpm2-tss search its defaults.
  // Looks for the persistent SRK first (FindSrk), which also starts a TPM that has not
  // been started. Unless `session.encrypt` is off, settles the salt key and checks it
  // against a pinned Name: the SRK, whose session starts with the first command that
  // needs it, or else the storage primary, whose session starts here.
  // `orphans`: what an earlier connection to the TPM left loaded (Reopen).
  Status Open(const std::string& tcti_conf, const SecretBytes& owner_auth,
              const SessionOptions& session, const std::vector<ObjectCache::Loaded>& orphans = {});
  // Releases the TPM connection; keeps what Reopen needs.
  void Close();
  // Closes for good: also forgets the owner auth a reconnect would have used.
  void Release();

  // After a call lost the connection (swtpm or the resource manager restarted, the
  // device went away) the context is broken; the next call reopens it with the
  // settings Open was given: a new TCTI, ESYS context and session. A link that failed
  // under any command, one whose error was ignored included, breaks it too: ESYS
  // answers "wrong order" to everything after.
  void MarkBroken() { broken_ = true; }
  bool broken() const { return broken_ || link_.failed(); }
  // The link's failure when it failed since the context was opened.
  bool link_failed() const { return link_.failed(); }
  const Status& link_failure() const { return link_.failure(); }
  Status Reopen();

  ESYS_CONTEXT* esys() const { return esys_; }

  // The ESYS_TR for a persistent (or other permanent) TPM handle, opened once.
  Status OpenHandle(TPM2_HANDLE handle, ESYS_TR* out);
  // Drops a cached handle after the object behind it is evicted.
  void ForgetHandle(TPM2_HANDLE handle);

  // The session to authorise the next command with: the salted HMAC session, set to
  // encrypt the parameters named by `crypt` (TPMA_SESSION_DECRYPT for the command's
  // first parameter, _ENCRYPT for the response's; only for commands whose first
  // parameter is a TPM2B), or the password session when encryption is off.
  Status Auth(TPMA_SESSION crypt, ESYS_TR* out);
  // The session that only encrypts parameters next to another authorisation (a
  // policy session): the salted session, or ESYS_TR_NONE when not encrypting.
  Status CryptSession(TPMA_SESSION crypt, ESYS_TR* out);
  // Forgets a session the TPM no longer has; the next Auth starts a new one.
  void DropSession();

  // Called when no call is queued. Without a resource manager the context then holds
  // no TPM slot (ReleaseSlots). With one, everything stays loaded.
  void Idle();
  // Holds no TPM slot from now on, resource manager or not: the session's context is
  // saved and every cached object unloaded, to be loaded again when next needed. For
  // slot shortages, and before a command that needs more transient objects than a
  // resource manager gives one connection (three, for the kernel's) beside the cache.
  void ReleaseSlots();
  // A transient object reused across calls (a key file's key): see ObjectCache::Get.
  // The ESYS_TR stays the context's: do not flush it.
  Status CachedObject(const std::string& id, const ObjectCache::Make& make, ESYS_TR* out);
  // Frees a cached object's slot at once when the TPM is shared (a parent, once the
  // key under it is loaded).
  void UnloadObject(const std::string& id);
  // The owner's storage primary (templates.h), cached: one CreatePrimary serves as the
  // session's salt key and as the parent of key files and new keys.
  Status StoragePrimary(ESYS_TR* out);
  void UnloadStoragePrimary() { UnloadObject(kStoragePrimary); }

  // The TCG SRK persisted at 0x81000001 (TCG TPM v2.0 Provisioning Guidance), found at
  // open; ESYS_TR_NONE when there is none.
  ESYS_TR srk() const { return srk_; }
  // Whether the SRK is this storage primary (same template and seed, so its key files
  // load under it): unknown until a key file needs a parent.
  std::optional<bool> srk_is_storage_primary() const { return srk_is_storage_primary_; }
  void set_srk_is_storage_primary(bool is) { srk_is_storage_primary_ = is; }
  // After the object at the SRK's handle changed: this connection salts and loads with
  // the storage primary itself from now on.
  void ForgetSrk();
  // After another process flushed objects this context had loaded.
  void ForgetLoadedObjects();

  // Any thread: the context is being stopped; a call waiting for slots gives up.
  void RequestStop() { stop_requested_ = true; }
  bool stop_requested() const { return stop_requested_; }

  // How long one command may take before it fails with ERR_TPM_TIMEOUT (Link).
  void set_command_timeout(std::chrono::milliseconds timeout) {
    link_.set_command_timeout(timeout);
  }

  // How long a call waits for the TPM's slots to free up before it fails.
  std::chrono::milliseconds retry_timeout() const { return retry_timeout_; }
  void set_retry_timeout(std::chrono::milliseconds timeout) { retry_timeout_ = timeout; }
  // The Name of the key the session was salted with (empty when not encrypting).
  const std::vector<uint8_t>& salt_key_name() const { return salt_key_name_; }

 private:
  static constexpr char kStoragePrimary[] = "storage-primary";

  Status FindSrk();
  // The salted session: to the SRK when it serves, else to the EK or the storage primary.
  Status StartSession();
  // Takes `key` as the salt key if it has the pinned Name (any Name when none is pinned).
  Status AcceptSaltKey(ESYS_TR key);
  // After a reconnect: flushes what the broken connection left loaded, where the TPM
  // still has it.
  void FlushOrphans(const std::vector<ObjectCache::Loaded>& orphans);

  Link link_;
  ESYS_CONTEXT* esys_ = nullptr;
  std::map<TPM2_HANDLE, ESYS_TR> handles_;
  std::string tcti_conf_;
  SecretBytes owner_auth_;
  bool broken_ = false;
  SessionOptions session_options_;
  ESYS_TR session_ = ESYS_TR_NONE;
  // The session while idle on a shared TPM.
  SavedContext saved_session_;
  std::vector<uint8_t> salt_key_name_;
  ESYS_TR srk_ = ESYS_TR_NONE;
  // The SRK salts the session: found, a key that can, and with the pinned Name if one
  // is pinned.
  bool srk_salts_ = false;
  std::optional<bool> srk_is_storage_primary_;
  ObjectCache objects_;
  bool resource_manager_ = false;
  std::chrono::milliseconds retry_timeout_{5000};
  std::atomic<bool> stop_requested_{false};
};

}  // namespace tss
