// AF_UNIX SOCK_SEQPACKET channels and fd passing (SCM_RIGHTS).
// Ownership: seqpacketListen/Connect/accept return fds the caller owns. sendFd never closes the fd it
// sends: on 0 the kernel holds a reference in flight and the caller closes its copy; on -errno nothing
// was sent and the caller still owns it. recvMsg hands the first received fd to the caller (out[0]) and
// closes any others, so nothing leaks.
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "baton.h"

static const int baton__recv_max_fds = 8;  // control buffer room; more sets MSG_CTRUNC

static Napi::Value baton__fdpass_fail(Napi::Env env, int fd, const char* syscall, int err) {
  if (fd >= 0) baton__close(fd);
  return baton__throw_errno(env, syscall, err);
}

// baton_seqpacket_listen(path, backlog, mode) -> fd. A file path gets fchmod(fd, mode) BEFORE bind(), so
// the socket file is created with mode & ~umask and is never, even for an instant, reachable with wider
// permissions (Linux takes the new inode's mode from the socket inode). An abstract '@name' has no file
// and no mode. Never unlinks anything: an existing path fails with EADDRINUSE, and whether it is a stale
// file that may be removed is the caller's policy. Throws Error{errno, code, syscall}.
static Napi::Value baton_seqpacket_listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int backlog = info[1].As<Napi::Number>().Int32Value();
  mode_t mode = static_cast<mode_t>(info[2].As<Napi::Number>().Uint32Value());
  if (env.IsExceptionPending()) return env.Undefined();
  struct sockaddr_un sun;
  int len = baton__sockaddr_unix(path, &sun);
  if (len < 0) return baton__throw_errno(env, "bind", -len);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return baton__fdpass_fail(env, -1, "socket", errno);
  if (path[0] != '@' && fchmod(fd, mode) != 0) return baton__fdpass_fail(env, fd, "fchmod", errno);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sun), static_cast<socklen_t>(len)) != 0) {
    return baton__fdpass_fail(env, fd, "bind", errno);
  }
  if (listen(fd, backlog) != 0) return baton__fdpass_fail(env, fd, "listen", errno);
  return Napi::Number::New(env, fd);
}

// baton_seqpacket_connect(path) -> fd. A Unix connect completes at once; EAGAIN = backlog full.
static Napi::Value baton_seqpacket_connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (env.IsExceptionPending()) return env.Undefined();
  struct sockaddr_un sun;
  int len = baton__sockaddr_unix(path, &sun);
  if (len < 0) return baton__throw_errno(env, "connect", -len);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return baton__fdpass_fail(env, -1, "socket", errno);
  int rc;
  do rc = connect(fd, reinterpret_cast<struct sockaddr*>(&sun), static_cast<socklen_t>(len));
  while (rc != 0 && errno == EINTR);
  if (rc != 0) return baton__fdpass_fail(env, fd, "connect", errno);
  return Napi::Number::New(env, fd);
}

// baton_fd_accept(listenFd) -> fd or -errno (-EAGAIN).
static Napi::Value baton_fd_accept(const Napi::CallbackInfo& info) {
  int lfd = info[0].As<Napi::Number>().Int32Value();
  int fd;
  do fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC); while (fd < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), fd >= 0 ? fd : -errno);
}

// baton_fd_peercred(fd) -> { pid, uid, gid } of the peer at connect time. Throws on failure.
static Napi::Value baton_fd_peercred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return baton__throw_errno(env, "getsockopt", errno);
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

// sendmsg of buf[0..len) with an optional SCM_RIGHTS fd (fd < 0: none). 0 or -errno. Hot path.
static int baton__send(int chan, const char* buf, size_t len, int fd) {
  struct iovec iov = {const_cast<char*>(buf), len};
  union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    memset(&ctl, 0, sizeof(ctl));
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof(ctl.buf);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t n;
  do n = sendmsg(chan, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  return n >= 0 ? 0 : -errno;
}

// baton_fd_send(chanFd, fd, meta, metaLen) -> 0 | -errno. Never closes fd (see the ownership note above).
static Napi::Value baton_fd_send(const Napi::CallbackInfo& info) {
  int chan = info[0].As<Napi::Number>().Int32Value();
  int fd = info[1].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> meta = info[2].As<Napi::Buffer<char>>();
  size_t len = info[3].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(info.Env(), baton__send(chan, meta.Data(), len, fd));
}

// baton_msg_send(chanFd, buf, len) -> 0 | -errno. A plain message, no fd.
static Napi::Value baton_msg_send(const Napi::CallbackInfo& info) {
  int chan = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> buf = info[1].As<Napi::Buffer<char>>();
  size_t len = info[2].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(info.Env(), baton__send(chan, buf.Data(), len, -1));
}

// Takes the fds out of the control messages: the first goes to *first, the others are closed.
static void baton__take_fds(struct msghdr* msg, int* first) {
  for (struct cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (*first < 0) *first = fd; else baton__close(fd);
    }
  }
}

// baton_msg_recv(chanFd, buf, out) -> length | 0 (EOF) | -errno. out[0] = received fd (caller owns
// it) or -1; out[1] = 1 if MSG_CTRUNC or MSG_TRUNC. A zero-length message reads as EOF, so any fd
// arriving with one is closed. Hot path.
static Napi::Value baton_msg_recv(const Napi::CallbackInfo& info) {
  int chan = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> buf = info[1].As<Napi::Buffer<char>>();
  Napi::Int32Array out = info[2].As<Napi::Int32Array>();
  struct iovec iov = {buf.Data(), buf.Length()};
  union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int) * baton__recv_max_fds)]; } ctl;
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = sizeof(ctl.buf);
  ssize_t n;
  do n = recvmsg(chan, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  int err = errno;
  int fd = -1;
  if (n >= 0) baton__take_fds(&msg, &fd);
  if (n == 0 && fd >= 0) {
    baton__close(fd);
    fd = -1;
  }
  out[0] = fd;
  out[1] = n >= 0 && (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0 ? 1 : 0;
  return Napi::Number::New(info.Env(), n >= 0 ? static_cast<double>(n) : -err);
}

void baton_fdpass_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_seqpacket_listen", Napi::Function::New(env, baton_seqpacket_listen, "baton_seqpacket_listen"));
  exports.Set("baton_seqpacket_connect", Napi::Function::New(env, baton_seqpacket_connect, "baton_seqpacket_connect"));
  exports.Set("baton_fd_accept", Napi::Function::New(env, baton_fd_accept, "baton_fd_accept"));
  exports.Set("baton_fd_peercred", Napi::Function::New(env, baton_fd_peercred, "baton_fd_peercred"));
  exports.Set("baton_fd_send", Napi::Function::New(env, baton_fd_send, "baton_fd_send"));
  exports.Set("baton_msg_send", Napi::Function::New(env, baton_msg_send, "baton_msg_send"));
  exports.Set("baton_msg_recv", Napi::Function::New(env, baton_msg_recv, "baton_msg_recv"));
}
