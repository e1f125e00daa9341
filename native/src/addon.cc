// Module init of the addon (the one target "baton"): per-env instance data, constants, error helpers, and
// the registration of every file's exports. Exports are flat functions named baton_<object>_<verb>;
// src/native/binding.ts (and splice-relay.ts, which it feeds) use the same names.
#include <errno.h>
#include <string.h>

#include "baton.h"
#include "nft.h"
#include "repair.h"

baton__env* baton__env_get(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<baton__env*>(data);
}

const char* baton__errno_name(int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  return name != nullptr ? name : "EUNKNOWN";
}

Napi::Value baton__throw_errno(Napi::Env env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + " failed: " + baton__errno_name(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, baton__errno_name(err)));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

static void baton__env_cleanup(napi_async_cleanup_hook_handle cleanup, void* arg) {
  baton__handles_teardown(static_cast<baton__env*>(arg), cleanup);
}

static void baton__env_free(napi_env, void* data, void*) {
  delete static_cast<baton__env*>(data);
}

static Napi::Object baton__constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("READABLE", Napi::Number::New(env, UV_READABLE));
  c.Set("WRITABLE", Napi::Number::New(env, UV_WRITABLE));
  c.Set("DISCONNECT", Napi::Number::New(env, UV_DISCONNECT));
  c.Set("EAGAIN", Napi::Number::New(env, EAGAIN));
  c.Set("EINTR", Napi::Number::New(env, EINTR));
  c.Set("ECONNRESET", Napi::Number::New(env, ECONNRESET));
  c.Set("EPIPE", Napi::Number::New(env, EPIPE));
  c.Set("ENOENT", Napi::Number::New(env, ENOENT));
  c.Set("ECONNREFUSED", Napi::Number::New(env, ECONNREFUSED));
  c.Set("EMFILE", Napi::Number::New(env, EMFILE));
  c.Set("EEXIST", Napi::Number::New(env, EEXIST));  // additive: uv_poll_init on an fd libuv already watches
  return c;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  baton__env* benv = new baton__env();
  benv->handles = nullptr;
  benv->closing = 0;
  benv->cleanup = nullptr;
  if (napi_get_uv_event_loop(env, &benv->loop) != napi_ok ||
      napi_set_instance_data(env, benv, baton__env_free, nullptr) != napi_ok) {
    delete benv;
    Napi::Error::New(env, "baton: cannot set up instance data").ThrowAsJavaScriptException();
    return exports;
  }
  napi_add_async_cleanup_hook(env, baton__env_cleanup, benv, nullptr);

  exports.Set("constants", baton__constants(env));
  baton_listen_init(env, exports);
  baton_poll_init(env, exports);
  baton_fdpass_init(env, exports);
  baton_sock_init(env, exports);
  baton_sockaddr_init(env, exports);
  baton_relay_init(env, exports);
  baton_repair_init(env, exports);
  baton_repair_restore_init(env, exports);
  baton_migrate_out_init(env, exports);
  baton_nft_init(env, exports);
  baton_netns_init(env, exports);
  return exports;
}

NODE_API_MODULE(baton, Init)
