#include "link.h"

#include <tss2/tss2_tctildr.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace tss {

namespace {

// A TPM response is a 10-byte header (tag, size, response code) and what the size says.
constexpr size_t kHeaderSize = 10;
// tpm2-tss's largest response (SAPI's buffer): a size beyond it is a broken stream.
constexpr uint32_t kMaxResponseSize = TPM2_MAX_COMMAND_SIZE;
// How often a wait looks up from the socket to see whether the context is closing, and
// how much longer a command may take once it is.
constexpr int64_t kStopCheckMs = 100;
constexpr auto kStopGrace = std::chrono::seconds(1);

uint32_t ReadUint32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

Link::Link() {
  memset(&tcti_, 0, sizeof tcti_);
  TSS2_TCTI_CONTEXT_COMMON_V1& v1 = tcti_.common.v1;
  v1.magic = 0x7470'6d2d'6a77'7401ULL;  // "tpm-jwt" and a 1: ours, not tpm2-tss's
  v1.version = 2;
  v1.transmit = Transmit;
  v1.receive = Receive;
  v1.finalize = Finalize;
  v1.cancel = Cancel;
  v1.getPollHandles = GetPollHandles;
  v1.setLocality = SetLocality;
  tcti_.common.makeSticky = MakeSticky;
  tcti_.link = this;
}

Status Link::Open(const std::string& conf) {
  Close();
  failure_ = Status();
  // tctildr's names for the swtpm TCTI: short, and its library's.
  const std::string name = conf.substr(0, conf.find(':'));
  if (name == "swtpm" || name == "tcti-swtpm" || name == "libtss2-tcti-swtpm.so" ||
      name == "libtss2-tcti-swtpm.so.0") {
    own_socket_ = true;
    return ParseSwtpm(conf.size() > name.size() ? conf.substr(name.size() + 1) : "");
  }
  TSS2_RC rc = Tss2_TctiLdr_Initialize(conf.empty() ? nullptr : conf.c_str(), &inner_);
  if (rc != TSS2_RC_SUCCESS) {
    inner_ = nullptr;
    return Status::Tss(rc, "Tss2_TctiLdr_Initialize");
  }
  // The device TCTIs open their descriptor once, here; mssim its socket. Made
  // close-on-exec now, a child spawned later does not carry the TPM with it.
  size_t count = 0;
  if (Tss2_Tcti_GetPollHandles(inner_, nullptr, &count) == TSS2_RC_SUCCESS && count > 0) {
    std::vector<TSS2_TCTI_POLL_HANDLE> handles(count);
    if (Tss2_Tcti_GetPollHandles(inner_, handles.data(), &count) == TSS2_RC_SUCCESS) {
      for (size_t i = 0; i < count; ++i) fcntl(handles[i].fd, F_SETFD, FD_CLOEXEC);
    }
  }
  return Status();
}

void Link::Close() {
  CloseSocket();
  awaiting_response_ = false;
  response_.clear();
  own_socket_ = false;
  if (inner_ != nullptr) Tss2_TctiLdr_Finalize(&inner_);
  inner_ = nullptr;
}

Status Link::ParseSwtpm(const std::string& options) {
  // tpm2-tss's swtpm TCTI options: host (default localhost), port (default 2321) and
  // path (a Unix socket instead), comma-separated.
  host_ = "localhost";
  port_ = "2321";
  path_.clear();
  size_t start = 0;
  while (start < options.size()) {
    size_t end = options.find(',', start);
    if (end == std::string::npos) end = options.size();
    const std::string option = options.substr(start, end - start);
    start = end + 1;
    const size_t eq = option.find('=');
    const std::string key = option.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : option.substr(eq + 1);
    if (key == "host" && !value.empty()) {
      host_ = value;
      path_.clear();
    } else if (key == "port" && !value.empty() &&
               value.find_first_not_of("0123456789") == std::string::npos && value.size() <= 5 &&
               std::stoul(value) > 0 && std::stoul(value) <= 65535) {
      port_ = value;
    } else if (key == "path" && !value.empty() && value.size() < sizeof(sockaddr_un::sun_path)) {
      path_ = value;
    } else {
      return Status::Fail(ErrorCode::kInvalidArgument,
                          "the swtpm TCTI takes host=, port= (1-65535) and path= (shorter than " +
                              std::to_string(sizeof(sockaddr_un::sun_path)) + " bytes), not '" +
                              option + "'");
    }
  }
  where_ = path_.empty() ? host_ + ":" + port_ : path_;
  return Status();
}

TSS2_RC Link::Fail(TSS2_RC rc, const std::string& what, ErrorCode code) {
  CloseSocket();
  awaiting_response_ = false;
  response_.clear();
  if (failure_.ok()) {
    failure_ = Status::Tss(rc, "the TPM link");
    failure_.Detail(what).WithCode(code);
  }
  return rc;
}

TSS2_RC Link::FailWaiting(int waited, const std::string& doing) {
  return Fail(TSS2_TCTI_RC_IO_ERROR, WaitProblem(waited, doing),
              waited == kTimedOut ? ErrorCode::kTpmTimeout : ErrorCode::kTpmConnection);
}

void Link::CloseSocket() {
  if (socket_ >= 0) close(socket_);
  socket_ = -1;
}

TSS2_RC Link::Transmit(TSS2_TCTI_CONTEXT* tcti, size_t size, const uint8_t* command) {
  Link* link = From(tcti);
  // A failed link sends nothing more, whoever asks (SAPI, which bypasses ESYS's state,
  // included): the handles it would name may be another process's by now.
  if (link->failed()) return link->failure_.rc();
  if (link->own_socket_) return link->SocketTransmit(size, command);
  if (link->inner_ == nullptr) return TSS2_TCTI_RC_BAD_CONTEXT;
  const TSS2_RC rc = Tss2_Tcti_Transmit(link->inner_, size, command);
  if (rc != TSS2_RC_SUCCESS) return link->Fail(rc, "sending a command");
  return rc;
}

TSS2_RC Link::Receive(TSS2_TCTI_CONTEXT* tcti, size_t* size, uint8_t* response, int32_t timeout) {
  Link* link = From(tcti);
  if (link->failed()) return link->failure_.rc();
  if (link->own_socket_) return link->SocketReceive(size, response);
  if (link->inner_ == nullptr) return TSS2_TCTI_RC_BAD_CONTEXT;
  const TSS2_RC rc = Tss2_Tcti_Receive(link->inner_, size, response, timeout);
  // "Not yet" and "give me a bigger buffer" leave the exchange where it was.
  const TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;
  if (rc != TSS2_RC_SUCCESS && base != TSS2_BASE_RC_TRY_AGAIN &&
      base != TSS2_BASE_RC_INSUFFICIENT_BUFFER) {
    return link->Fail(rc, "receiving a response");
  }
  return rc;
}

void Link::Finalize(TSS2_TCTI_CONTEXT*) {
  // The Link owns its resources; Esys_Finalize calls this only when ESYS was given no
  // TCTI of its own, which never happens here.
}

TSS2_RC Link::Cancel(TSS2_TCTI_CONTEXT* tcti) {
  Link* link = From(tcti);
  if (link->inner_ != nullptr) return Tss2_Tcti_Cancel(link->inner_);
  return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

TSS2_RC Link::GetPollHandles(TSS2_TCTI_CONTEXT* tcti, TSS2_TCTI_POLL_HANDLE* handles,
                             size_t* count) {
  Link* link = From(tcti);
  if (link->inner_ != nullptr) return Tss2_Tcti_GetPollHandles(link->inner_, handles, count);
  return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

TSS2_RC Link::SetLocality(TSS2_TCTI_CONTEXT* tcti, uint8_t locality) {
  Link* link = From(tcti);
  if (link->inner_ != nullptr) return Tss2_Tcti_SetLocality(link->inner_, locality);
  return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

TSS2_RC Link::MakeSticky(TSS2_TCTI_CONTEXT* tcti, TPM2_HANDLE* handle, uint8_t sticky) {
  Link* link = From(tcti);
  if (link->inner_ != nullptr) return Tss2_Tcti_MakeSticky(link->inner_, handle, sticky);
  return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

int Link::WaitFor(short events) {
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    // A context being stopped still finishes a command the TPM answers at once (closing
    // flushes what it holds), but no longer waits out one that stalls.
    const bool stopping = stop_ != nullptr && stop_->load() && deadline_ > now + kStopGrace;
    if (stopping) deadline_ = now + kStopGrace;
    cut_short_ = cut_short_ || stopping;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now);
    if (left.count() <= 0) return cut_short_ ? kStopped : kTimedOut;
    pollfd p = {socket_, events, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), kStopCheckMs)));
    if (n > 0) return kReady;
    if (n < 0 && errno != EINTR) return kFailed;
  }
}

std::string Link::WaitProblem(int waited, const std::string& doing) const {
  if (waited == kStopped) return doing + ": the context closed while the TPM had not answered";
  if (waited == kTimedOut) {
    return doing + ": the TPM did not answer within " + std::to_string(command_timeout_.count()) +
           " ms";
  }
  return doing + ": " + strerror(errno);
}

int Link::Connect(int family, int protocol, const sockaddr* address, socklen_t length) {
  // Non-blocking, so that connecting and every read and write wait at most until the
  // deadline; close-on-exec, so that no child process takes the connection along.
  socket_ = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (socket_ < 0) return errno;
  int error = 0;
  if (connect(socket_, address, length) != 0) {
    error = errno;
    if (error == EINPROGRESS) {
      // Connected once writable, unless SO_ERROR says otherwise.
      const int waited = WaitFor(POLLOUT);
      socklen_t size = sizeof error;
      if (waited == kTimedOut) {
        error = ETIMEDOUT;
      } else if (waited == kStopped) {
        error = ECANCELED;
      } else if (waited == kFailed ||
                 getsockopt(socket_, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
        error = errno;
      }
    }
  }
  if (error != 0) CloseSocket();
  return error;
}

TSS2_RC Link::SocketTransmit(size_t size, const uint8_t* command) {
  if (awaiting_response_) {
    return Fail(TSS2_TCTI_RC_BAD_SEQUENCE, "a command was sent before the last one's response");
  }
  deadline_ = std::chrono::steady_clock::now() + command_timeout_;
  cut_short_ = false;
  CloseSocket();
  const std::string connecting = "connecting to swtpm at " + where_;
  int error = ECONNREFUSED;
  if (!path_.empty()) {
    sockaddr_un address = {};
    address.sun_family = AF_UNIX;
    memcpy(address.sun_path, path_.c_str(), path_.size());  // ParseSwtpm checked it fits
    error = Connect(AF_UNIX, 0, reinterpret_cast<sockaddr*>(&address), sizeof address);
  } else {
    addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    addrinfo* found = nullptr;
    const int resolved = getaddrinfo(host_.c_str(), port_.c_str(), &hints, &found);
    if (resolved != 0) {
      return Fail(TSS2_TCTI_RC_IO_ERROR,
                  "cannot resolve swtpm host " + host_ + ": " + gai_strerror(resolved));
    }
    // Every address in turn, as tpm2-tss does: "localhost" is ::1 first on most
    // systems, and swtpm may listen on 127.0.0.1 only.
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      error = Connect(a->ai_family, a->ai_protocol, a->ai_addr, a->ai_addrlen);
      if (error == 0 || error == ETIMEDOUT || error == ECANCELED) break;
    }
    freeaddrinfo(found);
    if (error == 0) {
      // One small command, one small response: no reason to wait for more to send.
      const int one = 1;
      setsockopt(socket_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }
  if (error == ETIMEDOUT) return FailWaiting(kTimedOut, connecting);
  if (error == ECANCELED) return FailWaiting(kStopped, connecting);
  if (error != 0) {
    return Fail(TSS2_TCTI_RC_IO_ERROR,
                "cannot connect to swtpm at " + where_ + ": " + strerror(error));
  }
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = send(socket_, command + sent, size - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int waited = WaitFor(POLLOUT);
      if (waited != kReady) return FailWaiting(waited, "sending");
    } else {
      return Fail(
          TSS2_TCTI_RC_IO_ERROR,
          std::string("swtpm closed the connection while a command was sent: ") + strerror(errno));
    }
  }
  awaiting_response_ = true;
  response_.clear();
  return TSS2_RC_SUCCESS;
}

TSS2_RC Link::ReadResponse() {
  size_t want = kHeaderSize;
  response_.resize(want);
  size_t have = 0;
  while (have < want) {
    const ssize_t n = recv(socket_, response_.data() + have, want - have, 0);
    if (n > 0) {
      have += static_cast<size_t>(n);
      if (have == kHeaderSize && want == kHeaderSize) {
        const uint32_t size = ReadUint32(response_.data() + 2);
        if (size < kHeaderSize || size > kMaxResponseSize) {
          return Fail(TSS2_TCTI_RC_MALFORMED_RESPONSE,
                      "swtpm sent a response of " + std::to_string(size) + " bytes");
        }
        want = size;
        response_.resize(want);
      }
    } else if (n == 0) {
      return Fail(TSS2_TCTI_RC_IO_ERROR,
                  have == 0 ? "swtpm closed the connection before it responded"
                            : "swtpm closed the connection in the middle of a response");
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      const int waited = WaitFor(POLLIN);
      if (waited != kReady) {
        return FailWaiting(waited, "waiting for the response");
      }
    } else {
      return Fail(TSS2_TCTI_RC_IO_ERROR, std::string("reading from swtpm: ") + strerror(errno));
    }
  }
  // swtpm takes one client at a time: the connection goes back as soon as the
  // response is in.
  CloseSocket();
  return TSS2_RC_SUCCESS;
}

TSS2_RC Link::SocketReceive(size_t* size, uint8_t* response) {
  if (size == nullptr) return TSS2_TCTI_RC_BAD_REFERENCE;
  if (!awaiting_response_) return TSS2_TCTI_RC_BAD_SEQUENCE;
  if (response_.empty()) {
    const TSS2_RC rc = ReadResponse();
    if (rc != TSS2_RC_SUCCESS) return rc;
  }
  // A caller may ask for the size first (no buffer), or offer too small a buffer; the
  // response waits for the next call either way.
  if (response == nullptr || *size < response_.size()) {
    *size = response_.size();
    return response == nullptr ? TSS2_RC_SUCCESS : TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
  }
  memcpy(response, response_.data(), response_.size());
  *size = response_.size();
  response_.clear();
  awaiting_response_ = false;
  return TSS2_RC_SUCCESS;
}

}  // namespace tss
