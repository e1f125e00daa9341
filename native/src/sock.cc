// Per-socket calls on caller-owned fds: peek, write, SO_RCVLOWAT, dup, close. None of them takes ownership,
// except baton_fd_close which ends it; baton__close is the one close(2) of the whole addon.
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baton.h"

// baton_fd_peek(fd, buf) -> bytes (>0), 0 = EOF, -errno (-EAGAIN: nothing yet). The bytes stay queued
// in the kernel for whoever reads the socket next. Hot path.
static Napi::Value baton_fd_peek(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> buf = info[1].As<Napi::Buffer<char>>();
  ssize_t n;
  do n = recv(fd, buf.Data(), buf.Length(), MSG_PEEK | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), n >= 0 ? static_cast<double>(n) : -errno);
}

// baton_fd_write(fd, buf) -> bytes written (may be fewer than all), or -errno (-EAGAIN: the socket
// buffer is full). send(MSG_DONTWAIT | MSG_NOSIGNAL): never blocks, never raises SIGPIPE. For a stream
// whose owner (Node) has nothing queued ahead of it: the caller checks that, and hands any rest to it.
static Napi::Value baton_fd_write(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> buf = info[1].As<Napi::Buffer<char>>();
  ssize_t n;
  do n = send(fd, buf.Data(), buf.Length(), MSG_DONTWAIT | MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), n >= 0 ? static_cast<double>(n) : -errno);
}

// baton_fd_set_rcvlowat(fd, bytes): epoll reports the TCP socket readable only from `bytes` queued
// (or EOF/error). The option is on the socket, so it is shared with whoever receives the fd: reset it
// to 1 before a handoff. Throws on failure.
static Napi::Value baton_fd_set_rcvlowat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int bytes = info[1].As<Napi::Number>().Int32Value();
  if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes)) != 0) {
    return baton__throw_errno(env, "setsockopt", errno);
  }
  return env.Undefined();
}

// Linux (fs/open.c) frees the descriptor before the file's flush can be interrupted, so EINTR means
// "closed"; POSIX leaves the state unspecified, and retrying is what would be unsafe here.
int baton__close(int fd) {
  if (close(fd) == 0 || errno == EINTR) return 0;
  return -errno;
}

// baton_fd_dup(fd) -> a new fd (F_DUPFD_CLOEXEC) that the caller owns, or -errno.
static Napi::Value baton_fd_dup(const Napi::CallbackInfo& info) {
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  return Napi::Number::New(info.Env(), fd >= 0 ? fd : -errno);
}

// baton_fd_close(fd) -> 0 | -errno. The fd is gone afterwards, also on EINTR (baton__close). Never close
// an fd that a poller or acceptor still watches: close those first.
static Napi::Value baton_fd_close(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), baton__close(info[0].As<Napi::Number>().Int32Value()));
}

void baton_sock_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_fd_peek", Napi::Function::New(env, baton_fd_peek, "baton_fd_peek"));
  exports.Set("baton_fd_write", Napi::Function::New(env, baton_fd_write, "baton_fd_write"));
  exports.Set("baton_fd_set_rcvlowat", Napi::Function::New(env, baton_fd_set_rcvlowat, "baton_fd_set_rcvlowat"));
  exports.Set("baton_fd_dup", Napi::Function::New(env, baton_fd_dup, "baton_fd_dup"));
  exports.Set("baton_fd_close", Napi::Function::New(env, baton_fd_close, "baton_fd_close"));
}
