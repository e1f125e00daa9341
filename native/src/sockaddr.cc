// Every sockaddr the addon builds or reads: TCP (numeric IPv4/IPv6 + port), AF_UNIX ('@name' = abstract
// namespace), and a peer address back to text. The listener, the SEQPACKET channels and the splice relay
// all build their addresses here; baton_sockaddr_inet / baton_sockaddr_unix give JS the same bytes.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

#include "baton.h"

int baton__sockaddr_inet(const char* host, uint16_t port, struct sockaddr_storage* ss) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in* sin = reinterpret_cast<struct sockaddr_in*>(ss);
  struct sockaddr_in6* sin6 = reinterpret_cast<struct sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    return static_cast<int>(sizeof(*sin));
  }
  if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return static_cast<int>(sizeof(*sin6));
  }
  return -EINVAL;
}

int baton__sockaddr_unix(const std::string& path, struct sockaddr_un* sun) {
  memset(sun, 0, sizeof(*sun));
  sun->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun->sun_path)) return -ENAMETOOLONG;
  memcpy(sun->sun_path, path.data(), path.size());
  bool abstract = path[0] == '@';
  if (abstract) sun->sun_path[0] = '\0';  // abstract: no trailing NUL, the length is exact
  return static_cast<int>(offsetof(struct sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
}

int baton__sockaddr_port(const struct sockaddr_storage* ss) {
  if (ss->ss_family == AF_INET) return ntohs(reinterpret_cast<const struct sockaddr_in*>(ss)->sin_port);
  if (ss->ss_family == AF_INET6) return ntohs(reinterpret_cast<const struct sockaddr_in6*>(ss)->sin6_port);
  return 0;
}

void baton__sockaddr_format(const struct sockaddr_storage* ss, char* buf, socklen_t size, int* port) {
  const struct sockaddr_in* sin = reinterpret_cast<const struct sockaddr_in*>(ss);
  const struct sockaddr_in6* sin6 = reinterpret_cast<const struct sockaddr_in6*>(ss);
  buf[0] = '\0';
  *port = baton__sockaddr_port(ss);
  if (ss->ss_family == AF_INET) {
    inet_ntop(AF_INET, &sin->sin_addr, buf, size);
  } else if (ss->ss_family == AF_INET6) {
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf, size);
    else inet_ntop(AF_INET6, &sin6->sin6_addr, buf, size);
  }
}

// baton_sockaddr_inet(host: numeric IPv4/IPv6, no brackets, port) -> sockaddr bytes, or -EINVAL.
static Napi::Value baton_sockaddr_inet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info[0].As<Napi::String>().Utf8Value();
  uint16_t port = static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value());
  struct sockaddr_storage ss;
  int len = baton__sockaddr_inet(host.c_str(), port, &ss);
  if (len < 0) return Napi::Number::New(env, len);
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&ss), static_cast<size_t>(len));
}

// baton_sockaddr_unix(path) -> sockaddr_un bytes ('@name' = abstract), or -ENAMETOOLONG.
static Napi::Value baton_sockaddr_unix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un sun;
  int len = baton__sockaddr_unix(path, &sun);
  if (len < 0) return Napi::Number::New(env, len);
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&sun), static_cast<size_t>(len));
}

void baton_sockaddr_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_sockaddr_inet", Napi::Function::New(env, baton_sockaddr_inet, "baton_sockaddr_inet"));
  exports.Set("baton_sockaddr_unix", Napi::Function::New(env, baton_sockaddr_unix, "baton_sockaddr_unix"));
}
