// nf_tables over a raw NETLINK_NETFILTER socket: set and map elements keyed by ipv4_addr . inet_service,
// added, replaced and deleted in one transaction (BATCH_BEGIN ... BATCH_END) with every message ACKed.
// No libnftnl/libmnl: the few messages needed are encoded by hand in nft_msg.cc.
#ifndef BATON_NFT_H
#define BATON_NFT_H

#include <stdint.h>

#include <string>
#include <vector>

#include <napi.h>

// One element operation, as src/native/binding.ts packs it (5 uint32 per element, BATON_NFT_STRIDE).
enum baton__nft_op { BATON_NFT_ADD = 1, BATON_NFT_DELETE = 2, BATON_NFT_REPLACE = 3 };
#define BATON_NFT_STRIDE 5        // [op | BATON_NFT_HAS_DATA, addr (host order), port, mark, timeoutMs]
#define BATON_NFT_HAS_DATA 0x100  // the set is a map: NEWSETELEM carries the u32 mark

struct baton__nft_target {
  uint8_t family;     // NFPROTO_IPV4 or NFPROTO_INET: the table's family
  std::string table;
  std::string set;
};

// nft_msg.cc: appends one netlink message to buf (all padding included). seq is the message's nlmsg_seq.
void baton__nft_batch(std::vector<char>* buf, uint16_t type, uint32_t seq);  // NFNL_MSG_BATCH_BEGIN/END
void baton__nft_elem(std::vector<char>* buf, uint16_t msg, uint32_t seq, const baton__nft_target& t,
                     const uint32_t* op);                                  // NEWSETELEM / DELSETELEM
void baton__nft_getset(std::vector<char>* buf, uint32_t seq, const baton__nft_target& t);

// nft.cc: the target as JS passes it, info[at .. at+2] = family, table, set (as baton_nft_elems takes them).
baton__nft_target baton__nft_args(const Napi::CallbackInfo& info, int at);
// nft.cc: one ACKed transaction of `count` elements (ops: BATON_NFT_STRIDE each) on a socket from
// baton_nft_open, all or nothing; seqs seq .. seq + 2*count + 1. results[i] = 0 or -errno of element i.
// Returns 0 (committed), the number of failed elements (> 0: nothing was applied), or -errno for the
// whole batch (send/recv, a rejected batch header, -EAGAIN: no answer within the socket's 1 s timeout).
int baton__nft_txn(int fd, uint32_t seq, const baton__nft_target& t, const uint32_t* ops, uint32_t count,
                   int32_t* results);

void baton_nft_init(Napi::Env env, Napi::Object exports);
void baton_netns_init(Napi::Env env, Napi::Object exports);

#endif
