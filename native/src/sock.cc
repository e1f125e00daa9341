// Per-socket calls on caller-owned fds: peek, SO_RCVLOWAT, close. None of them takes ownership,
// except baton_fd_close which ends it.
#include <errno.h>
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

// baton_fd_close(fd) -> 0 | -errno. The fd is gone afterwards even on EINTR (Linux). Never close an fd
// that a poller or acceptor still watches: close those first.
static Napi::Value baton_fd_close(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int rc = close(fd);
  return Napi::Number::New(info.Env(), rc == 0 || errno == EINTR ? 0 : -errno);
}

void baton_sock_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_fd_peek", Napi::Function::New(env, baton_fd_peek, "baton_fd_peek"));
  exports.Set("baton_fd_set_rcvlowat", Napi::Function::New(env, baton_fd_set_rcvlowat, "baton_fd_set_rcvlowat"));
  exports.Set("baton_fd_close", Napi::Function::New(env, baton_fd_close, "baton_fd_close"));
}
