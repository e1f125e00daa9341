// The wire form of a dumped TCP state (a MIGRATE's state) in C++, both ways. Written straight from a dump:
// moveOut (migrate_out.cc) returns the whole MIGRATE frame, so the dispatcher builds no TcpRepairState and
// encodes nothing in JS. Read by the agent's baton_repair_restore_wire (repair_restore.cc), which restores
// from the MIGRATE's bytes without a TcpRepairState either. The layout is DEFINED in
// src/protocol/migrate-state.ts (version 1, big-endian, the table at the top of that file): its
// decodeMigrateState reads what this file writes and checks what baton__state_decode checks (the same
// checks, order and reasons), and its encodeMigrateState is the other writer. Change neither alone:
// test/native/migrate-out.test.ts checks on a real dumped connection that this encoder and the TypeScript
// one give the same bytes, test/native/repair-wire.test.ts that the two decoders refuse the same buffers.
#include <stdarg.h>
#include <stdio.h>
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

static uint32_t baton__get16(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 8 | p[1]; }

static uint32_t baton__get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// The reason into why (always NUL-terminated, cut to why_len); false, for `return baton__bad(...)`.
__attribute__((format(printf, 3, 4))) static bool baton__bad(char* why, size_t why_len, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, why_len, fmt, ap);
  va_end(ap);
  return false;
}

// decodeMigrateState, check for check (its `bad(...)` texts, in its order).
bool baton__state_decode(const uint8_t* p, size_t len, baton__state_view* v, char* why, size_t why_len) {
  if (len < 4) return baton__bad(why, why_len, "truncated: no header");
  if (p[0] != 0x42 || p[1] != 0x4d) return baton__bad(why, why_len, "not a migrate state (bad magic)");
  if (p[2] != BATON_STATE_VERSION) {
    return baton__bad(why, why_len, "unsupported version %u (this end reads %u)", static_cast<unsigned>(p[2]),
                      static_cast<unsigned>(BATON_STATE_VERSION));
  }
  if (len < BATON_STATE_HEAD_BYTES) {
    return baton__bad(why, why_len, "truncated: %zu bytes, header is %u", len, static_cast<unsigned>(BATON_STATE_HEAD_BYTES));
  }
  uint32_t family = p[3];
  if (family != 4 && family != 6) return baton__bad(why, why_len, "bad family %u", family);
  if (p[7] != 0 || p[14] != 0 || p[15] != 0) return baton__bad(why, why_len, "reserved bytes are not 0");
  if (p[5] > 14 || p[6] > 14) return baton__bad(why, why_len, "window scale above 14");
  uint32_t local_port = baton__get16(p + 10), peer_port = baton__get16(p + 12);
  if (local_port == 0 || peer_port == 0) return baton__bad(why, why_len, "port 0");
  uint32_t unsent = baton__get32(p + 48), rq_len = baton__get32(p + 52), sq_len = baton__get32(p + 56);
  if (rq_len > BATON_STATE_MAX_QUEUE || sq_len > BATON_STATE_MAX_QUEUE) {
    return baton__bad(why, why_len, "queue larger than MAX_QUEUE_BYTES");
  }
  if (unsent > sq_len) return baton__bad(why, why_len, "unsentBytes larger than the send queue");
  size_t alen = family == 4 ? 4 : 16;
  size_t total = baton__state_bytes(family, rq_len, sq_len);
  if (len < total) return baton__bad(why, why_len, "truncated: %zu bytes of %zu", len, total);
  if (len > total) return baton__bad(why, why_len, "%zu bytes after the state", len - total);

  uint32_t* f = v->f;
  f[BATON_REPAIR_FAMILY] = family;
  f[BATON_REPAIR_LOCAL_PORT] = local_port;
  f[BATON_REPAIR_PEER_PORT] = peer_port;
  f[BATON_REPAIR_OPTIONS] = p[4];
  f[BATON_REPAIR_SND_WSCALE] = p[5];
  f[BATON_REPAIR_RCV_WSCALE] = p[6];
  f[BATON_REPAIR_MSS_CLAMP] = baton__get16(p + 8);
  // Offsets 16..47, in the order of both the wire and repair.h: timestamp, the window's five, rcvNxt, writeSeq.
  static_assert(BATON_REPAIR_WRITE_SEQ == BATON_REPAIR_TIMESTAMP + 7, "repair.h: timestamp .. writeSeq in wire order");
  for (int i = 0; i < 8; i++) f[BATON_REPAIR_TIMESTAMP + i] = baton__get32(p + 16 + 4 * i);
  f[BATON_REPAIR_UNSENT] = unsent;
  const uint8_t* at = p + BATON_STATE_HEAD_BYTES;
  v->local = at;
  v->peer = at + alen;
  v->rq = at + 2 * alen;
  v->rq_len = rq_len;
  v->sq = v->rq + rq_len;
  v->sq_len = sq_len;
  return true;
}
