// The netlink encoder for nft.cc: batch delimiters, GETSET, and one NEWSETELEM/DELSETELEM per element.
// Layout of an element message (netlink attributes are 4-byte aligned, nests carry NLA_F_NESTED):
//   nlmsghdr | nfgenmsg{family, v0, res_id 0}
//   NFTA_SET_ELEM_LIST_TABLE "table\0"   NFTA_SET_ELEM_LIST_SET "set\0"
//   NFTA_SET_ELEM_LIST_ELEMENTS { NFTA_LIST_ELEM {
//     NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE: addr(4, network order) port(2, network order) pad(2) }
//     NFTA_SET_ELEM_TIMEOUT: u64 milliseconds, big-endian (only when > 0, NEWSETELEM only)
//     NFTA_SET_ELEM_DATA { NFTA_DATA_VALUE: u32 mark, host order } (maps, NEWSETELEM only) } }
// The key is the concatenation ipv4_addr . inet_service: each field is padded to 4 bytes.
#include <arpa/inet.h>
#include <endian.h>
#include <string.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "nft.h"

static size_t baton__put(std::vector<char>* buf, const void* data, size_t len) {
  size_t at = buf->size();
  buf->resize(at + NLMSG_ALIGN(len), 0);
  if (len > 0) memcpy(buf->data() + at, data, len);
  return at;
}

static void baton__attr(std::vector<char>* buf, uint16_t type, const void* data, size_t len) {
  struct nlattr a = {static_cast<uint16_t>(NLA_HDRLEN + len), type};
  baton__put(buf, &a, sizeof(a));
  baton__put(buf, data, len);
}

static size_t baton__nest_begin(std::vector<char>* buf, uint16_t type) {
  struct nlattr a = {0, static_cast<uint16_t>(type | NLA_F_NESTED)};
  return baton__put(buf, &a, sizeof(a));
}

static void baton__nest_end(std::vector<char>* buf, size_t at) {
  uint16_t len = static_cast<uint16_t>(buf->size() - at);
  memcpy(buf->data() + at, &len, sizeof(len));
}

static size_t baton__msg_begin(std::vector<char>* buf, uint16_t type, uint16_t flags, uint32_t seq,
                               uint8_t family, uint16_t res_id) {
  struct nlmsghdr h = {0, type, flags, seq, 0};
  size_t at = baton__put(buf, &h, sizeof(h));
  struct nfgenmsg g = {family, NFNETLINK_V0, htons(res_id)};
  baton__put(buf, &g, sizeof(g));
  return at;
}

static void baton__msg_end(std::vector<char>* buf, size_t at) {
  uint32_t len = static_cast<uint32_t>(buf->size() - at);
  memcpy(buf->data() + at, &len, sizeof(len));
}

void baton__nft_batch(std::vector<char>* buf, uint16_t type, uint32_t seq) {
  size_t at = baton__msg_begin(buf, type, NLM_F_REQUEST, seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  baton__msg_end(buf, at);
}

static uint16_t baton__nft_type(uint16_t msg) {
  return static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | msg);
}

void baton__nft_elem(std::vector<char>* buf, uint16_t msg, uint32_t seq, const baton__nft_target& t,
                     const uint32_t* op) {
  uint16_t flags = NLM_F_REQUEST | NLM_F_ACK | (msg == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0);
  size_t at = baton__msg_begin(buf, baton__nft_type(msg), flags, seq, t.family, 0);
  baton__attr(buf, NFTA_SET_ELEM_LIST_TABLE, t.table.c_str(), t.table.size() + 1);
  baton__attr(buf, NFTA_SET_ELEM_LIST_SET, t.set.c_str(), t.set.size() + 1);
  size_t list = baton__nest_begin(buf, NFTA_SET_ELEM_LIST_ELEMENTS);
  size_t elem = baton__nest_begin(buf, NFTA_LIST_ELEM);
  size_t key = baton__nest_begin(buf, NFTA_SET_ELEM_KEY);
  uint8_t k[8] = {0};
  uint32_t addr = htonl(op[1]);
  uint16_t port = htons(static_cast<uint16_t>(op[2]));
  memcpy(k, &addr, 4);
  memcpy(k + 4, &port, 2);
  baton__attr(buf, NFTA_DATA_VALUE, k, sizeof(k));
  baton__nest_end(buf, key);
  if (msg == NFT_MSG_NEWSETELEM) {
    if (op[4] > 0) {
      uint64_t ms = htobe64(static_cast<uint64_t>(op[4]));
      baton__attr(buf, NFTA_SET_ELEM_TIMEOUT, &ms, sizeof(ms));
    }
    if (op[0] & BATON_NFT_HAS_DATA) {
      size_t data = baton__nest_begin(buf, NFTA_SET_ELEM_DATA);
      uint32_t mark = op[3];
      baton__attr(buf, NFTA_DATA_VALUE, &mark, sizeof(mark));
      baton__nest_end(buf, data);
    }
  }
  baton__nest_end(buf, elem);
  baton__nest_end(buf, list);
  baton__msg_end(buf, at);
}

void baton__nft_getset(std::vector<char>* buf, uint32_t seq, const baton__nft_target& t) {
  size_t at = baton__msg_begin(buf, baton__nft_type(NFT_MSG_GETSET), NLM_F_REQUEST | NLM_F_ACK, seq,
                               t.family, 0);
  baton__attr(buf, NFTA_SET_TABLE, t.table.c_str(), t.table.size() + 1);
  baton__attr(buf, NFTA_SET_NAME, t.set.c_str(), t.set.size() + 1);
  baton__msg_end(buf, at);
}
