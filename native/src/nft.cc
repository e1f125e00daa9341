// The nf_tables netlink client: one NETLINK_NETFILTER socket per handle (src/native/binding.ts NftSet),
// element batches sent as one transaction, every message ACKed and the ACKs matched to elements by
// sequence number. nfnetlink runs a batch synchronously inside sendmsg(), so the answers are queued by the
// time it returns; SO_RCVTIMEO (1 s) only guards against a kernel that would not answer.
// Needs CAP_NET_ADMIN in the network namespace the socket was created in (EPERM per message otherwise).
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "baton.h"
#include "nft.h"

// baton_nft_open() -> fd: a raw NETLINK_NETFILTER socket (CLOEXEC, blocking with a 1 s receive timeout,
// NETLINK_CAP_ACK so errors do not echo whole messages). The caller owns it; close with baton_fd_close.
static Napi::Value baton_nft_open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return baton__throw_errno(env, "socket(NETLINK_NETFILTER)", errno);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof(sa));
  sa.nl_family = AF_NETLINK;
  struct timeval tv = {1, 0};
  int one = 1, buf = 1 << 20;
  const char* step = nullptr;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) != 0) step = "bind(netlink)";
  else if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) step = "setsockopt(SO_RCVTIMEO)";
  else if (setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)) != 0) step = "setsockopt(NETLINK_CAP_ACK)";
  else if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf)) != 0) step = "setsockopt(SO_SNDBUF)";
  else if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf)) != 0) step = "setsockopt(SO_RCVBUF)";
  if (step != nullptr) {
    int err = errno;
    baton__close(fd);
    return baton__throw_errno(env, step, err);
  }
  return Napi::Number::New(env, fd);
}

static int baton__nl_send(int fd, const std::vector<char>& buf) {
  struct sockaddr_nl to;
  memset(&to, 0, sizeof(to));
  to.nl_family = AF_NETLINK;
  ssize_t n;
  do n = sendto(fd, buf.data(), buf.size(), 0, reinterpret_cast<struct sockaddr*>(&to), sizeof(to));
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  return static_cast<size_t>(n) == buf.size() ? 0 : -EMSGSIZE;
}

// Reads answers until `pending` ACKs for seqs in (base, base + count] arrived. on_msg(seq, nlh) sees every
// message; errs[seq - base - 1] gets each NLMSG_ERROR's -errno (0 = ACK). An error on `base` or `base + count + 1`
// (the batch header or trailer) ends the wait: returns that -errno. Else 0, or -errno of recv
// (-EAGAIN = timed out).
template <typename F>
static int baton__nl_acks(int fd, uint32_t base, uint32_t count, int* errs, F on_msg) {
  alignas(struct nlmsghdr) char buf[16384];
  uint32_t pending = count;
  while (pending > 0) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    int len = static_cast<int>(n);
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type != NLMSG_ERROR) { on_msg(h); continue; }
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(int))) return -EPROTO;
      int err = *static_cast<int*>(NLMSG_DATA(h));
      uint32_t i = h->nlmsg_seq - base - 1;
      if (h->nlmsg_seq == base || i == count) return err != 0 ? err : -EPROTO;  // batch BEGIN or END
      if (i > count) continue;  // a stale answer to an earlier, timed-out request
      errs[i] = err;
      pending--;
    }
  }
  return 0;
}

baton__nft_target baton__nft_args(const Napi::CallbackInfo& info, int at) {
  return {static_cast<uint8_t>(info[at].As<Napi::Number>().Uint32Value()),
          info[at + 1].As<Napi::String>().Utf8Value(), info[at + 2].As<Napi::String>().Utf8Value()};
}

// One transaction (nft.h): BATCH_BEGIN(seq), then per element a NEWSETELEM, a DELSETELEM, or both
// (replace: delete then add, atomically), then BATCH_END. Shared by baton_nft_elems and migrate_out.cc.
int baton__nft_txn(int fd, uint32_t seq, const baton__nft_target& t, const uint32_t* ops, uint32_t count,
                   int32_t* results) {
  std::vector<char> buf;
  std::vector<uint32_t> owner;  // message index -> element index
  buf.reserve(64 + count * 256);
  baton__nft_batch(&buf, NFNL_MSG_BATCH_BEGIN, seq);
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t* op = ops + i * BATON_NFT_STRIDE;
    uint32_t kind = op[0] & 0xff;
    results[i] = 0;
    if (kind == BATON_NFT_DELETE || kind == BATON_NFT_REPLACE) {
      owner.push_back(i);
      baton__nft_elem(&buf, NFT_MSG_DELSETELEM, seq + static_cast<uint32_t>(owner.size()), t, op);
    }
    if (kind == BATON_NFT_ADD || kind == BATON_NFT_REPLACE) {
      owner.push_back(i);
      baton__nft_elem(&buf, NFT_MSG_NEWSETELEM, seq + static_cast<uint32_t>(owner.size()), t, op);
    }
  }
  uint32_t nmsg = static_cast<uint32_t>(owner.size());
  baton__nft_batch(&buf, NFNL_MSG_BATCH_END, seq + nmsg + 1);
  int rc = baton__nl_send(fd, buf);
  if (rc < 0) return rc;
  std::vector<int> errs(nmsg, 0);
  rc = baton__nl_acks(fd, seq, nmsg, errs.data(), [](struct nlmsghdr*) {});
  if (rc < 0) return rc;
  int failed = 0;
  for (uint32_t m = 0; m < nmsg; m++) {
    int32_t* r = &results[owner[m]];
    if (errs[m] != 0 && *r == 0) { *r = errs[m]; failed++; }
  }
  return failed;
}

// baton_nft_elems(fd, seq, family, table, set, ops: Uint32Array, count, results: Int32Array) -> int
// baton__nft_txn on the handle's socket (ops: nft.h layout). Uses seqs seq .. seq + 2*count + 1.
// results[i] = 0 or -errno for element i (its first failed message). Returns 0 (committed), the number of
// failed elements (> 0: nothing was applied, the batch is all or nothing), or -errno for the whole batch
// (send/recv failure, a rejected batch header, -EAGAIN if no answer within 1 s).
static Napi::Value baton_nft_elems(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t seq = info[1].As<Napi::Number>().Uint32Value();
  baton__nft_target t = baton__nft_args(info, 2);
  const uint32_t* ops = info[5].As<Napi::Uint32Array>().Data();
  uint32_t count = info[6].As<Napi::Number>().Uint32Value();
  int32_t* results = info[7].As<Napi::Int32Array>().Data();
  return Napi::Number::New(env, baton__nft_txn(fd, seq, t, ops, count, results));
}

// Reads NFTA_SET_FLAGS, NFTA_SET_KEY_LEN and NFTA_SET_DATA_LEN (u32, network order) of a NEWSET answer.
static void baton__nft_set_attrs(struct nlmsghdr* h, uint32_t* out) {
  size_t off = NLMSG_ALIGN(sizeof(struct nfgenmsg));
  size_t end = h->nlmsg_len - NLMSG_HDRLEN;
  char* p = static_cast<char*>(NLMSG_DATA(h));
  while (off + NLA_HDRLEN <= end) {
    struct nlattr* a = reinterpret_cast<struct nlattr*>(p + off);
    if (a->nla_len < NLA_HDRLEN || off + a->nla_len > end) break;
    uint16_t type = a->nla_type & NLA_TYPE_MASK;
    int slot = type == NFTA_SET_FLAGS ? 0 : type == NFTA_SET_KEY_LEN ? 1 : type == NFTA_SET_DATA_LEN ? 2 : -1;
    if (slot >= 0 && a->nla_len >= NLA_HDRLEN + 4) {
      uint32_t v;
      memcpy(&v, p + off + NLA_HDRLEN, 4);
      out[slot] = ntohl(v);
    }
    off += NLA_ALIGN(a->nla_len);
  }
  out[3] = 1;
}

// baton_nft_set_info(fd, seq, family, table, set, out: Uint32Array(4)) -> 0 | -errno
// GETSET: out = [flags (NFT_SET_MAP 0x8, NFT_SET_TIMEOUT 0x10, ...), key length, data length, found].
// -ENOENT: no such table or set in this network namespace. Uses seqs seq and seq + 1.
static Napi::Value baton_nft_set_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t seq = info[1].As<Napi::Number>().Uint32Value();
  baton__nft_target t = baton__nft_args(info, 2);
  uint32_t* out = info[5].As<Napi::Uint32Array>().Data();
  memset(out, 0, 4 * sizeof(uint32_t));
  std::vector<char> buf;
  baton__nft_getset(&buf, seq + 1, t);
  int rc = baton__nl_send(fd, buf);
  int err = 0;
  // The request is seq + 1 so that its own ACK or error lands in errs[0] (base = seq is never sent).
  if (rc == 0) {
    rc = baton__nl_acks(fd, seq, 1, &err, [&](struct nlmsghdr* h) {
      if (h->nlmsg_seq == seq + 1 && (h->nlmsg_type & 0xff) == NFT_MSG_NEWSET) baton__nft_set_attrs(h, out);
    });
  }
  return Napi::Number::New(env, rc < 0 ? rc : err);
}

void baton_nft_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_nft_open", Napi::Function::New(env, baton_nft_open, "baton_nft_open"));
  exports.Set("baton_nft_elems", Napi::Function::New(env, baton_nft_elems, "baton_nft_elems"));
  exports.Set("baton_nft_set_info", Napi::Function::New(env, baton_nft_set_info, "baton_nft_set_info"));
}
