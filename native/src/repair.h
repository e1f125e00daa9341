// TCP_REPAIR dump and restore of an established TCP socket (the `migrate` forwarding method's syscalls).
// The scalar part of a dump travels between C and JS in one Uint32Array laid out as below;
// src/native/repair.ts has the same table (REPAIR_FIELDS) and turns it into a TcpRepairState (stateOf).
// Policy (which state is acceptable, the timestamp slack) stays in TypeScript; so does the wire format's
// definition (src/protocol/migrate-state.ts), which repair_state.cc also writes, for moveOut's frame, and
// reads, for the agent's baton_repair_restore_wire.
#ifndef BATON_REPAIR_H
#define BATON_REPAIR_H

#include <napi.h>

enum baton__repair_field {
  BATON_REPAIR_FAMILY = 0,   // 4 or 6 (socket family of the dumped socket)
  BATON_REPAIR_LOCAL_PORT,
  BATON_REPAIR_PEER_PORT,
  BATON_REPAIR_OPTIONS,      // tcpi_options: TCPI_OPT_TIMESTAMPS 1, SACK 2, WSCALE 4
  BATON_REPAIR_SND_WSCALE,
  BATON_REPAIR_RCV_WSCALE,
  BATON_REPAIR_MSS_CLAMP,    // TCP_MAXSEG read in repair mode = rx_opt.mss_clamp
  BATON_REPAIR_TIMESTAMP,    // TCP_TIMESTAMP (bit 0: usec timestamps, kernel >= 6.7)
  BATON_REPAIR_SND_WL1,      // struct tcp_repair_window, in order
  BATON_REPAIR_SND_WND,
  BATON_REPAIR_MAX_WINDOW,
  BATON_REPAIR_RCV_WND,
  BATON_REPAIR_RCV_WUP,
  BATON_REPAIR_RCV_NXT,      // TCP_QUEUE_SEQ of the receive queue: the byte after its last one
  BATON_REPAIR_WRITE_SEQ,    // TCP_QUEUE_SEQ of the send queue: the byte after its last one
  BATON_REPAIR_UNSENT,       // SIOCOUTQNSD: the tail of the send queue never sent
  BATON_REPAIR_FIELD_COUNT
};

// repair_dump.cc: the dispatcher's half, baton_repair_dump/close's (baton_migrate_out has its own frame
// variant below).
// Puts fd in repair mode and dumps it: f (BATON_REPAIR_FIELD_COUNT) gets the scalars, out[0..3] = local,
// peer, recvQueue, sendQueue. Returns 0 (fd left in repair mode) or an errno with *step = the failed call;
// fd is then out of repair mode again and still the caller's.
int baton__repair_dump(Napi::Env env, int fd, uint32_t* f, Napi::Array out, const char** step);
// The same dump written straight into a new MIGRATE frame (moveOut, migrate_out.cc): *frame = one Buffer of
// prefix (the frame up to its state, src/protocol/migrate-control.ts encodeMigratePrefix) + the state's wire
// form (repair_state.cc), the queues peeked straight into it, its first 4 bytes the big-endian length of
// the rest. The addresses are the caller's (IPv4, host order: the flow's ends as the nft key and the
// listener know them), not read from the socket; f (scratch, BATON_REPAIR_FIELD_COUNT) gets the scalars.
// Returns 0 (fd in repair mode) or an errno with *step, fd out of repair mode again, as baton__repair_dump.
struct baton__ends4 {
  uint32_t local_addr, peer_addr;
  uint32_t local_port, peer_port;
};
int baton__repair_dump_frame(Napi::Env env, int fd, uint32_t* f, const uint8_t* prefix, size_t prefix_len,
                             const baton__ends4& ends, Napi::Value* frame, const char** step);
// Leaves repair mode, best effort (TCP_REPAIR_QUEUE off, TCP_REPAIR_OFF with a window probe).
void baton__repair_abort(int fd);
// close(2) of a socket in repair mode: no FIN, no RST. Returns 0 or an errno with *step; *gone says whether
// the fd is closed (a failed close(2) still releases it) or still open and the caller's (not in repair mode).
int baton__repair_close(int fd, const char** step, bool* gone);

// repair_state.cc: the state's wire form, laid out by src/protocol/migrate-state.ts (version 1, big-endian).
enum { BATON_STATE_VERSION = 1, BATON_STATE_HEAD_BYTES = 60 };
// Bytes of the wire form of a family-4|6 state with queues of these lengths.
size_t baton__state_bytes(uint32_t family, size_t rq_len, size_t sq_len);
// Writes the 60-byte head (magic, version, the scalars of f, the queue lengths); returns p + 60, where the
// local then the peer address go, then the receive and the send queue's bytes.
uint8_t* baton__state_head(uint8_t* p, const uint32_t* f, uint32_t rq_len, uint32_t sq_len);
// An IPv4 address (host order) as its 4 wire bytes; returns p + 4.
uint8_t* baton__state_ipv4(uint8_t* p, uint32_t addr);
// v big-endian at p; returns p + 4.
uint8_t* baton__state_be32(uint8_t* p, uint32_t v);
// A larger queue is refused (migrate-state.ts MAX_QUEUE_BYTES).
enum { BATON_STATE_MAX_QUEUE = 64 * 1024 * 1024, BATON_STATE_WHY_BYTES = 96 };
// A wire state as baton__state_decode reads it: the scalars in f (this file's order, as on the wire, the
// timestamp as dumped), and pointers into the decoded buffer for the addresses (4 or 16 bytes, network
// order, by f[BATON_REPAIR_FAMILY]) and the two queues. Nothing is copied: valid while the buffer is.
struct baton__state_view {
  uint32_t f[BATON_REPAIR_FIELD_COUNT];
  const uint8_t* local;
  const uint8_t* peer;
  const uint8_t* rq;
  size_t rq_len;
  const uint8_t* sq;
  size_t sq_len;
};
// Checks p[0..len) as decodeMigrateState does, the same checks in the same order (the whole of len must be
// the state: nothing after it). Returns true with *v filled, or false with decodeMigrateState's reason in
// why (BATON_STATE_WHY_BYTES is enough for any of them).
bool baton__state_decode(const uint8_t* p, size_t len, baton__state_view* v, char* why, size_t why_len);

// repair_dump.cc / repair_restore.cc / migrate_out.cc
void baton_repair_init(Napi::Env env, Napi::Object exports);
void baton_repair_restore_init(Napi::Env env, Napi::Object exports);
void baton_migrate_out_init(Napi::Env env, Napi::Object exports);

#endif
