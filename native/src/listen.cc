// TCP listener and acceptor.
// baton_tcp_listen: socket/bind/listen; the caller owns the returned listening fd.
// Acceptor: uv_poll_t on a caller-owned listening fd (close the acceptor before the fd). Each accepted
// fd is owned by the onConn callback from the moment it is called.
#include <errno.h>
#include <netinet/in.h>  // INET6_ADDRSTRLEN, IPPROTO_TCP
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "baton.h"

static const napi_type_tag baton__acceptor_tag = {0x6261746f6e616363ULL, 0x6570746f723a7631ULL};
static const int baton__accept_batch = 64;       // accepts per wakeup, then let the loop breathe
static const uint64_t baton__emfile_pause_ms = 100;  // back-off when out of fds (level-triggered poll)

static Napi::Value baton__listen_fail(Napi::Env env, int fd, const char* syscall) {
  int err = errno;
  if (fd >= 0) baton__close(fd);
  return baton__throw_errno(env, syscall, err);
}

// baton_tcp_listen(host, port, backlog, deferAcceptS) -> { fd, port }. host is a literal IPv4 or IPv6
// address (no brackets). Throws Error{errno, code, syscall}; no fd is left open on failure.
static Napi::Value baton_tcp_listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int backlog = info[2].As<Napi::Number>().Int32Value();
  int defer_s = info[3].As<Napi::Number>().Int32Value();
  if (env.IsExceptionPending()) return env.Undefined();

  struct sockaddr_storage ss;
  int len = baton__sockaddr_inet(host.c_str(), static_cast<uint16_t>(port), &ss);
  if (len < 0) return baton__throw_errno(env, "inet_pton", -len);

  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return baton__listen_fail(env, -1, "socket");
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    return baton__listen_fail(env, fd, "setsockopt");
  }
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), static_cast<socklen_t>(len)) != 0) {
    return baton__listen_fail(env, fd, "bind");
  }
  if (listen(fd, backlog) != 0) return baton__listen_fail(env, fd, "listen");
  if (defer_s > 0 && setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s)) != 0) {
    return baton__listen_fail(env, fd, "setsockopt");
  }
  socklen_t bound_len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &bound_len) != 0) {
    return baton__listen_fail(env, fd, "getsockname");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("port", Napi::Number::New(env, baton__sockaddr_port(&ss)));
  return out;
}

static void baton__acceptor_on_readable(uv_poll_t* poll, int status, int events);

static void baton__acceptor_on_timer(uv_timer_t* timer) {
  baton__handle* h = static_cast<baton__handle*>(timer->data);
  if (h->started && !h->closing) uv_poll_start(&h->poll, UV_READABLE, baton__acceptor_on_readable);
}

// Out of fds (or an unexpected error): a level-triggered poll would spin, so pause it briefly.
static void baton__acceptor_pause(baton__handle* h) {
  uv_poll_stop(&h->poll);
  uv_timer_start(&h->timer, baton__acceptor_on_timer, baton__emfile_pause_ms, 0);
}

// Accepts one connection and hands it to JS. Returns false when this wakeup should end.
static bool baton__acceptor_accept_one(baton__handle* h) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int fd = accept4(h->fd, reinterpret_cast<struct sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EINTR || errno == ECONNABORTED) return true;
    if (errno != EAGAIN) baton__acceptor_pause(h);  // EMFILE, ENFILE, ENOBUFS, ENOMEM, ...
    return false;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ssize_t n;
  do n = recv(fd, h->peek_data, h->peek_len, MSG_PEEK | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  int peeked = n >= 0 ? static_cast<int>(n) : -errno;
  char addr[INET6_ADDRSTRLEN];
  int port;
  baton__sockaddr_format(&ss, addr, sizeof(addr), &port);

  Napi::Env env(h->env);
  Napi::HandleScope scope(env);
  napi_value argv[4] = {Napi::Number::New(env, fd), Napi::Number::New(env, peeked),
                        Napi::String::New(env, addr), Napi::Number::New(env, port)};
  baton__handle_call(h, 4, argv);  // the callback owns fd now, even if it threw
  return h->started && !h->closing;
}

static void baton__acceptor_on_readable(uv_poll_t* poll, int status, int) {
  baton__handle* h = static_cast<baton__handle*>(poll->data);
  if (h->closing || h->env_gone || !h->started) return;
  if (status < 0) {  // libuv stopped the poll; try again later rather than dying silently
    baton__acceptor_pause(h);
    return;
  }
  for (int i = 0; i < baton__accept_batch; i++) {
    if (!baton__acceptor_accept_one(h)) break;
  }
}

// baton_acceptor_create(listenFd, peekBuf, onConn) -> handle. Not started. Keeps peekBuf alive and
// peeks into its memory; the caller keeps owning listenFd.
static Napi::Value baton_acceptor_create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> buf = info[1].As<Napi::Buffer<char>>();
  baton__handle* h = static_cast<baton__handle*>(calloc(1, sizeof(baton__handle)));
  if (h == nullptr) return baton__throw_errno(env, "calloc", ENOMEM);
  h->fd = fd;
  h->peek_data = buf.Data();
  h->peek_len = buf.Length();
  uv_loop_t* loop = baton__env_get(env)->loop;
  int rc = uv_poll_init(loop, &h->poll, fd);
  if (rc != 0) {
    free(h);
    return baton__throw_errno(env, "uv_poll_init", -rc);
  }
  h->poll.data = h;
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  h->has_timer = true;
  Napi::Value obj = baton__handle_wrap(env, h, &baton__acceptor_tag, info[2], "baton:acceptor");
  if (obj.IsEmpty()) return obj;
  napi_create_reference(env, buf, 1, &h->extra);
  return obj;
}

static Napi::Value baton_acceptor_start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__handle* h = baton__handle_unwrap(env, info[0], &baton__acceptor_tag);
  if (h == nullptr || h->closing || h->started) return env.Undefined();
  int rc = uv_poll_start(&h->poll, UV_READABLE, baton__acceptor_on_readable);
  if (rc != 0) return baton__throw_errno(env, "uv_poll_start", -rc);
  h->started = true;
  baton__handle_set_active(h, true);
  return env.Undefined();
}

static Napi::Value baton_acceptor_stop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__handle* h = baton__handle_unwrap(env, info[0], &baton__acceptor_tag);
  if (h == nullptr || h->closing) return env.Undefined();
  uv_poll_stop(&h->poll);
  uv_timer_stop(&h->timer);
  h->started = false;
  baton__handle_set_active(h, false);
  return env.Undefined();
}

// Synchronous epoll DEL; the caller may close the listening fd right after. Idempotent.
static Napi::Value baton_acceptor_close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__handle* h = baton__handle_unwrap(env, info[0], &baton__acceptor_tag);
  if (h != nullptr) baton__handle_close(h);
  return env.Undefined();
}

void baton_listen_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_tcp_listen", Napi::Function::New(env, baton_tcp_listen, "baton_tcp_listen"));
  exports.Set("baton_acceptor_create", Napi::Function::New(env, baton_acceptor_create, "baton_acceptor_create"));
  exports.Set("baton_acceptor_start", Napi::Function::New(env, baton_acceptor_start, "baton_acceptor_start"));
  exports.Set("baton_acceptor_stop", Napi::Function::New(env, baton_acceptor_stop, "baton_acceptor_stop"));
  exports.Set("baton_acceptor_close", Napi::Function::New(env, baton_acceptor_close, "baton_acceptor_close"));
}
