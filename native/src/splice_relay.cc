// The N-API face of the splice relay: flat functions named baton_relay_<verb>, registered by addon.cc
// through baton_relay_init; src/native/splice-relay.ts uses the same names and validates every argument
// first. No per-env state: everything lives in the relay handle, so nothing here is a mutable global.
// A relay handle is a type-tagged External. Its payload is shared by the External's finalizer and the
// threadsafe function's finalizer and freed by whichever runs last. Events reach JS in batches through a
// Float64Array the caller provided (kEventWidth slots per event), so no JS object is made per connection
// here; the bytes of head and returned events go into a Buffer the caller provided too (offset, length).
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "baton.h"
#include "splice_relay.h"

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
  Napi::ObjectReference events;  // Float64Array, kEventWidth doubles per event
  Napi::ObjectReference bytes;   // Buffer for the bytes of head and returned events
  napi_env env = nullptr;
  bool tsfn_live = false;
  bool hook_live = false;
  bool closed = false;
  int refs = 2;  // External finalizer + tsfn finalizer
};

static const napi_type_tag baton__relay_tag = {0x6a1b2c3d4e5f6071ULL, 0x8192a3b4c5d6e7f8ULL};
static const int kEventWidth = 8;  // kind, id, a, b, err, fd, bytes offset, bytes length (-1: too long)

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
  Napi::Buffer<char> bytes = r->bytes.Value().As<Napi::Buffer<char>>();
  size_t slots = buf.ElementLength() / kEventWidth;
  size_t cap = bytes.Length();
  static const size_t kTake = 16;
  RelayEvent tmp[kTake];
  for (;;) {
    size_t n = r->core->TakeEvents(tmp, slots < kTake ? slots : kTake);
    if (n == 0) return;
    double* out = buf.Data();
    size_t used = 0;
    size_t k = 0;  // events in the Float64Array not yet delivered
    for (size_t i = 0; i < n; i++) {
      if (!tmp[i].data.empty() && used + tmp[i].data.size() > cap && k > 0) {  // bytes full: deliver, reuse
        fn.Call({Napi::Number::New(env, static_cast<double>(k))});
        if (env.IsExceptionPending() || r->closed) return;
        k = used = 0;
      }
      double* o = out + k * kEventWidth;
      o[0] = tmp[i].kind;
      o[1] = tmp[i].id;
      o[2] = tmp[i].a;
      o[3] = tmp[i].b;
      o[4] = tmp[i].err;
      o[5] = tmp[i].fd;
      o[6] = static_cast<double>(used);
      o[7] = 0;
      if (!tmp[i].data.empty()) {
        if (tmp[i].data.size() > cap) {
          o[7] = -1;
        } else {
          memcpy(bytes.Data() + used, tmp[i].data.data(), tmp[i].data.size());
          o[7] = static_cast<double>(tmp[i].data.size());
          used += tmp[i].data.size();
        }
      }
      k++;
    }
    fn.Call({Napi::Number::New(env, static_cast<double>(k))});
    if (env.IsExceptionPending()) return;  // splice-relay.ts never throws here; do not call into a pending exception
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
  r->bytes.Reset();
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

// baton_relay_create(onEvent, events: Float64Array, pipeSize, connectTimeoutMs, idleTimeoutMs, poolMax,
//                    bytes: Buffer, maxHeaderBytes)
static Napi::Value baton_relay_create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  baton::RelayOptions opts;
  opts.pipe_size = info[2].As<Napi::Number>().Int32Value();
  opts.connect_timeout_ms = info[3].As<Napi::Number>().Int32Value();
  opts.idle_timeout_ms = info[4].As<Napi::Number>().Int32Value();
  opts.pool_max = info[5].As<Napi::Number>().Int32Value();
  opts.max_header_bytes = info[7].As<Napi::Number>().Int32Value();
  baton__relay* r = new baton__relay();
  r->env = env;
  r->core = new RelayCore(opts);
  r->on_event = Napi::Persistent(info[0].As<Napi::Function>());
  r->events = Napi::Persistent(info[1].As<Napi::Object>());
  r->bytes = Napi::Persistent(info[6].As<Napi::Object>());
  r->tsfn = baton__tsfn::New(env, info[0].As<Napi::Function>(), "baton_relay", 0, 1, r,
                             baton__relay_tsfn_finalize, static_cast<void*>(nullptr));
  r->tsfn_live = true;
  r->tsfn.Unref(env);
  Napi::External<baton__relay> ext = Napi::External<baton__relay>::New(env, r, baton__relay_finalize);
  ext.TypeTag(&baton__relay_tag);
  int rc = r->core->Start(baton__relay_notify, r);
  if (rc < 0) {
    baton__relay_release(r);
    return baton__throw_errno(env, "baton_relay_create", -rc);
  }
  napi_add_env_cleanup_hook(env, baton__relay_cleanup_hook, r);
  r->hook_live = true;
  return ext;
}

// baton_relay_connect(handle, clientFd, addr: Buffer, id, prefix: Buffer | null, consumed: Buffer | null,
//                     watch: boolean): 0, 1 or -errno. consumed: client bytes already read, relayed first
// (after the prefix); with watch they are framed like every client byte (splice_watch.cc).
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
  if (info[6].As<Napi::Boolean>().Value()) c->watch.reset(new baton::RelayWatch());
  if (info[5].IsBuffer()) {
    Napi::Buffer<char> consumed = info[5].As<Napi::Buffer<char>>();
    if (c->watch) c->watch->in.assign(consumed.Data(), consumed.Length());
    else c->prefix.append(consumed.Data(), consumed.Length());
  }
  return Napi::Number::New(env, r->core->Submit(c) ? 1 : 0);
}

// baton_relay_wake(handle): signals the relay thread to take the connections queued since the last wake.
static Napi::Value baton_relay_wake(const Napi::CallbackInfo& info) {
  baton__relay* r = baton__relay_unwrap(info);
  if (r != nullptr && !r->closed) r->core->Wake();
  return info.Env().Undefined();
}

// baton_relay_verdict(handle, id, move: boolean): the answer to a head event; baton_relay_wake must follow
// (once for the verdicts of one batch of events).
static Napi::Value baton_relay_verdict(const Napi::CallbackInfo& info) {
  baton__relay* r = baton__relay_unwrap(info);
  if (r != nullptr && !r->closed) {
    r->core->Verdict(info[1].As<Napi::Number>().DoubleValue(), info[2].As<Napi::Boolean>().Value());
  }
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

static Napi::Object baton__relay_constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("EV_ESTABLISHED", Napi::Number::New(env, baton::kRelayEstablished));
  c.Set("EV_FAILED", Napi::Number::New(env, baton::kRelayFailed));
  c.Set("EV_CLOSED", Napi::Number::New(env, baton::kRelayClosed));
  c.Set("EV_HEAD", Napi::Number::New(env, baton::kRelayHead));
  c.Set("EV_RETURNED", Napi::Number::New(env, baton::kRelayReturned));
  c.Set("EVENT_WIDTH", Napi::Number::New(env, kEventWidth));
  c.Set("STATS_LENGTH", Napi::Number::New(env, baton::kStatCount));
  return c;
}

void baton_relay_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_relay_constants", baton__relay_constants(env));
  exports.Set("baton_relay_create", Napi::Function::New(env, baton_relay_create, "baton_relay_create"));
  exports.Set("baton_relay_connect", Napi::Function::New(env, baton_relay_connect, "baton_relay_connect"));
  exports.Set("baton_relay_wake", Napi::Function::New(env, baton_relay_wake, "baton_relay_wake"));
  exports.Set("baton_relay_verdict", Napi::Function::New(env, baton_relay_verdict, "baton_relay_verdict"));
  exports.Set("baton_relay_stats", Napi::Function::New(env, baton_relay_stats, "baton_relay_stats"));
  exports.Set("baton_relay_close", Napi::Function::New(env, baton_relay_close, "baton_relay_close"));
}
