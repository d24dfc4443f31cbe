// The TCTI a context talks through, and what it knows about the link's health.
//
// ESYS cannot be used again once a command was cut short below it: the call fails
// with the TCTI's error, and every later call on the same ESYS context answers "wrong
// order". So the link records its first failure, and the context treats a failed link
// as broken (reopened before the next call) however the ESYS call that hit it was
// handled, cleanup paths that ignore errors included.
//
// For swtpm (CI, docker-compose) the socket I/O is done here rather than by tpm2-tss's
// TCTI: its sockets are not close-on-exec, so a child process spawned while a command
// is in flight inherits the connection, and swtpm, which serves one connection at a
// time, then waits on it, and every client of the TPM with it, until that child exits.
// Its receive has no time limit either. Everything else goes through tctildr, and the
// descriptors tctildr's TCTI reports are made close-on-exec once it is open.
// Plain C++: no N-API here.
#pragma once

#include <sys/socket.h>
#include <tss2/tss2_tcti.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace tss {

class Link {
 public:
  Link();
  ~Link() { Close(); }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Opens the TCTI `conf` names (a tctildr string; empty: tpm2-tss's default search).
  Status Open(const std::string& conf);
  void Close();
  // What ESYS is initialised with; valid between Open and Close.
  TSS2_TCTI_CONTEXT* tcti() { return reinterpret_cast<TSS2_TCTI_CONTEXT*>(&tcti_); }

  // Whether a command failed below ESYS since Open, and that first failure.
  bool failed() const { return !failure_.ok(); }
  const Status& failure() const { return failure_; }

  // How long one command may take, from sending it to the last byte of its response,
  // before it fails with ERR_TPM_TIMEOUT (swtpm only: tctildr's TCTIs keep their own
  // limits, the kernel driver's for /dev/tpm*).
  void set_command_timeout(std::chrono::milliseconds timeout) { command_timeout_ = timeout; }
  // A flag another thread sets when the context is being stopped: a command then waits
  // at most a second more instead of until its deadline.
  void set_stop_flag(const std::atomic<bool>* stop) { stop_ = stop; }

 private:
  // Our TCTI: the common header tpm2-tss calls through, then the link it belongs to.
  struct Tcti {
    TSS2_TCTI_CONTEXT_COMMON_V2 common;
    Link* link;
  };
  static Link* From(TSS2_TCTI_CONTEXT* tcti) { return reinterpret_cast<Tcti*>(tcti)->link; }
  static TSS2_RC Transmit(TSS2_TCTI_CONTEXT* tcti, size_t size, const uint8_t* command);
  static TSS2_RC Receive(TSS2_TCTI_CONTEXT* tcti, size_t* size, uint8_t* response, int32_t timeout);
  static void Finalize(TSS2_TCTI_CONTEXT* tcti);
  static TSS2_RC Cancel(TSS2_TCTI_CONTEXT* tcti);
  static TSS2_RC GetPollHandles(TSS2_TCTI_CONTEXT* tcti, TSS2_TCTI_POLL_HANDLE* handles,
                                size_t* count);
  static TSS2_RC SetLocality(TSS2_TCTI_CONTEXT* tcti, uint8_t locality);
  static TSS2_RC MakeSticky(TSS2_TCTI_CONTEXT* tcti, TPM2_HANDLE* handle, uint8_t sticky);

  // Records the first failure; returns the TCTI rc to hand ESYS.
  TSS2_RC Fail(TSS2_RC rc, const std::string& what, ErrorCode code = ErrorCode::kTpmConnection);
  // Fail for a wait that did not end in kReady: a deadline passed is ERR_TPM_TIMEOUT.
  TSS2_RC FailWaiting(int waited, const std::string& doing);

  // swtpm: a connection per command, as swtpm expects.
  Status ParseSwtpm(const std::string& options);
  TSS2_RC SocketTransmit(size_t size, const uint8_t* command);
  TSS2_RC SocketReceive(size_t* size, uint8_t* response);
  // Reads the whole response (header, then the size it names) before the deadline.
  TSS2_RC ReadResponse();
  void CloseSocket();
  // Connects socket_ to one address before the deadline: 0, or the errno (ETIMEDOUT;
  // ECANCELED when stopped) with the socket closed.
  int Connect(int family, int protocol, const sockaddr* address, socklen_t length);
  // Waits until the socket is ready for `events`: kReady, or why not.
  enum { kReady = 1, kTimedOut = 0, kFailed = -1, kStopped = -2 };
  int WaitFor(short events);
  std::string WaitProblem(int waited, const std::string& doing) const;

  Tcti tcti_;
  // tctildr's TCTI when the link does not do the I/O itself.
  TSS2_TCTI_CONTEXT* inner_ = nullptr;
  bool own_socket_ = false;
  std::string host_ = "localhost";
  std::string port_ = "2321";
  std::string path_;
  std::string where_;  // for messages: host:port or the socket's path
  int socket_ = -1;
  bool awaiting_response_ = false;
  std::vector<uint8_t> response_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::milliseconds command_timeout_{std::chrono::minutes(2)};
  const std::atomic<bool>* stop_ = nullptr;
  // The deadline of the command under way was brought forward because of stop_.
  bool cut_short_ = false;
  Status failure_;
};

}  // namespace tss
