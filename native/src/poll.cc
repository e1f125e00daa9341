// Poller: one uv_poll_t on a caller-owned fd, on the main loop. The caller keeps owning the fd and must
// close the poller before closing the fd. uv_poll_init fails with EEXIST when libuv already watches
// the fd (a net.Socket that started reading): that is thrown as Error{errno: EEXIST, syscall: 'uv_poll_init'}.
// Level-triggered: the callback repeats while the condition holds (use SO_RCVLOWAT for partial heads).
#include <stdlib.h>

#include "baton.h"

static const napi_type_tag baton__poller_tag = {0x6261746f6e706f6cULL, 0x6c65723a76310001ULL};

// uv callback: cb(status, events). status < 0 (-errno): libuv already stopped the poll.
static void baton__poller_on_event(uv_poll_t* poll, int status, int events) {
  baton__handle* h = static_cast<baton__handle*>(poll->data);
  if (h->closing || h->env_gone) return;
  Napi::Env env(h->env);
  Napi::HandleScope scope(env);
  if (status < 0) baton__handle_set_active(h, false);
  napi_value argv[2] = {Napi::Number::New(env, status), Napi::Number::New(env, status < 0 ? 0 : events)};
  baton__handle_call(h, 2, argv);
}

// baton_poller_create(fd, cb) -> handle. Does not start polling.
static Napi::Value baton_poller_create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  baton__handle* h = static_cast<baton__handle*>(calloc(1, sizeof(baton__handle)));
  if (h == nullptr) return baton__throw_errno(env, "calloc", ENOMEM);
  h->fd = fd;
  int rc = uv_poll_init(baton__env_get(env)->loop, &h->poll, fd);
  if (rc != 0) {
    free(h);
    return baton__throw_errno(env, "uv_poll_init", -rc);
  }
  h->poll.data = h;
  return baton__handle_wrap(env, h, &baton__poller_tag, info[1], "baton:poller");
}

// baton_poller_start(handle, events): (re)arms the poll with a new mask; 0 or -errno.
static Napi::Value baton_poller_start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__handle* h = baton__handle_unwrap(env, info[0], &baton__poller_tag);
  if (h == nullptr) return env.Undefined();
  if (h->closing) return Napi::Number::New(env, -EBADF);
  int events = info[1].As<Napi::Number>().Int32Value();
  int rc = uv_poll_start(&h->poll, events, baton__poller_on_event);
  if (rc == 0) baton__handle_set_active(h, true);
  return Napi::Number::New(env, rc);
}

static Napi::Value baton_poller_stop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__handle* h = baton__handle_unwrap(env, info[0], &baton__poller_tag);
  if (h == nullptr || h->closing) return env.Undefined();
  uv_poll_stop(&h->poll);
  baton__handle_set_active(h, false);
  return env.Undefined();
}

// Synchronous epoll DEL; the caller may close the fd right after. Idempotent.
static Napi::Value baton_poller_close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__handle* h = baton__handle_unwrap(env, info[0], &baton__poller_tag);
  if (h != nullptr) baton__handle_close(h);
  return env.Undefined();
}

// ref/unref: whether an active poller keeps the event loop alive (uv_ref/uv_unref).
static Napi::Value baton_poller_ref(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__handle* h = baton__handle_unwrap(env, info[0], &baton__poller_tag);
  if (h == nullptr || h->closing) return env.Undefined();
  if (info[1].ToBoolean()) uv_ref(reinterpret_cast<uv_handle_t*>(&h->poll));
  else uv_unref(reinterpret_cast<uv_handle_t*>(&h->poll));
  return env.Undefined();
}

void baton_poll_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_poller_create", Napi::Function::New(env, baton_poller_create, "baton_poller_create"));
  exports.Set("baton_poller_start", Napi::Function::New(env, baton_poller_start, "baton_poller_start"));
  exports.Set("baton_poller_stop", Napi::Function::New(env, baton_poller_stop, "baton_poller_stop"));
  exports.Set("baton_poller_close", Napi::Function::New(env, baton_poller_close, "baton_poller_close"));
  exports.Set("baton_poller_ref", Napi::Function::New(env, baton_poller_ref, "baton_poller_ref"));
}
