// TCP_REPAIR dump and restore of an established TCP socket (the `migrate` forwarding method's syscalls).
// The scalar part of a dump travels between C and JS in one Uint32Array laid out as below;
// src/native/repair.ts has the same table (REPAIR_FIELDS) and turns it into a TcpRepairState (stateOf).
// Policy (which state is acceptable, the timestamp slack, the wire format) stays in TypeScript.
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

// repair_dump.cc: the dispatcher's half, shared by baton_repair_dump/close and baton_migrate_out.
// Puts fd in repair mode and dumps it: f (BATON_REPAIR_FIELD_COUNT) gets the scalars, out[0..3] = local,
// peer, recvQueue, sendQueue. Returns 0 (fd left in repair mode) or an errno with *step = the failed call;
// fd is then out of repair mode again and still the caller's.
int baton__repair_dump(Napi::Env env, int fd, uint32_t* f, Napi::Array out, const char** step);
// Leaves repair mode, best effort (TCP_REPAIR_QUEUE off, TCP_REPAIR_OFF with a window probe).
void baton__repair_abort(int fd);
// close(2) of a socket in repair mode: no FIN, no RST. Returns 0 or an errno with *step; *gone says whether
// the fd is closed (a failed close(2) still releases it) or still open and the caller's (not in repair mode).
int baton__repair_close(int fd, const char** step, bool* gone);

// repair_dump.cc / repair_restore.cc / migrate_out.cc
void baton_repair_init(Napi::Env env, Napi::Object exports);
void baton_repair_restore_init(Napi::Env env, Napi::Object exports);
void baton_migrate_out_init(Napi::Env env, Napi::Object exports);

#endif
