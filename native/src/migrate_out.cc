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
// What comes back is the MIGRATE frame itself: JS passes the frame's bytes up to the state, the dump is
// written after them (repair_dump.cc baton__repair_dump_frame, the layout by repair_state.cc), so no
// TcpRepairState is built and nothing is encoded in JS per connection (about 20 µs of a 60 µs budget). The
// state's two addresses are the caller's (the nft key and the listener it accepted on), not getsockname and
// getpeername, and the close skips repairClose's TCP_REPAIR check, which the dump just made true.
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

// baton_migrate_out(nlFd, seq, family, table, set, clientAddr, clientPort, localAddr, localPort, freezeMark,
//                   freezeTimeoutMs, steerMark, steerTimeoutMs, sockFd, prefix: Buffer, steer: Int32Array(1), keepOpen)
//   -> frame: Buffer
// nlFd: a baton_nft_open socket on the map (family, table, set); clientAddr (IPv4, host order) . clientPort:
// the client's end of sockFd's flow, the element's key; localAddr . localPort: the flow's other end (the VIP
// it was accepted on). Uses seqs seq .. seq + BATON_MOVE_SEQS - 1.
//  1. freeze: adds clientAddr . clientPort : freezeMark (timeout freezeTimeoutMs; 0 = the map's default). An
//     element already there with another mark (EEXIST: a stale one of an earlier connection from the same
//     client port) is taken over by a replace. Fails: throws Error{errno, code, syscall "nft add (freeze)" or
//     "nft replace (freeze)"}; sockFd is untouched.
//  2. dump as baton_repair_dump, written straight into the MIGRATE frame: prefix (the frame up to its state)
//     + the state's wire form (src/protocol/migrate-state.ts, repair_state.cc) with the two ends as given
//     (not read from the socket), the first 4 bytes patched to the length of the rest. Then close in repair
//     mode as baton_repair_close (no FIN, no RST), without its check. The dump fails: sockFd is out of repair mode again, open
//     and the caller's; the freeze element is deleted; throws Error{errno, code, syscall = the failed step},
//     with unfreezeErrno (> 0) if that delete failed too (then the element expires after freezeTimeoutMs).
//     A failing close(2) still releases the fd, so from here on the socket is gone.
//  3. steer: replaces the element with steerMark (timeout steerTimeoutMs). Never throws: steer[0] = its 0 or
//     -errno, and with the frame the caller can still restore the connection here. Skipped (steer[0] = 0)
//     when freezeMark and freezeTimeoutMs are steerMark and steerTimeoutMs: the caller steered first, step 1
//     being the steer. That is only safe where the flow's packets cannot reach the old socket while it is
//     dumped: early demux off (it would hand them to the socket whatever the mark routes them to) and the
//     mark routed to another host (src/forward/migrate.ts decides).
//  keepOpen (steering first only): sockFd is left open, in repair mode, for the caller to close once its
//  MIGRATE is sent (closing a socket in repair mode sends nothing): with early demux off nothing reaches it
//  after the steer, so its close need not wait in front of the MIGRATE. Refused (EINVAL) with a freeze, where
//  the close must come before the steer (pitfall 1).
static Napi::Value baton_migrate_out(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int nl = info[0].As<Napi::Number>().Int32Value();
  uint32_t seq = info[1].As<Napi::Number>().Uint32Value();
  baton__nft_target t = baton__nft_args(info, 2);
  uint32_t key[2] = {info[5].As<Napi::Number>().Uint32Value(), info[6].As<Napi::Number>().Uint32Value()};
  baton__ends4 ends = {info[7].As<Napi::Number>().Uint32Value(), key[0], info[8].As<Napi::Number>().Uint32Value(),
                       key[1]};
  uint32_t freeze_mark = info[9].As<Napi::Number>().Uint32Value();
  uint32_t freeze_ms = info[10].As<Napi::Number>().Uint32Value();
  uint32_t steer_mark = info[11].As<Napi::Number>().Uint32Value();
  uint32_t steer_ms = info[12].As<Napi::Number>().Uint32Value();
  int fd = info[13].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> prefix = info[14].As<Napi::Buffer<uint8_t>>();
  int32_t* steer = info[15].As<Napi::Int32Array>().Data();
  bool keep_open = info[16].As<Napi::Boolean>().Value();
  bool steer_first = freeze_mark == steer_mark && freeze_ms == steer_ms;
  if (keep_open && !steer_first) return baton__throw_errno(env, "migrate_out(keepOpen with a freeze)", EINVAL);

  const char* step = "nft add (freeze)";
  int rc = baton__move_elem(nl, seq + BATON_MOVE_FREEZE, t, BATON_NFT_ADD, key, freeze_mark, freeze_ms);
  if (rc == -EEXIST) {
    step = "nft replace (freeze)";
    rc = baton__move_elem(nl, seq + BATON_MOVE_TAKEOVER, t, BATON_NFT_REPLACE, key, freeze_mark, freeze_ms);
  }
  if (rc != 0) return baton__throw_errno(env, step, -rc);

  uint32_t f[BATON_REPAIR_FIELD_COUNT];
  Napi::Value frame;
  int err = baton__repair_dump_frame(env, fd, f, prefix.Data(), prefix.Length(), ends, &frame, &step);
  if (err != 0) {
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
  // The close of baton_repair_close, without its check: the dump just put the socket in repair mode and left
  // it there, so reading TCP_REPAIR back would only say so. No FIN, no RST; a failing close(2) still releases
  // the fd, and the socket is gone either way.
  if (!keep_open) baton__close(fd);

  steer[0] = steer_first ? 0 : baton__move_elem(nl, seq + BATON_MOVE_STEER, t, BATON_NFT_REPLACE, key, steer_mark, steer_ms);
  return frame;
}

void baton_migrate_out_init(Napi::Env env, Napi::Object exports) {
  exports.Set("baton_migrate_out", Napi::Function::New(env, baton_migrate_out, "baton_migrate_out"));
}
