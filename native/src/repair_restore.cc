// TCP_REPAIR on the agent's side: rebuild a dumped connection in a new socket (baton_repair_restore from a
// TcpRepairState's parts; baton_repair_restore_wire straight from a MIGRATE's wire state, the agent's hot
// path), then, once the flow is steered here, let it go (baton_repair_go). The order of the calls is the
// kernel's, not ours: queue sequences only before connect(), TCP_MAXSEG before connect() (pitfall 3: a repair
// connect resets mss_clamp to 536 and the MSS option does not fix mss_cache), options after it, the window
// after the receive queue. Needs CAP_NET_ADMIN in the socket's network namespace.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <string>

#include "baton.h"
#include "repair.h"

static int baton__set(int fd, int level, int opt, int val) {
  return setsockopt(fd, level, opt, &val, sizeof(val)) == 0 ? 0 : errno;
}

// Writes all of buf into the selected repair queue (the kernel takes at most 17 pages per call for the
// receive queue, so this loops). Returns 0 or an errno; EAGAIN means the buffer sizing below was wrong.
static int baton__fill_queue(int fd, int queue, const char* buf, size_t len) {
  if (len == 0) return 0;
  int err = baton__set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue);
  if (err != 0) return err;
  for (size_t off = 0; off < len;) {
    ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    off += static_cast<size_t>(n);
  }
  return 0;
}

// Makes room for `len` queued bytes plus skb overhead. SO_*BUFFORCE (CAP_NET_ADMIN) because a
// dispatcher's autotuned queue can exceed rmem_max/wmem_max; it also stops autotuning on this socket,
// so it is only set when the default is too small.
static int baton__ensure_buf(int fd, int opt, int force, size_t len) {
  int cur = 0;
  socklen_t sl = sizeof(cur);
  if (len == 0) return 0;
  if (getsockopt(fd, SOL_SOCKET, opt, &cur, &sl) != 0) return errno;
  if (static_cast<size_t>(cur) >= 2 * len + 65536) return 0;  // the kernel reports the doubled value
  return baton__set(fd, SOL_SOCKET, force, static_cast<int>(len + 32768));
}

struct baton__restore_in {
  const uint32_t* f;
  const char* rq;
  size_t rq_len;
  const char* sq;
  size_t sent_len;  // the first sent_len bytes of the send queue: sent, not yet acknowledged
  size_t sq_len;
};

// Steps before connect(): repair mode, bind, queue sequences, MSS. Returns 0 or an errno and *step.
static int baton__restore_pre(int fd, const struct sockaddr_storage* local, socklen_t llen,
                              const baton__restore_in* in, const char** step) {
  int err;
  *step = "setsockopt(TCP_REPAIR)";
  if ((err = baton__set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON)) != 0) return err;
  *step = "bind";  // repair mode sets SK_FORCE_REUSE: the VIP:port may have a listener or other flows
  if (bind(fd, reinterpret_cast<const struct sockaddr*>(local), llen) != 0) return errno;
  *step = "setsockopt(TCP_QUEUE_SEQ receive)";
  if ((err = baton__set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) != 0) return err;
  uint32_t rseq = in->f[BATON_REPAIR_RCV_NXT] - static_cast<uint32_t>(in->rq_len);
  if ((err = baton__set(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, static_cast<int>(rseq))) != 0) return err;
  *step = "setsockopt(TCP_QUEUE_SEQ send)";
  if ((err = baton__set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)) != 0) return err;
  uint32_t sseq = in->f[BATON_REPAIR_WRITE_SEQ] - static_cast<uint32_t>(in->sq_len);
  if ((err = baton__set(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, static_cast<int>(sseq))) != 0) return err;
  // TCP_MAXSEG takes at most MAX_TCP_WINDOW (32767): a loopback MSS (65495) is clamped, so a restored
  // loopback flow sends 32 KiB segments. Real links (MSS <= 9 KB) are exact. TCPOPT_MAXSEG below still
  // restores the full mss_clamp.
  *step = "setsockopt(TCP_MAXSEG)";
  int mss = static_cast<int>(in->f[BATON_REPAIR_MSS_CLAMP] < 32767 ? in->f[BATON_REPAIR_MSS_CLAMP] : 32767);
  if (mss > 0 && (err = baton__set(fd, IPPROTO_TCP, TCP_MAXSEG, mss)) != 0) return err;
  *step = "setsockopt(SO_RCVBUFFORCE)";
  if ((err = baton__ensure_buf(fd, SO_RCVBUF, SO_RCVBUFFORCE, in->rq_len)) != 0) return err;
  *step = "setsockopt(SO_SNDBUFFORCE)";
  return baton__ensure_buf(fd, SO_SNDBUF, SO_SNDBUFFORCE, in->sent_len);
}

// Steps after connect(): options, timestamp, both queues, window. Returns 0 or an errno and *step.
static int baton__restore_post(int fd, const baton__restore_in* in, const char** step) {
  const uint32_t* f = in->f;
  struct tcp_repair_opt opts[4];
  int n = 0, err;
  uint32_t o = f[BATON_REPAIR_OPTIONS];
  opts[n++] = {TCPOPT_MAXSEG, f[BATON_REPAIR_MSS_CLAMP]};
  if (o & TCPI_OPT_SACK) opts[n++] = {TCPOPT_SACK_PERMITTED, 0};
  if (o & TCPI_OPT_WSCALE) opts[n++] = {TCPOPT_WINDOW, f[BATON_REPAIR_SND_WSCALE] | (f[BATON_REPAIR_RCV_WSCALE] << 16)};
  if (o & TCPI_OPT_TIMESTAMPS) opts[n++] = {TCPOPT_TIMESTAMP, 0};
  *step = "setsockopt(TCP_REPAIR_OPTIONS)";
  if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, static_cast<socklen_t>(n * sizeof(opts[0]))) != 0) {
    return errno;
  }
  *step = "setsockopt(TCP_TIMESTAMP)";
  if ((err = baton__set(fd, IPPROTO_TCP, TCP_TIMESTAMP, static_cast<int>(f[BATON_REPAIR_TIMESTAMP]))) != 0) return err;
  *step = "send(receive queue)";
  if ((err = baton__fill_queue(fd, TCP_RECV_QUEUE, in->rq, in->rq_len)) != 0) return err;
  *step = "send(send queue)";
  if ((err = baton__fill_queue(fd, TCP_SEND_QUEUE, in->sq, in->sent_len)) != 0) return err;
  struct tcp_repair_window w = {f[BATON_REPAIR_SND_WL1], f[BATON_REPAIR_SND_WND], f[BATON_REPAIR_MAX_WINDOW],
                                f[BATON_REPAIR_RCV_WND], f[BATON_REPAIR_RCV_WUP]};
  *step = "setsockopt(TCP_REPAIR_WINDOW)";
  if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) != 0) return errno;
  return 0;  // a queue may stay selected: it only matters in repair mode, and TCP_REPAIR=1 resets it
}

// The whole restore, both entry points' (baton_repair_restore, baton_repair_restore_wire): a new socket,
// the steps before connect(), connect() in repair mode (no SYN: ESTABLISHED at once), the steps after it.
// Returns 0 with *fd, or an errno with *step; then no fd is left open (the socket was closed still in
// repair mode, so nothing reached the peer).
static int baton__restore(const struct sockaddr_storage* local, socklen_t llen, const struct sockaddr_storage* peer,
                          socklen_t plen, const baton__restore_in* in, int* fd, const char** step) {
  *step = "socket";
  int s = socket(local->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (s < 0) return errno;
  int err = baton__restore_pre(s, local, llen, in, step);
  if (err == 0) {
    *step = "connect";
    if (connect(s, reinterpret_cast<const struct sockaddr*>(peer), plen) != 0) err = errno;
  }
  if (err == 0) err = baton__restore_post(s, in, step);
  if (err != 0) {
    baton__close(s);
    return err;
  }
  *fd = s;
  return 0;
}

// baton_repair_restore(local, peer, fields: Uint32Array, recvQueue: Buffer, sendQueue: Buffer) -> fd
// Addresses are numeric text; ports and everything else come from fields (repair.h), as dumped, except
// the timestamp, which the caller already moved forward. sendQueue is the whole dumped send queue; its
// last fields[UNSENT] bytes are not restored here but sent by baton_repair_go. No packet leaves: the
// socket is ESTABLISHED, still in repair mode, O_NONBLOCK | O_CLOEXEC, and owned by the caller, who calls
// baton_repair_go once the flow is steered here, or baton_repair_close to drop it silently.
// Throws Error{errno, code, syscall = the failed step}; on a throw no fd is left open.
static Napi::Value baton_repair_restore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string lhost = info[0].As<Napi::String>().Utf8Value();
  std::string phost = info[1].As<Napi::String>().Utf8Value();
  const uint32_t* f = info[2].As<Napi::Uint32Array>().Data();
  Napi::Buffer<char> rq = info[3].As<Napi::Buffer<char>>();
  Napi::Buffer<char> sq = info[4].As<Napi::Buffer<char>>();
  if (env.IsExceptionPending()) return env.Undefined();
  struct sockaddr_storage local, peer;
  int llen = baton__sockaddr_inet(lhost.c_str(), static_cast<uint16_t>(f[BATON_REPAIR_LOCAL_PORT]), &local);
  int plen = baton__sockaddr_inet(phost.c_str(), static_cast<uint16_t>(f[BATON_REPAIR_PEER_PORT]), &peer);
  if (llen < 0 || plen < 0 || local.ss_family != peer.ss_family) {
    return baton__throw_errno(env, "sockaddr(local, peer)", EINVAL);
  }
  size_t unsent = f[BATON_REPAIR_UNSENT];
  if (unsent > sq.Length()) return baton__throw_errno(env, "restore(unsent > send queue)", EINVAL);
  baton__restore_in in = {f, rq.Data(), rq.Length(), sq.Data(), sq.Length() - unsent, sq.Length()};
  int fd = -1;
  const char* step = "";
  int err = baton__restore(&local, static_cast<socklen_t>(llen), &peer, static_cast<socklen_t>(plen), &in, &fd, &step);
  if (err != 0) return baton__throw_errno(env, step, err);
  return Napi::Number::New(env, fd);
}

// An Error{message, errno, code} without a syscall: a refusal before any system call (the wrapper, which maps
// errors with a syscall to BatonNativeError, passes it on as it is).
static Napi::Value baton__refuse(Napi::Env env, const std::string& message, int err) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, baton__errno_name(err)));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// "a.b.c.d:port", "[v6]:port": an address of a wire state (network order) for a message.
static std::string baton__endpoint(uint32_t family, const uint8_t* addr, uint32_t port) {
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, text, sizeof(text));
  std::string host(text);
  return (family == 4 ? host : "[" + host + "]") + ":" + std::to_string(port);
}

// baton_repair_restore_wire(buf: Buffer, offset, timestampSlackMs, vipAddr, vipPort, out: Uint32Array(4)) -> fd
// The agent's restore straight from a MIGRATE's bytes: buf[offset..] is one wire state (migrate-state.ts),
// all of the rest of buf. Decodes it (baton__state_decode, repair_state.cc: what decodeMigrateState checks),
// refuses a flow whose local end is not vipAddr (IPv4, host order) : vipPort, moves the timestamp forward by
// timestampSlackMs as advanceTimestamp does (repair.ts; bit 0 set: microseconds), and restores it as
// baton_repair_restore does, the queues straight from buf. On success out = [peer address (IPv4, host order),
// peer port, offset in buf of the send queue's never-sent tail, its length]: what baton_repair_go sends.
// Throws, leaving no fd open:
// - a bad state: Error{message "bad state: " + decodeMigrateState's reason, errno EINVAL, code}, no syscall;
// - another local end: Error{message "flow is for A:P, this agent's VIP is V:Q", errno EADDRNOTAVAIL, code},
//   no syscall;
// - a failed step: Error{errno, code, syscall = the step}, as baton_repair_restore.
static Napi::Value baton_repair_restore_wire(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> buf = info[0].As<Napi::Buffer<uint8_t>>();
  size_t offset = info[1].As<Napi::Number>().Uint32Value();
  uint32_t slack_ms = info[2].As<Napi::Number>().Uint32Value();
  uint32_t vip_addr = info[3].As<Napi::Number>().Uint32Value();
  uint32_t vip_port = info[4].As<Napi::Number>().Uint32Value();
  uint32_t* out = info[5].As<Napi::Uint32Array>().Data();
  if (env.IsExceptionPending()) return env.Undefined();
  if (offset > buf.Length()) offset = buf.Length();  // the wrapper checks; here only: never read past buf
  const uint8_t* p = buf.Data() + offset;
  baton__state_view v;
  char why[BATON_STATE_WHY_BYTES];
  if (!baton__state_decode(p, buf.Length() - offset, &v, why, sizeof(why))) {
    return baton__refuse(env, std::string("bad state: ") + why, EINVAL);
  }
  uint32_t* f = v.f;
  uint8_t vip[4];
  baton__state_ipv4(vip, vip_addr);
  if (f[BATON_REPAIR_FAMILY] != 4 || memcmp(v.local, vip, 4) != 0 || f[BATON_REPAIR_LOCAL_PORT] != vip_port) {
    return baton__refuse(env, "flow is for " + baton__endpoint(f[BATON_REPAIR_FAMILY], v.local, f[BATON_REPAIR_LOCAL_PORT]) +
                                  ", this agent's VIP is " + baton__endpoint(4, vip, vip_port), EADDRNOTAVAIL);
  }
  uint32_t ts = f[BATON_REPAIR_TIMESTAMP];
  f[BATON_REPAIR_TIMESTAMP] = ts + ((ts & 1) != 0 ? slack_ms * 1000 : slack_ms);  // modulo 2^32

  struct sockaddr_storage local, peer;
  memset(&local, 0, sizeof(struct sockaddr_in));
  memset(&peer, 0, sizeof(struct sockaddr_in));
  struct sockaddr_in* lin = reinterpret_cast<struct sockaddr_in*>(&local);
  struct sockaddr_in* pin = reinterpret_cast<struct sockaddr_in*>(&peer);
  lin->sin_family = pin->sin_family = AF_INET;
  memcpy(&lin->sin_addr, v.local, 4);  // both network order, as on the wire
  memcpy(&pin->sin_addr, v.peer, 4);
  lin->sin_port = htons(static_cast<uint16_t>(f[BATON_REPAIR_LOCAL_PORT]));
  pin->sin_port = htons(static_cast<uint16_t>(f[BATON_REPAIR_PEER_PORT]));
  size_t unsent = f[BATON_REPAIR_UNSENT];
  baton__restore_in in = {f, reinterpret_cast<const char*>(v.rq), v.rq_len, reinterpret_cast<const char*>(v.sq),
                          v.sq_len - unsent, v.sq_len};
  int fd = -1;
  const char* step = "";
  int err = baton__restore(&local, sizeof(struct sockaddr_in), &peer, sizeof(struct sockaddr_in), &in, &fd, &step);
  if (err != 0) return baton__throw_errno(env, step, err);
  out[0] = (static_cast<uint32_t>(v.peer[0]) << 24) | (static_cast<uint32_t>(v.peer[1]) << 16) |
           (static_cast<uint32_t>(v.peer[2]) << 8) | v.peer[3];
  out[1] = f[BATON_REPAIR_PEER_PORT];
  out[2] = static_cast<uint32_t>(v.sq + v.sq_len - unsent - buf.Data());
  out[3] = static_cast<uint32_t>(unsent);
  return Napi::Number::New(env, fd);
}

// baton_repair_go(fd, unsent: Buffer, probe: bool, transparent: bool) -> bytes of unsent written (may be
// fewer than all when the send buffer fills: the caller writes the rest through its own stream).
// transparent: first sets IP_TRANSPARENT (IPV6_TRANSPARENT), which `baton host realserver`'s table reads
// as "this flow's socket is whole": until then the flow's packets are dropped there, not reset. Time-wait
// sockets inherit the flag, so the flow's last packets still reach it.
// Leaves repair mode (probe: with a window probe, which also tells the peer where we are), sets
// SO_REUSEADDR (pitfall 9: leaving repair mode clears the forced reuse, and a listener created later on
// the same address would fail with EADDRINUSE), then sends the never-sent tail of the send queue.
// Throws Error{errno, code, syscall}; the caller still owns the fd either way.
static Napi::Value baton_repair_go(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> unsent = info[1].As<Napi::Buffer<char>>();
  bool probe = info[2].As<Napi::Boolean>().Value();
  bool transparent = info[3].As<Napi::Boolean>().Value();
  int err;
  if (transparent) {
    int domain = 0;
    socklen_t dlen = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) != 0) return baton__throw_errno(env, "getsockopt(SO_DOMAIN)", errno);
    err = domain == AF_INET6 ? baton__set(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, 1) : baton__set(fd, IPPROTO_IP, IP_TRANSPARENT, 1);
    if (err != 0) return baton__throw_errno(env, "setsockopt(IP_TRANSPARENT)", err);
  }
  err = baton__set(fd, IPPROTO_TCP, TCP_REPAIR, probe ? TCP_REPAIR_OFF : TCP_REPAIR_OFF_NO_WP);
  if (err != 0) return baton__throw_errno(env, "setsockopt(TCP_REPAIR)", err);
  if ((err = baton__set(fd, SOL_SOCKET, SO_REUSEADDR, 1)) != 0) {
    return baton__throw_errno(env, "setsockopt(SO_REUSEADDR)", err);
  }
  size_t off = 0, len = unsent.Length();
  while (off < len) {
    ssize_t n = send(fd, unsent.Data() + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) return baton__throw_errno(env, "send(unsent)", errno);
    off += static_cast<size_t>(n);
  }
  return Napi::Number::New(env, static_cast<double>(off));
}

void baton_repair_restore_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_repair_restore", Napi::Function::New(env, baton_repair_restore, "baton_repair_restore"));
  exports.Set("baton_repair_restore_wire",
              Napi::Function::New(env, baton_repair_restore_wire, "baton_repair_restore_wire"));
  exports.Set("baton_repair_go", Napi::Function::New(env, baton_repair_go, "baton_repair_go"));
}
