// TCP_REPAIR on the dispatcher's side: dump an established socket, close it without a packet, or give it
// back to normal TCP. All three take a caller-owned fd; only baton_repair_close ends the ownership.
// The dump and the close are also baton__repair_dump / baton__repair_close (repair.h); migrate_out.cc runs
// baton__repair_dump_frame, the same dump written straight into its MIGRATE frame, between its nft
// transactions.
// Needs CAP_NET_ADMIN in the socket's network namespace (EPERM otherwise). Not on the per-byte hot path,
// but once per migrated connection: no allocation beyond the two queue Buffers and two address strings
// (repairDump), or the one frame Buffer (moveOut).
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#include "baton.h"
#include "repair.h"

static int baton__tcp_set(int fd, int opt, int val) {
  return setsockopt(fd, IPPROTO_TCP, opt, &val, sizeof(val)) == 0 ? 0 : errno;
}

static int baton__tcp_get(int fd, int opt, void* val, socklen_t size) {
  socklen_t len = size;
  if (getsockopt(fd, IPPROTO_TCP, opt, val, &len) != 0) return errno;
  return len == size ? 0 : EPROTO;  // a kernel that answers a shorter struct is not one we know
}

// Leaves repair mode again, best effort: after a failed dump (or a migration given up before the close) the
// caller keeps a working socket.
void baton__repair_abort(int fd) {
  baton__tcp_set(fd, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
  baton__tcp_set(fd, TCP_REPAIR, TCP_REPAIR_OFF);
}

// Selects one queue, reads its TCP_QUEUE_SEQ and peeks all `len` of its bytes into dst (none when len is 0).
// Returns 0 or an errno; *step names the call that failed.
static int baton__dump_queue(int fd, int queue, char* dst, size_t len, uint32_t* seq, const char** step) {
  int err;
  *step = "setsockopt(TCP_REPAIR_QUEUE)";
  if ((err = baton__tcp_set(fd, TCP_REPAIR_QUEUE, queue)) != 0) return err;
  *step = "getsockopt(TCP_QUEUE_SEQ)";
  if ((err = baton__tcp_get(fd, TCP_QUEUE_SEQ, seq, sizeof(*seq))) != 0) return err;
  if (len == 0) return 0;
  *step = queue == TCP_RECV_QUEUE ? "recv(peek receive queue)" : "recv(peek send queue)";
  ssize_t n;
  do n = recv(fd, dst, len, MSG_PEEK | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  return static_cast<size_t>(n) == len ? 0 : EIO;  // the queue changed under us (flow not frozen?)
}

// The same into a new Buffer of its own (repairDump).
static int baton__dump_queue_buffer(Napi::Env env, int fd, int queue, size_t len, uint32_t* seq,
                                    Napi::Buffer<char>* out, const char** step) {
  *out = Napi::Buffer<char>::New(env, len);
  return baton__dump_queue(fd, queue, out->Data(), len, seq, step);
}

static int baton__dump_addrs(int fd, uint32_t* f, char* local, char* peer, size_t size, const char** step) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int port;
  *step = "getsockname";
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return errno;
  baton__sockaddr_format(&ss, local, static_cast<socklen_t>(size), &port);
  f[BATON_REPAIR_LOCAL_PORT] = static_cast<uint32_t>(port);
  len = sizeof(ss);
  *step = "getpeername";
  if (getpeername(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return errno;
  baton__sockaddr_format(&ss, peer, static_cast<socklen_t>(size), &port);
  f[BATON_REPAIR_PEER_PORT] = static_cast<uint32_t>(port);
  // An IPv4-mapped IPv6 peer reads as IPv4 text: the flow on the wire is IPv4, and so is its restore.
  f[BATON_REPAIR_FAMILY] = strchr(peer, ':') != nullptr ? 6 : 4;
  return 0;
}

// The scalars that need no queue: options, MSS clamp, timestamp, window, queue sizes.
static int baton__dump_scalars(int fd, uint32_t* f, int* inq, int* outq, const char** step) {
  struct tcp_info ti;
  int err;
  socklen_t tlen = sizeof(ti);
  *step = "getsockopt(TCP_INFO)";
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) != 0) return errno;
  *step = "tcp_info(state ESTABLISHED)";
  if (ti.tcpi_state != TCP_ESTABLISHED) return ENOTCONN;
  f[BATON_REPAIR_OPTIONS] = ti.tcpi_options;
  f[BATON_REPAIR_SND_WSCALE] = ti.tcpi_snd_wscale;
  f[BATON_REPAIR_RCV_WSCALE] = ti.tcpi_rcv_wscale;
  int mss = 0;
  *step = "getsockopt(TCP_MAXSEG)";
  if ((err = baton__tcp_get(fd, TCP_MAXSEG, &mss, sizeof(mss))) != 0) return err;
  f[BATON_REPAIR_MSS_CLAMP] = static_cast<uint32_t>(mss);
  *step = "getsockopt(TCP_TIMESTAMP)";
  if ((err = baton__tcp_get(fd, TCP_TIMESTAMP, &f[BATON_REPAIR_TIMESTAMP], sizeof(uint32_t))) != 0) return err;
  struct tcp_repair_window w;
  *step = "getsockopt(TCP_REPAIR_WINDOW)";
  if ((err = baton__tcp_get(fd, TCP_REPAIR_WINDOW, &w, sizeof(w))) != 0) return err;
  f[BATON_REPAIR_SND_WL1] = w.snd_wl1;
  f[BATON_REPAIR_SND_WND] = w.snd_wnd;
  f[BATON_REPAIR_MAX_WINDOW] = w.max_window;
  f[BATON_REPAIR_RCV_WND] = w.rcv_wnd;
  f[BATON_REPAIR_RCV_WUP] = w.rcv_wup;
  int unsent = 0;
  *step = "ioctl(SIOCINQ)";
  if (ioctl(fd, SIOCINQ, inq) != 0) return errno;
  *step = "ioctl(SIOCOUTQ)";
  if (ioctl(fd, SIOCOUTQ, outq) != 0) return errno;
  // SIOCOUTQ is write_seq - snd_una, SIOCOUTQNSD write_seq - snd_nxt, and snd_una <= snd_nxt: an empty send
  // queue has no unsent tail (the usual case: the dispatcher wrote nothing to the client).
  if (*outq != 0) {
    *step = "ioctl(SIOCOUTQNSD)";
    if (ioctl(fd, SIOCOUTQNSD, &unsent) != 0) return errno;
  }
  f[BATON_REPAIR_UNSENT] = static_cast<uint32_t>(unsent);
  return 0;
}

// The dump of baton_repair_dump and migrate_out.cc (repair.h).
int baton__repair_dump(Napi::Env env, int fd, uint32_t* f, Napi::Array out, const char** step) {
  *step = "setsockopt(TCP_REPAIR)";
  int err = baton__tcp_set(fd, TCP_REPAIR, TCP_REPAIR_ON);
  if (err != 0) return err;  // still out of repair mode: nothing to undo
  int inq = 0, outq = 0;
  Napi::Buffer<char> rq, sq;
  char local[INET6_ADDRSTRLEN], peer[INET6_ADDRSTRLEN];
  if ((err = baton__dump_scalars(fd, f, &inq, &outq, step)) == 0 &&
      (err = baton__dump_queue_buffer(env, fd, TCP_RECV_QUEUE, static_cast<size_t>(inq), &f[BATON_REPAIR_RCV_NXT],
                                      &rq, step)) == 0 &&
      (err = baton__dump_queue_buffer(env, fd, TCP_SEND_QUEUE, static_cast<size_t>(outq),
                                      &f[BATON_REPAIR_WRITE_SEQ], &sq, step)) == 0) {
    // The send queue stays selected: close ignores it, and repair_off / a later TCP_REPAIR=1 reset it.
    err = baton__dump_addrs(fd, f, local, peer, sizeof(local), step);
  }
  if (err != 0) {
    baton__repair_abort(fd);
    return err;
  }
  out.Set(0u, Napi::String::New(env, local));
  out.Set(1u, Napi::String::New(env, peer));
  out.Set(2u, rq);
  out.Set(3u, sq);
  return 0;
}

// The frame of moveOut (repair.h): one allocation, the queues peeked straight into it, no address calls.
int baton__repair_dump_frame(Napi::Env env, int fd, uint32_t* f, const uint8_t* prefix, size_t prefix_len,
                             const baton__ends4& ends, Napi::Value* frame, const char** step) {
  *step = "setsockopt(TCP_REPAIR)";
  int err = baton__tcp_set(fd, TCP_REPAIR, TCP_REPAIR_ON);
  if (err != 0) return err;  // still out of repair mode: nothing to undo
  int inq = 0, outq = 0;
  if ((err = baton__dump_scalars(fd, f, &inq, &outq, step)) != 0) {
    baton__repair_abort(fd);
    return err;
  }
  f[BATON_REPAIR_FAMILY] = 4;
  f[BATON_REPAIR_LOCAL_PORT] = ends.local_port;
  f[BATON_REPAIR_PEER_PORT] = ends.peer_port;
  size_t rq = static_cast<size_t>(inq), sq = static_cast<size_t>(outq);
  size_t total = prefix_len + baton__state_bytes(4, rq, sq);
  *step = "migrate frame (over 4 GiB)";
  if (total - 4 > UINT32_MAX) {  // no socket holds that much; the u32 length could not say it
    baton__repair_abort(fd);
    return EMSGSIZE;
  }
  Napi::Buffer<uint8_t> b = Napi::Buffer<uint8_t>::New(env, total);
  uint8_t* p = b.Data();
  memcpy(p, prefix, prefix_len);
  uint8_t* q = p + prefix_len + BATON_STATE_HEAD_BYTES + 2 * 4;  // where the queues go
  if ((err = baton__dump_queue(fd, TCP_RECV_QUEUE, reinterpret_cast<char*>(q), rq, &f[BATON_REPAIR_RCV_NXT],
                               step)) != 0 ||
      (err = baton__dump_queue(fd, TCP_SEND_QUEUE, reinterpret_cast<char*>(q + rq), sq, &f[BATON_REPAIR_WRITE_SEQ],
                               step)) != 0) {
    baton__repair_abort(fd);
    return err;
  }
  // The send queue stays selected, as in baton__repair_dump.
  uint8_t* at = baton__state_head(p + prefix_len, f, static_cast<uint32_t>(rq), static_cast<uint32_t>(sq));
  baton__state_ipv4(baton__state_ipv4(at, ends.local_addr), ends.peer_addr);
  baton__state_be32(p, static_cast<uint32_t>(total - 4));
  *frame = b;
  return 0;
}

// baton_repair_dump(fd, fields: Uint32Array(BATON_REPAIR_FIELD_COUNT)) -> [local, peer, recvQueue, sendQueue]
// Puts the socket in repair mode and dumps it: fields gets the scalars, the array the addresses as text and
// both queues' bytes (the send queue whole: its last fields[UNSENT] bytes were never sent). The socket
// stays in repair mode, owned by the caller, who next calls baton_repair_close (migrated) or
// baton_repair_off (serve it here after all). The flow must be frozen: a packet arriving mid-dump makes
// the queue peeks disagree with the ioctls (EIO). Throws Error{errno, code, syscall = the failed step};
// on a throw the socket has left repair mode again.
static Napi::Value baton_repair_dump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t* f = info[1].As<Napi::Uint32Array>().Data();
  Napi::Array out = Napi::Array::New(env, 4);
  const char* step = "";
  int err = baton__repair_dump(env, fd, f, out, &step);
  if (err != 0) return baton__throw_errno(env, step, err);
  return out;
}

// The close of baton_repair_close and migrate_out.cc (repair.h).
int baton__repair_close(int fd, const char** step, bool* gone) {
  *gone = false;
  int on = 0;
  *step = "getsockopt(TCP_REPAIR)";
  int err = baton__tcp_get(fd, TCP_REPAIR, &on, sizeof(on));
  if (err != 0) return err;
  *step = "repair_close(not in repair mode)";
  if (on != 1) return EINVAL;
  *step = "close";
  *gone = true;
  int rc = baton__close(fd);
  return rc < 0 ? -rc : 0;
}

// baton_repair_close(fd): closes a socket that is in repair mode. The kernel's tcp_disconnect then sends
// neither FIN nor RST and unhashes the socket, so the flow's next packets no longer find it (pitfall 1:
// close before steering). Refuses (EINVAL, fd still open and owned by the caller) a socket that is not in
// repair mode, since that close would send a FIN to the client. The fd is gone after a return.
static Napi::Value baton_repair_close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  const char* step = "";
  bool gone;
  int err = baton__repair_close(fd, &step, &gone);
  if (err != 0) return baton__throw_errno(env, step, err);
  return env.Undefined();
}

// baton_repair_off(fd, probe: bool): deselects the repair queue and leaves repair mode, on the dispatcher (serve locally after a failed
// migration) or on the agent (GO). probe: TCP_REPAIR_OFF sends a window probe, which makes the peer
// announce its window at once; false = TCP_REPAIR_OFF_NO_WP. Throws Error{errno, code, syscall}.
static Napi::Value baton_repair_off(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool probe = info[1].As<Napi::Boolean>().Value();
  int err = baton__tcp_set(fd, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
  if (err != 0) return baton__throw_errno(env, "setsockopt(TCP_REPAIR_QUEUE)", err);
  err = baton__tcp_set(fd, TCP_REPAIR, probe ? TCP_REPAIR_OFF : TCP_REPAIR_OFF_NO_WP);
  if (err != 0) return baton__throw_errno(env, "setsockopt(TCP_REPAIR)", err);
  return env.Undefined();
}

// baton_tcp_info(fd, out: Uint32Array(10)) -> 0 | -errno. out = [state, options, snd_wscale, rcv_wscale,
// snd_mss, rcv_mss, rtt_us, rto_us, total_retrans, snd_cwnd]: what a migration keeps or loses, for
// checks and for re-applying options after a restore.
static Napi::Value baton_tcp_info(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t* o = info[1].As<Napi::Uint32Array>().Data();
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return Napi::Number::New(info.Env(), -errno);
  uint32_t v[10] = {ti.tcpi_state, ti.tcpi_options, ti.tcpi_snd_wscale, ti.tcpi_rcv_wscale, ti.tcpi_snd_mss,
                    ti.tcpi_rcv_mss, ti.tcpi_rtt, ti.tcpi_rto, ti.tcpi_total_retrans, ti.tcpi_snd_cwnd};
  for (int i = 0; i < 10; i++) o[i] = v[i];
  return Napi::Number::New(info.Env(), 0);
}

void baton_repair_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_repair_dump", Napi::Function::New(env, baton_repair_dump, "baton_repair_dump"));
  exports.Set("baton_repair_close", Napi::Function::New(env, baton_repair_close, "baton_repair_close"));
  exports.Set("baton_repair_off", Napi::Function::New(env, baton_repair_off, "baton_repair_off"));
  exports.Set("baton_tcp_info", Napi::Function::New(env, baton_tcp_info, "baton_tcp_info"));
  exports.Set("BATON_REPAIR_FIELD_COUNT", Napi::Number::New(env, BATON_REPAIR_FIELD_COUNT));
}
