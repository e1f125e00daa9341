// The dispatcher's half of a migration in one addon call: freeze the flow, dump its socket, close it in
// repair mode, steer the flow. As four calls from JS (nft add, repairDump, repairClose, nft replace) the
// steps cost about 19 + 31 + 21 µs with JS between them, against a 60 µs budget for the whole migration;
// here nothing returns to JS in between. The order is the research's (tcp-repair-migration.md, "The
// sequence that works"): the freeze must be in force before the dump reads the queues (a packet arriving
// mid-dump makes them disagree), and the close must come before the steer (pitfall 1: while the old socket
// exists, early demux hands it the flow's packets whatever the mark routes them to).
// Each nft step is one ACKed transaction on the NftSet handle's own socket (baton__nft_txn): nfnetlink runs
// a batch inside sendmsg(), so once its ACK is read the element is committed and the next step may rely
// on it. Needs CAP_NET_ADMIN in the socket's and the set's network namespaces.
#include <errno.h>

#include "baton.h"
#include "nft.h"
#include "repair.h"

// Offsets of each transaction's sequence numbers from the call's seq: one element takes at most 4
// (BATCH_BEGIN, DELSETELEM, NEWSETELEM, BATCH_END), so answers of one step never match another's.
enum baton__move_seq {
  BATON_MOVE_FREEZE = 0,     // add
  BATON_MOVE_TAKEOVER = 4,   // replace, when the add met a stale element (EEXIST)
  BATON_MOVE_UNFREEZE = 8,   // delete, when the dump failed
  BATON_MOVE_STEER = 12,     // replace
  BATON_MOVE_SEQS = 16       // src/native/nft.ts MOVE_OUT_SEQS
};

// One element of a map in one transaction: 0 or -errno (the element's, or the whole batch's).
static int baton__move_elem(int nl, uint32_t seq, const baton__nft_target& t, uint32_t kind, const uint32_t* key,
                            uint32_t mark, uint32_t timeout_ms) {
  uint32_t op[BATON_NFT_STRIDE] = {kind | BATON_NFT_HAS_DATA, key[0], key[1], mark, timeout_ms};
  int32_t result = 0;
  int rc = baton__nft_txn(nl, seq, t, op, 1, &result);
  return rc > 0 ? result : rc;
}

// baton_migrate_out(nlFd, seq, family, table, set, addr, port, freezeMark, freezeTimeoutMs, steerMark,
//                   steerTimeoutMs, sockFd, fields: Uint32Array(BATON_REPAIR_FIELD_COUNT))
//   -> [local, peer, recvQueue, sendQueue, steer: 0 | -errno]
// nlFd: a baton_nft_open socket on the map (family, table, set); addr (host order) . port: the client's
// end of sockFd's flow. Uses seqs seq .. seq + BATON_MOVE_SEQS - 1.
//  1. freeze: adds addr . port : freezeMark (timeout freezeTimeoutMs; 0 = the map's default). An element
//     already there with another mark (EEXIST: a stale one of an earlier connection from the same client
//     port) is taken over by a replace. Fails: throws Error{errno, code, syscall "nft add (freeze)" or
//     "nft replace (freeze)"}; sockFd is untouched.
//  2. dump as baton_repair_dump, then close in repair mode as baton_repair_close (no FIN, no RST). The dump
//     fails: sockFd is out of repair mode again, open and the caller's; the freeze element is deleted; throws
//     Error{errno, code, syscall = the failed step}, with unfreezeErrno (> 0) if that delete failed too
//     (then the element expires after freezeTimeoutMs). A failing close(2) still releases the fd, so from
//     here on the socket is gone.
//  3. steer: replaces the element with steerMark (timeout steerTimeoutMs). Never throws: its 0 or -errno is
//     the array's last slot, and with the dump the caller can still restore the connection here.
static Napi::Value baton_migrate_out(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int nl = info[0].As<Napi::Number>().Int32Value();
  uint32_t seq = info[1].As<Napi::Number>().Uint32Value();
  baton__nft_target t = baton__nft_args(info, 2);
  uint32_t key[2] = {info[5].As<Napi::Number>().Uint32Value(), info[6].As<Napi::Number>().Uint32Value()};
  uint32_t freeze_mark = info[7].As<Napi::Number>().Uint32Value();
  uint32_t freeze_ms = info[8].As<Napi::Number>().Uint32Value();
  uint32_t steer_mark = info[9].As<Napi::Number>().Uint32Value();
  uint32_t steer_ms = info[10].As<Napi::Number>().Uint32Value();
  int fd = info[11].As<Napi::Number>().Int32Value();
  uint32_t* f = info[12].As<Napi::Uint32Array>().Data();

  const char* step = "nft add (freeze)";
  int rc = baton__move_elem(nl, seq + BATON_MOVE_FREEZE, t, BATON_NFT_ADD, key, freeze_mark, freeze_ms);
  if (rc == -EEXIST) {
    step = "nft replace (freeze)";
    rc = baton__move_elem(nl, seq + BATON_MOVE_TAKEOVER, t, BATON_NFT_REPLACE, key, freeze_mark, freeze_ms);
  }
  if (rc != 0) return baton__throw_errno(env, step, -rc);

  Napi::Array out = Napi::Array::New(env, 5);
  int err = baton__repair_dump(env, fd, f, out, &step);
  bool gone = false;
  if (err == 0) {
    err = baton__repair_close(fd, &step, &gone);
    // Refused (the socket is not in repair mode, which the dump just set): as a failed dump.
    if (err != 0 && !gone) baton__repair_abort(fd);
  }
  if (err != 0 && !gone) {
    // The caller serves the connection here: let the client's packets through again. ENOENT: the element
    // expired meanwhile, which is as good.
    int un = baton__move_elem(nl, seq + BATON_MOVE_UNFREEZE, t, BATON_NFT_DELETE, key, 0, 0);
    baton__throw_errno(env, step, err);
    if (un != 0 && un != -ENOENT) {
      Napi::Error e = env.GetAndClearPendingException();
      e.Set("unfreezeErrno", Napi::Number::New(env, -un));
      e.ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  rc = baton__move_elem(nl, seq + BATON_MOVE_STEER, t, BATON_NFT_REPLACE, key, steer_mark, steer_ms);
  out.Set(4u, Napi::Number::New(env, rc));
  return out;
}

void baton_migrate_out_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_migrate_out", Napi::Function::New(env, baton_migrate_out, "baton_migrate_out"));
}
