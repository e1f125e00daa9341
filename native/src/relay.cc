// Module init and JS entry points of the splice relay (baton_relay). Flat functions named
// baton_relay_<verb>; src/native/relay.ts uses the same names and validates every argument first.
// A relay handle is a type-tagged External. Its payload is shared by the External's finalizer and the
// threadsafe function's finalizer and freed by whichever runs last. Events reach JS in batches through a
// Float64Array the caller provided (5 slots per event), so no JS object is made per connection here.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <napi.h>

#include "relay.h"

using baton::RelayConn;
using baton::RelayCore;
using baton::RelayEvent;

struct baton__relay;
static void baton__relay_call_js(Napi::Env env, Napi::Function fn, baton__relay* r, void* data);
using baton__tsfn = Napi::TypedThreadSafeFunction<baton__relay, void, baton__relay_call_js>;

struct baton__relay {
  RelayCore* core = nullptr;
  baton__tsfn tsfn;
  Napi::FunctionReference on_event;
  Napi::ObjectReference events;  // Float64Array, 5 doubles per event
  napi_env env = nullptr;
  bool tsfn_live = false;
  bool hook_live = false;
  bool closed = false;
  int refs = 2;  // External finalizer + tsfn finalizer
};

static const napi_type_tag baton__relay_tag = {0x6a1b2c3d4e5f6071ULL, 0x8192a3b4c5d6e7f8ULL};
static const int kEventWidth = 5;

static void baton__relay_unref(baton__relay* r) {
  if (--r->refs > 0) return;
  delete r->core;
  delete r;
}

static void baton__relay_notify(void* arg) {
  static_cast<baton__relay*>(arg)->tsfn.NonBlockingCall();
}

// Copies queued events into the caller's Float64Array and calls onEvent(count) until none are left.
static void baton__relay_drain(Napi::Env env, Napi::Function fn, baton__relay* r) {
  if (r->events.IsEmpty()) return;
  Napi::Float64Array buf = r->events.Value().As<Napi::Float64Array>();
  size_t slots = buf.ElementLength() / kEventWidth;
  RelayEvent tmp[64];
  for (;;) {
    size_t n = r->core->TakeEvents(tmp, slots < 64 ? slots : 64);
    if (n == 0) return;
    double* out = buf.Data();
    for (size_t i = 0; i < n; i++) {
      out[i * kEventWidth + 0] = tmp[i].kind;
      out[i * kEventWidth + 1] = tmp[i].id;
      out[i * kEventWidth + 2] = tmp[i].a;
      out[i * kEventWidth + 3] = tmp[i].b;
      out[i * kEventWidth + 4] = tmp[i].err;
    }
    fn.Call({Napi::Number::New(env, static_cast<double>(n))});
    if (env.IsExceptionPending()) return;  // relay.ts never throws here; do not call into a pending exception
    if (r->closed) return;                 // closed from inside the call; that close drained the rest
  }
}

static void baton__relay_call_js(Napi::Env env, Napi::Function fn, baton__relay* r, void*) {
  if (env == nullptr || r->closed) return;
  baton__relay_drain(env, fn, r);
}

static void baton__relay_tsfn_finalize(Napi::Env, void*, baton__relay* r) {
  r->tsfn_live = false;
  baton__relay_unref(r);
}

// Env teardown without close(): stop the thread before the threadsafe function goes away.
static void baton__relay_cleanup_hook(void* arg) {
  baton__relay* r = static_cast<baton__relay*>(arg);
  r->hook_live = false;
  r->core->DisableNotify();
  r->core->Stop();
}

static void baton__relay_release(baton__relay* r) {
  if (r->hook_live) {
    napi_remove_env_cleanup_hook(r->env, baton__relay_cleanup_hook, r);
    r->hook_live = false;
  }
  r->closed = true;
  if (r->tsfn_live) r->tsfn.Release();
  r->on_event.Reset();
  r->events.Reset();
}

static void baton__relay_finalize(Napi::Env, baton__relay* r) {
  if (!r->closed) {
    r->core->DisableNotify();
    r->core->Stop();
    baton__relay_release(r);
  }
  baton__relay_unref(r);
}

static baton__relay* baton__relay_unwrap(const Napi::CallbackInfo& info) {
  Napi::Value v = info[0];
  if (!v.IsExternal() || !v.As<Napi::External<baton__relay>>().CheckTypeTag(&baton__relay_tag)) {
    Napi::TypeError::New(info.Env(), "baton_relay: not a relay handle").ThrowAsJavaScriptException();
    return nullptr;
  }
  return v.As<Napi::External<baton__relay>>().Data();
}

// baton_relay_create(onEvent, events: Float64Array, pipeSize, connectTimeoutMs, idleTimeoutMs, poolMax)
static Napi::Value baton_relay_create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton::RelayOptions opts;
  opts.pipe_size = info[2].As<Napi::Number>().Int32Value();
  opts.connect_timeout_ms = info[3].As<Napi::Number>().Int32Value();
  opts.idle_timeout_ms = info[4].As<Napi::Number>().Int32Value();
  opts.pool_max = info[5].As<Napi::Number>().Int32Value();
  baton__relay* r = new baton__relay();
  r->env = env;
  r->core = new RelayCore(opts);
  r->on_event = Napi::Persistent(info[0].As<Napi::Function>());
  r->events = Napi::Persistent(info[1].As<Napi::Object>());
  r->tsfn = baton__tsfn::New(env, info[0].As<Napi::Function>(), "baton_relay", 0, 1, r,
                             baton__relay_tsfn_finalize, static_cast<void*>(nullptr));
  r->tsfn_live = true;
  r->tsfn.Unref(env);
  Napi::External<baton__relay> ext = Napi::External<baton__relay>::New(env, r, baton__relay_finalize);
  ext.TypeTag(&baton__relay_tag);
  int rc = r->core->Start(baton__relay_notify, r);
  if (rc < 0) {
    baton__relay_release(r);
    Napi::Error e = Napi::Error::New(env, std::string("baton_relay_create failed: ") + strerror(-rc));
    e.Set("errno", Napi::Number::New(env, -rc));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  napi_add_env_cleanup_hook(env, baton__relay_cleanup_hook, r);
  r->hook_live = true;
  return ext;
}

// baton_relay_connect(handle, clientFd, addr: Buffer, id, prefix: Buffer | null): 0, 1 or -errno.
// On 0 or 1 the relay holds a dup of clientFd; the caller keeps clientFd until the established event.
// 1 = the relay thread has not been signalled: call baton_relay_wake (once for a burst of connects).
static Napi::Value baton_relay_connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__relay* r = baton__relay_unwrap(info);
  if (r == nullptr) return env.Undefined();
  if (r->closed) return Napi::Number::New(env, -ECANCELED);
  int fd = info[1].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> addr = info[2].As<Napi::Buffer<uint8_t>>();
  if (addr.Length() > sizeof(sockaddr_storage)) return Napi::Number::New(env, -EINVAL);
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return Napi::Number::New(env, -errno);
  RelayConn* c = new RelayConn();
  c->id = info[3].As<Napi::Number>().DoubleValue();
  c->orig_fd = fd;
  c->client = dup;
  memcpy(&c->addr, addr.Data(), addr.Length());
  c->addrlen = static_cast<socklen_t>(addr.Length());
  if (info[4].IsBuffer()) {
    Napi::Buffer<char> prefix = info[4].As<Napi::Buffer<char>>();
    c->prefix.assign(prefix.Data(), prefix.Length());
  }
  return Napi::Number::New(env, r->core->Submit(c) ? 1 : 0);
}

// baton_relay_wake(handle): signals the relay thread to take the connections queued since the last wake.
static Napi::Value baton_relay_wake(const Napi::CallbackInfo& info) {
  baton__relay* r = baton__relay_unwrap(info);
  if (r != nullptr && !r->closed) r->core->Wake();
  return info.Env().Undefined();
}

// baton_relay_stats(handle, out: Float64Array(kStatCount))
static Napi::Value baton_relay_stats(const Napi::CallbackInfo& info) {
  baton__relay* r = baton__relay_unwrap(info);
  if (r == nullptr) return info.Env().Undefined();
  Napi::Float64Array out = info[1].As<Napi::Float64Array>();
  if (out.ElementLength() >= baton::kStatCount) r->core->ReadStats(out.Data());
  return info.Env().Undefined();
}

// baton_relay_close(handle): stops and joins the thread, then delivers the last events synchronously.
static Napi::Value baton_relay_close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton__relay* r = baton__relay_unwrap(info);
  if (r == nullptr || r->closed) return env.Undefined();
  r->core->DisableNotify();
  r->core->Stop();
  Napi::Function fn = r->on_event.Value();
  baton__relay_drain(env, fn, r);
  baton__relay_release(r);
  return env.Undefined();
}

// baton_relay_addr(host: numeric IPv4/IPv6 string, port): sockaddr bytes, or -EINVAL.
static Napi::Value baton_relay_addr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info[0].As<Napi::String>().Utf8Value();
  uint16_t port = static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value());
  sockaddr_in v4 = {};
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&v4), sizeof v4);
  }
  sockaddr_in6 v6 = {};
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&v6), sizeof v6);
  }
  return Napi::Number::New(env, -EINVAL);
}

// baton_relay_addr_unix(path): sockaddr_un bytes ('@name' = abstract), or -ENAMETOOLONG.
static Napi::Value baton_relay_addr_unix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un un = {};
  un.sun_family = AF_UNIX;
  if (path.size() + 1 > sizeof un.sun_path) return Napi::Number::New(env, -ENAMETOOLONG);
  memcpy(un.sun_path, path.data(), path.size());
  size_t len = offsetof(sockaddr_un, sun_path) + path.size() + 1;
  if (!path.empty() && path[0] == '@') {
    un.sun_path[0] = '\0';
    len -= 1;
  }
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&un), len);
}

// baton_relay_dup(fd): F_DUPFD_CLOEXEC copy, or -errno.
static Napi::Value baton_relay_dup(const Napi::CallbackInfo& info) {
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  return Napi::Number::New(info.Env(), fd < 0 ? -errno : fd);
}

// baton_relay_close_fd(fd): 0 or -errno.
static Napi::Value baton_relay_close_fd(const Napi::CallbackInfo& info) {
  int rc = close(info[0].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

static Napi::Object baton__relay_constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("EV_ESTABLISHED", Napi::Number::New(env, baton::kRelayEstablished));
  c.Set("EV_FAILED", Napi::Number::New(env, baton::kRelayFailed));
  c.Set("EV_CLOSED", Napi::Number::New(env, baton::kRelayClosed));
  c.Set("EVENT_WIDTH", Napi::Number::New(env, kEventWidth));
  c.Set("STATS_LENGTH", Napi::Number::New(env, baton::kStatCount));
  return c;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("constants", baton__relay_constants(env));
  exports.Set("baton_relay_create", Napi::Function::New(env, baton_relay_create, "baton_relay_create"));
  exports.Set("baton_relay_connect", Napi::Function::New(env, baton_relay_connect, "baton_relay_connect"));
  exports.Set("baton_relay_wake", Napi::Function::New(env, baton_relay_wake, "baton_relay_wake"));
  exports.Set("baton_relay_stats", Napi::Function::New(env, baton_relay_stats, "baton_relay_stats"));
  exports.Set("baton_relay_close", Napi::Function::New(env, baton_relay_close, "baton_relay_close"));
  exports.Set("baton_relay_addr", Napi::Function::New(env, baton_relay_addr, "baton_relay_addr"));
  exports.Set("baton_relay_addr_unix", Napi::Function::New(env, baton_relay_addr_unix, "baton_relay_addr_unix"));
  exports.Set("baton_relay_dup", Napi::Function::New(env, baton_relay_dup, "baton_relay_dup"));
  exports.Set("baton_relay_close_fd", Napi::Function::New(env, baton_relay_close_fd, "baton_relay_close_fd"));
  return exports;
}

NODE_API_MODULE(baton_relay, Init)
