// The wire form of a dumped TCP state (a MIGRATE's state), written in C++ straight from a dump: moveOut
// (migrate_out.cc) returns the whole MIGRATE frame, so the dispatcher builds no TcpRepairState and encodes
// nothing in JS. The layout is DEFINED in src/protocol/migrate-state.ts (version 1, big-endian, the table at
// the top of that file): its decodeMigrateState reads what this file writes, and its encodeMigrateState is
// the other writer. Change neither alone: test/native/migrate-out.test.ts checks on a real dumped connection
// that this encoder and the TypeScript one give the same bytes.
#include <string.h>

#include "repair.h"

static uint8_t* baton__be16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
  return p + 2;
}

uint8_t* baton__state_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
  return p + 4;
}

size_t baton__state_bytes(uint32_t family, size_t rq_len, size_t sq_len) {
  return BATON_STATE_HEAD_BYTES + 2 * (family == 4 ? 4 : 16) + rq_len + sq_len;
}

// migrate-state.ts, offsets 0..59.
uint8_t* baton__state_head(uint8_t* p, const uint32_t* f, uint32_t rq_len, uint32_t sq_len) {
  p[0] = 0x42;  // magic "BM"
  p[1] = 0x4d;
  p[2] = BATON_STATE_VERSION;
  p[3] = static_cast<uint8_t>(f[BATON_REPAIR_FAMILY]);
  p[4] = static_cast<uint8_t>(f[BATON_REPAIR_OPTIONS]);
  p[5] = static_cast<uint8_t>(f[BATON_REPAIR_SND_WSCALE]);
  p[6] = static_cast<uint8_t>(f[BATON_REPAIR_RCV_WSCALE]);
  p[7] = 0;
  uint8_t* at = baton__be16(p + 8, f[BATON_REPAIR_MSS_CLAMP]);
  at = baton__be16(at, f[BATON_REPAIR_LOCAL_PORT]);
  at = baton__be16(at, f[BATON_REPAIR_PEER_PORT]);
  at = baton__be16(at, 0);
  static const int words[] = {BATON_REPAIR_TIMESTAMP, BATON_REPAIR_SND_WL1, BATON_REPAIR_SND_WND,
                              BATON_REPAIR_MAX_WINDOW, BATON_REPAIR_RCV_WND, BATON_REPAIR_RCV_WUP,
                              BATON_REPAIR_RCV_NXT, BATON_REPAIR_WRITE_SEQ, BATON_REPAIR_UNSENT};
  for (int w : words) at = baton__state_be32(at, f[w]);
  at = baton__state_be32(at, rq_len);
  return baton__state_be32(at, sq_len);
}

uint8_t* baton__state_ipv4(uint8_t* p, uint32_t addr) { return baton__state_be32(p, addr); }
