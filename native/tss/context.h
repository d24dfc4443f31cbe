// One connection to a TPM: the TCTI, the ESYS context on it, and the ESYS_TR objects
// opened for persistent handles (cached so a sign does not re-read the public area).
// Not thread-safe: the glue runs one call at a time on it.
#pragma once

#include <tss2/tss2_esys.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
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
  Context() { link_.set_stop_flag(&stop_requested_); }
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Connects through tctildr. An empty conf lets tpm2-tss search its defaults.
  // Sends TPM2_Startup(CLEAR), accepting a TPM that has already been started, and
  // starts the salted session unless `session.encrypt` is off.
  Status Open(const std::string& tcti_conf, const SecretBytes& owner_auth,
              const SessionOptions& session);
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
  // A transient object reused across calls (the storage primary, a key file's key):
  // see ObjectCache::Get. The ESYS_TR stays the context's: do not flush it.
  Status CachedObject(const std::string& id, const ObjectCache::Make& make, ESYS_TR* out);
  // Frees a cached object's slot at once when the TPM is shared (a parent, once the
  // key under it is loaded).
  void UnloadObject(const std::string& id);
  // After another process flushed objects this context had loaded.
  void ForgetLoadedObjects();

  // Any thread: the context is being stopped; a call waiting for slots gives up.
  void RequestStop() { stop_requested_ = true; }
  bool stop_requested() const { return stop_requested_; }

  // How long a call waits for the TPM's slots to free up before it fails.
  std::chrono::milliseconds retry_timeout() const { return retry_timeout_; }
  void set_retry_timeout(std::chrono::milliseconds timeout) { retry_timeout_ = timeout; }
  // The Name of the key the session was salted with (empty when not encrypting).
  const std::vector<uint8_t>& salt_key_name() const { return salt_key_name_; }

 private:
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
  ObjectCache objects_;
  bool resource_manager_ = false;
  std::chrono::milliseconds retry_timeout_{5000};
  std::atomic<bool> stop_requested_{false};
};

}  // namespace tss
