// Shared declarations of the addon (the one target "baton"). Thin layer: syscalls, fd plumbing, uv_poll,
// and the splice relay thread (splice_relay.h). Conventions (src/native/types.ts is the contract):
// - fds are plain ints; every fd created here is O_NONBLOCK | O_CLOEXEC.
// - Hot-path calls return -errno; setup calls throw an Error with .errno (positive), .code, .syscall.
// - Arguments are validated in src/native/binding.ts; C trusts their types and ranges.
// - No mutable globals: per-env state is baton__env (napi instance data).
#ifndef BATON_H
#define BATON_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <string>

#include <napi.h>
#include <uv.h>

// Per-env state. Owns the list of open uv handles so that env teardown can close them.
// Env teardown uses an async cleanup hook: node keeps the loop running, the napi env alive and this
// shared object loaded until every close callback has run (a plain cleanup hook let the worker unload
// the addon while close callbacks pointing into it were still queued).
struct baton__handle;
struct baton__env {
  uv_loop_t* loop;
  baton__handle* handles;  // open (not yet closing) handles, doubly linked
  int closing;             // uv handles whose close callback is still queued
  napi_async_cleanup_hook_handle cleanup;  // set while the env is being torn down
};

// A JS handle object (type-tagged, napi_wrap'ed) around one uv_poll_t plus an optional uv_timer_t.
// Lifetime: the memory is freed once BOTH the uv close callbacks have run AND the JS object was
// finalized. The JS object is held strongly while the poll is active, so an
// active poller/acceptor keeps working even if JS drops every reference to it.
struct baton__handle {
  uv_poll_t poll;
  uv_timer_t timer;        // acceptor only (EMFILE back-off); has_timer says whether it was initialised
  bool has_timer;
  baton__env* benv;
  baton__handle* prev;
  baton__handle* next;
  napi_env env;
  napi_ref self;           // the JS handle object: weak, strong while active
  napi_ref cb;             // the JS callback: strong
  napi_ref extra;          // acceptor: the peek Buffer (strong)
  napi_async_context actx;
  int fd;
  int pending_closes;      // uv handles whose close callback has not run yet
  bool active;             // self is strong
  bool closing;            // uv_close was called
  bool finalized;          // the JS object is gone
  bool env_gone;           // env teardown: never touch napi again
  // acceptor state
  char* peek_data;
  size_t peek_len;
  bool started;
};

// addon.cc
baton__env* baton__env_get(napi_env env);
// Throws Error{errno, code, syscall} built from a positive errno. Returns undefined for convenience.
Napi::Value baton__throw_errno(Napi::Env env, const char* syscall, int err);
const char* baton__errno_name(int err);

// sock.cc
// close(2), never retried: 0 or -errno, with EINTR counted as success. On Linux close releases the fd
// before it can return EINTR, so the fd is gone either way, and a retry could close a number that
// another thread (the relay thread, libuv's pool) was just given. Safe to call from any thread.
int baton__close(int fd);

// sockaddr.cc: every sockaddr built or read here. Plain C, safe on any thread.
// Numeric IPv4 or IPv6 host (no brackets) + port -> *ss; returns the address length or -EINVAL.
int baton__sockaddr_inet(const char* host, uint16_t port, struct sockaddr_storage* ss);
// A path -> *sun; '@name' is the abstract namespace. Returns the address length or -ENAMETOOLONG.
int baton__sockaddr_unix(const std::string& path, struct sockaddr_un* sun);
// The port of an AF_INET/AF_INET6 address (0 for any other family).
int baton__sockaddr_port(const struct sockaddr_storage* ss);
// A peer address as text into buf (an IPv4-mapped IPv6 address reads as IPv4) and its port.
void baton__sockaddr_format(const struct sockaddr_storage* ss, char* buf, socklen_t size, int* port);

// handle.cc: the common lifecycle of poller and acceptor handles.
// Creates the JS object, wraps h, tags it, links it into the env list. Call it after uv_poll_init
// succeeded. On failure (empty value, exception pending) h's uv handles are closed and h is freed.
Napi::Value baton__handle_wrap(Napi::Env env, baton__handle* h, const napi_type_tag* tag,
                               napi_value cb, const char* resource_name);
// Checks the type tag and returns the handle, or nullptr with a TypeError pending.
baton__handle* baton__handle_unwrap(Napi::Env env, napi_value obj, const napi_type_tag* tag);
void baton__handle_set_active(baton__handle* h, bool active);
// uv_close every uv handle (synchronous epoll DEL); memory is freed later. Idempotent.
void baton__handle_close(baton__handle* h);
// Env teardown (async cleanup hook): drop napi state of every open handle and close it; the hook is
// removed when the last close callback ran.
void baton__handles_teardown(baton__env* benv, napi_async_cleanup_hook_handle cleanup);
// Calls h->cb(argv...) with napi_make_callback (ticks and microtasks drain); a throw goes to
// napi_fatal_exception. Called from a uv callback inside a HandleScope the caller opened.
void baton__handle_call(baton__handle* h, size_t argc, const napi_value* argv);

// Registration of each file's exports.
void baton_listen_init(Napi::Env env, Napi::Object exports);
void baton_poll_init(Napi::Env env, Napi::Object exports);
void baton_fdpass_init(Napi::Env env, Napi::Object exports);
void baton_sock_init(Napi::Env env, Napi::Object exports);
void baton_sockaddr_init(Napi::Env env, Napi::Object exports);
void baton_relay_init(Napi::Env env, Napi::Object exports);

#endif
