// The common lifecycle of the uv handles behind Poller and Acceptor objects.
//
//   create:  uv_poll_init, then baton__handle_wrap (JS object: napi_wrap + type tag, weak self ref)
//   active:  self ref is strong, so the callback keeps firing even if JS forgot the object
//   close:   uv_close (synchronous epoll DEL, the fd may be closed right after); napi refs dropped
//   free:    when every uv close callback ran AND the JS object was finalized
// A JS object collected while still open closes its uv handles from the finalizer (no leak, no crash).
// Env teardown (async cleanup hook) drops all napi state first, so later callbacks never touch napi;
// node waits for the last close callback before it frees the env or unloads the addon.
#include <stdlib.h>

#include "baton.h"

// The napi_wrap finalizer always runs, at GC or at env teardown (napi finalizes every wrap then), so
// freeing waits for it even when the env is gone: the finalizer still dereferences h.
static void baton__handle_maybe_free(baton__handle* h) {
  if (h->pending_closes == 0 && h->finalized) free(h);
}

// Drops the callback, the Buffer and the async context; the (weak) self ref goes at finalize.
// Never called while a callback of h may be running (only from the close callback or env teardown).
static void baton__handle_drop_napi(baton__handle* h) {
  if (h->env_gone) return;
  if (h->cb != nullptr) napi_delete_reference(h->env, h->cb);
  if (h->extra != nullptr) napi_delete_reference(h->env, h->extra);
  if (h->actx != nullptr) napi_async_destroy(h->env, h->actx);
  h->cb = h->extra = nullptr;
  h->actx = nullptr;
}

static void baton__handle_on_close(uv_handle_t* uvh) {
  baton__handle* h = static_cast<baton__handle*>(uvh->data);
  baton__env* benv = h->benv;
  if (--h->pending_closes == 0) baton__handle_drop_napi(h);
  baton__handle_maybe_free(h);
  if (--benv->closing == 0 && benv->cleanup != nullptr) {
    napi_async_cleanup_hook_handle cleanup = benv->cleanup;
    benv->cleanup = nullptr;
    napi_remove_async_cleanup_hook(cleanup);  // may free benv: last statement
  }
}

void baton__handle_close(baton__handle* h) {
  if (h->closing) return;
  h->closing = true;
  h->started = false;
  if (h->prev != nullptr) h->prev->next = h->next; else h->benv->handles = h->next;
  if (h->next != nullptr) h->next->prev = h->prev;
  h->prev = h->next = nullptr;
  h->poll.data = h;
  h->pending_closes++;
  h->benv->closing++;
  uv_close(reinterpret_cast<uv_handle_t*>(&h->poll), baton__handle_on_close);
  if (h->has_timer) {
    h->timer.data = h;
    h->pending_closes++;
    h->benv->closing++;
    uv_close(reinterpret_cast<uv_handle_t*>(&h->timer), baton__handle_on_close);
  }
  baton__handle_set_active(h, false);
}

void baton__handles_teardown(baton__env* benv, napi_async_cleanup_hook_handle cleanup) {
  while (benv->handles != nullptr) {
    baton__handle* h = benv->handles;
    baton__handle_close(h);  // unlinks h
    baton__handle_drop_napi(h);
    if (h->self != nullptr) napi_delete_reference(h->env, h->self);
    h->self = nullptr;
    h->env_gone = true;
  }
  if (benv->closing == 0) napi_remove_async_cleanup_hook(cleanup);
  else benv->cleanup = cleanup;
}

// napi_wrap finalizer: the JS object is unreachable (never while active) or the env is going away.
static void baton__handle_finalize(napi_env, void* data, void*) {
  baton__handle* h = static_cast<baton__handle*>(data);
  h->finalized = true;
  baton__handle_close(h);  // no-op if already closing
  if (!h->env_gone && h->self != nullptr) napi_delete_reference(h->env, h->self);
  h->self = nullptr;
  baton__handle_maybe_free(h);
}

void baton__handle_set_active(baton__handle* h, bool active) {
  if (h->active == active || h->env_gone || h->self == nullptr) return;
  uint32_t count = 0;
  if (active) napi_reference_ref(h->env, h->self, &count);
  else napi_reference_unref(h->env, h->self, &count);
  h->active = active;
}

Napi::Value baton__handle_wrap(Napi::Env env, baton__handle* h, const napi_type_tag* tag,
                               napi_value cb, const char* resource_name) {
  baton__env* benv = baton__env_get(env);
  h->env = env;
  h->benv = benv;
  h->next = benv->handles;
  if (h->next != nullptr) h->next->prev = h;
  benv->handles = h;

  Napi::Object obj = Napi::Object::New(env);
  napi_status st = obj.IsEmpty() ? napi_generic_failure : napi_type_tag_object(env, obj, tag);
  if (st == napi_ok) st = napi_create_reference(env, cb, 1, &h->cb);
  if (st == napi_ok) {
    st = napi_async_init(env, obj, Napi::String::New(env, resource_name), &h->actx);
  }
  if (st == napi_ok) st = napi_wrap(env, obj, h, baton__handle_finalize, nullptr, nullptr);
  if (st != napi_ok) {  // not wrapped: nothing will finalize h, so free it once closed
    h->finalized = true;
    baton__handle_close(h);
    if (!env.IsExceptionPending()) Napi::Error::New(env, "baton: cannot wrap handle").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  napi_create_reference(env, obj, 0, &h->self);
  return obj;
}

baton__handle* baton__handle_unwrap(Napi::Env env, napi_value obj, const napi_type_tag* tag) {
  bool ok = false;
  void* data = nullptr;
  if (napi_check_object_type_tag(env, obj, tag, &ok) != napi_ok || !ok ||
      napi_unwrap(env, obj, &data) != napi_ok) {
    if (!env.IsExceptionPending()) Napi::TypeError::New(env, "baton: wrong handle type").ThrowAsJavaScriptException();
    return nullptr;
  }
  return static_cast<baton__handle*>(data);
}

void baton__handle_call(baton__handle* h, size_t argc, const napi_value* argv) {
  if (h->cb == nullptr || h->env_gone) return;
  napi_env env = h->env;
  napi_value fn, recv, result;
  if (napi_get_reference_value(env, h->cb, &fn) != napi_ok) return;
  if (h->self == nullptr || napi_get_reference_value(env, h->self, &recv) != napi_ok || recv == nullptr) {
    napi_get_global(env, &recv);
  }
  napi_status st = napi_make_callback(env, h->actx, recv, fn, argc, argv, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (st != napi_ok || pending) {
    napi_value err;
    if (pending && napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
  }
}
