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

#include <cstring>

namespace tss {

namespace {

// A TPM response is a 10-byte header (tag, size, response code) and what the size says.
constexpr size_t kHeaderSize = 10;
// Far above any TPM's largest response (TPM2_MAX_COMMAND_SIZE is 4096 on tpm2-tss): a
// size beyond it is a broken stream, not a response.
constexpr uint32_t kMaxResponseSize = 1 << 16;

uint32_t ReadUint32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

int MillisecondsUntil(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until `fd` is ready for `events` or the deadline passes: 1 ready, 0 timed out,
// -1 failed.
int WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    pollfd p = {fd, events, 0};
    const int n = poll(&p, 1, MillisecondsUntil(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n;
    return 1;
  }
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
  const std::string swtpm = "swtpm";
  if (conf == swtpm || conf.rfind(swtpm + ":", 0) == 0) {
    own_socket_ = true;
    return ParseSwtpm(conf.size() > swtpm.size() ? conf.substr(swtpm.size() + 1) : "");
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
    } else if (key == "path" && !value.empty()) {
      path_ = value;
    } else {
      return Status::Fail(
          ErrorCode::kInvalidArgument,
          "the swtpm TCTI takes host=, port= (1-65535) and path=, not '" + option + "'");
    }
  }
  where_ = path_.empty() ? host_ + ":" + port_ : path_;
  return Status();
}

TSS2_RC Link::Fail(TSS2_RC rc, const std::string& what) {
  CloseSocket();
  awaiting_response_ = false;
  response_.clear();
  if (failure_.ok()) {
    failure_ = Status::Tss(rc, "the TPM link");
    failure_.Detail(what);
  }
  return rc;
}

void Link::CloseSocket() {
  if (socket_ >= 0) close(socket_);
  socket_ = -1;
}

TSS2_RC Link::Transmit(TSS2_TCTI_CONTEXT* tcti, size_t size, const uint8_t* command) {
  Link* link = From(tcti);
  if (link->own_socket_) return link->SocketTransmit(size, command);
  if (link->inner_ == nullptr) return TSS2_TCTI_RC_BAD_CONTEXT;
  const TSS2_RC rc = Tss2_Tcti_Transmit(link->inner_, size, command);
  if (rc != TSS2_RC_SUCCESS) return link->Fail(rc, "sending a command");
  return rc;
}

TSS2_RC Link::Receive(TSS2_TCTI_CONTEXT* tcti, size_t* size, uint8_t* response, int32_t timeout) {
  Link* link = From(tcti);
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

TSS2_RC Link::SocketTransmit(size_t size, const uint8_t* command) {
  if (awaiting_response_) return TSS2_TCTI_RC_BAD_SEQUENCE;
  deadline_ = std::chrono::steady_clock::now() + command_timeout_;
  CloseSocket();
  // Non-blocking, so that connecting and every read and write wait at most until the
  // deadline; close-on-exec, so that no child process takes the connection along.
  if (!path_.empty()) {
    sockaddr_un address = {};
    address.sun_family = AF_UNIX;
    if (path_.size() >= sizeof address.sun_path) {
      return Fail(TSS2_TCTI_RC_BAD_VALUE, "the socket path is too long: " + path_);
    }
    memcpy(address.sun_path, path_.c_str(), path_.size());
    socket_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (socket_ < 0 ||
        (connect(socket_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 &&
         errno != EINPROGRESS)) {
      return Fail(TSS2_TCTI_RC_IO_ERROR,
                  "cannot connect to swtpm at " + where_ + ": " + strerror(errno));
    }
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
    int error = ECONNREFUSED;
    for (addrinfo* a = found; a != nullptr && socket_ < 0; a = a->ai_next) {
      socket_ = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (socket_ < 0) {
        error = errno;
        continue;
      }
      if (connect(socket_, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) break;
      error = errno;
      CloseSocket();
    }
    freeaddrinfo(found);
    if (socket_ < 0) {
      return Fail(TSS2_TCTI_RC_IO_ERROR,
                  "cannot connect to swtpm at " + where_ + ": " + strerror(error));
    }
    // One small command, one small response: no reason to wait for more to send.
    const int one = 1;
    setsockopt(socket_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  // Connected once writable, unless SO_ERROR says otherwise.
  const int ready = WaitFor(socket_, POLLOUT, deadline_);
  int error = 0;
  socklen_t length = sizeof error;
  if (ready == 0)
    return Fail(TSS2_TCTI_RC_IO_ERROR, "connecting to swtpm at " + where_ + " timed out");
  if (ready < 0 || getsockopt(socket_, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
    return Fail(TSS2_TCTI_RC_IO_ERROR, "cannot connect to swtpm at " + where_ + ": " +
                                           strerror(error != 0 ? error : errno));
  }
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = send(socket_, command + sent, size - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int writable = WaitFor(socket_, POLLOUT, deadline_);
      if (writable == 0) return Fail(TSS2_TCTI_RC_IO_ERROR, "sending to swtpm timed out");
      if (writable < 0) return Fail(TSS2_TCTI_RC_IO_ERROR, strerror(errno));
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
      const int readable = WaitFor(socket_, POLLIN, deadline_);
      if (readable == 0) {
        return Fail(TSS2_TCTI_RC_IO_ERROR, "the TPM did not respond within " +
                                               std::to_string(command_timeout_.count()) + " ms");
      }
      if (readable < 0) return Fail(TSS2_TCTI_RC_IO_ERROR, strerror(errno));
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
