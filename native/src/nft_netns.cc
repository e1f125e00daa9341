// setns(2) for the calling thread only: run netlink and socket calls of the main JS thread inside another
// network namespace (tests, and `baton host` checks), then come back. Only sockets created while inside
// belong to that namespace; threads (libuv's pool, the splice relay) stay where they were. Needs
// CAP_SYS_ADMIN (and CAP_SYS_ADMIN over the target namespace's user namespace).
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include "baton.h"
#include "nft.h"

// baton_netns_enter(path) -> fd of the namespace the thread was in (the caller owns it and passes it to
// baton_netns_return). path: /run/netns/NAME or /proc/PID/ns/net. Throws Error{errno, code, syscall}.
static Napi::Value baton_netns_enter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int old = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (old < 0) return baton__throw_errno(env, "open(/proc/thread-self/ns/net)", errno);
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    baton__close(old);
    return baton__throw_errno(env, "open(netns)", err);
  }
  int rc = setns(target, CLONE_NEWNET);
  int err = errno;
  baton__close(target);
  if (rc != 0) {
    baton__close(old);
    return baton__throw_errno(env, "setns", err);
  }
  return Napi::Number::New(env, old);
}

// baton_netns_return(fd): back to the namespace baton_netns_enter returned, and closes that fd (also on
// failure). Throws Error{errno, code, syscall}.
static Napi::Value baton_netns_return(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  baton__close(fd);
  if (rc != 0) return baton__throw_errno(env, "setns", err);
  return env.Undefined();
}

void baton_netns_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_netns_enter", Napi::Function::New(env, baton_netns_enter, "baton_netns_enter"));
  exports.Set("baton_netns_return", Napi::Function::New(env, baton_netns_return, "baton_netns_return"));
}
