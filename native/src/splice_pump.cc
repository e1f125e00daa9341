// The relay thread's byte movers: both directions of an established connection (splice_conn.cc connects
// and ends it). Rules (research/handoff-mechanics.md, splice): EPOLLET; splice from a socket only into an
// empty pipe, because EAGAIN is ambiguous while the pipe could be full; shutdown(dst, SHUT_WR) after src EOF
// once the pipe drained; an error ends in Finish, which resets both sides.
// Small transfers (keep-alive requests and responses) go recv -> stack buffer -> send: 2 syscalls per
// direction per message, where splice needed 3 (in, out, and an EAGAIN probe). A short recv already says
// src's queue was empty, and a later arrival raises a new edge, so no probe follows (unless src's FIN was
// seen, whose edge is spent: then read on to EOF). A read that fills the buffer switches that direction to
// splice (bulk, pump until EAGAIN or a budget, then the connection goes on the ready list) until a splice
// returns less than the buffer. A partial send parks the rest in the direction's pipe, so nothing is held in
// user memory and the backpressure rule stays: src is not read while bytes wait for dst.
// Pipes: a direction holds one only while bytes are in it (taken from the pool when src is read, returned
// the moment it is empty), so an idle connection costs its two sockets and nothing else. When no pipe can
// be had (EMFILE/ENFILE), that pump copies through a stack buffer instead: peek, send, then consume what
// was sent, so unsent bytes stay in src's kernel queue and memory stays bounded (CopyDir).
#include <errno.h>
#include <fcntl.h>  // splice
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "baton.h"
#include "splice_relay.h"

namespace baton {

static const int kPumpRounds = 16;     // fill+drain rounds per direction per wakeup before yielding
static const size_t kCopyBuf = 16384;  // recv+send and copy-fallback stack buffer; a full one means bulk

// One direction until EAGAIN. Returns 0 (waiting), or -errno. *budget_left = false when it yielded.
// Whatever happened, an empty pipe goes back to the pool here; a pipe with bytes left stays with d (and on
// an error Finish closes it, never pools it).
int RelayCore::PumpDir(RelayDir* d, bool* budget_left) {
  int rc = PumpDirRounds(d, budget_left);
  if (d->queued == 0 && d->pipe.r >= 0) PipePut(&d->pipe, true);
  return rc;
}

int RelayCore::PumpDirRounds(RelayDir* d, bool* budget_left) {
  d->wait_out = false;
  for (int round = 0; round < kPumpRounds; round++) {
    while (d->queued > 0) {
      ssize_t n = splice(d->pipe.r, nullptr, d->dst, nullptr, d->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->queued -= static_cast<size_t>(n);
        d->bytes += static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return 0;
      return n < 0 ? -errno : -EPIPE;
    }
    if (d->eof) {
      if (!d->shut) {
        d->shut = true;
        // The last direction to end into the upstream (ours alone): Finish closes it right away and that
        // close sends the FIN (both receive queues are drained, so no RST). The client's description may
        // still be open in the caller, so the client always gets its shutdown.
        bool closing = d->dst_upstream && d->other->eof && d->other->queued == 0 && d->other->shut;
        if (!closing && shutdown(d->dst, SHUT_WR) < 0 && errno != ENOTCONN) return -errno;
      }
      return 0;
    }
    if (d->pipe.r < 0 && !PipeGet(&d->pipe)) {
      int rc = CopyDir(d);  // no pipe (EMFILE, ENFILE, ...): the connection lives on without one
      if (rc <= 0) return rc;
      continue;
    }
    if (!d->bulk) {
      int rc = ReadSend(d);  // small transfers: recv + send, 2 syscalls, no EAGAIN probe
      if (rc <= 0) return rc;
      continue;
    }
    if (d->watch != nullptr && !d->watch->res.until_close() && !d->watch->res.tunnel()) {
      int rc = SpliceDown(d);  // framed responses: peek heads and chunk lines, splice never past a body's end
      if (rc <= 0) return rc;
      continue;
    }
    ssize_t n = splice(d->src, nullptr, d->pipe.w, nullptr, static_cast<size_t>(d->pipe.cap),
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d->queued = static_cast<size_t>(n);
      if (static_cast<size_t>(n) < kCopyBuf) d->bulk = false;  // back to recv + send; its next read probes
    } else if (n == 0) {
      d->eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN) {
      return 0;  // the pipe is empty, so EAGAIN means the socket is
    } else {
      return -errno;
    }
  }
  *budget_left = false;
  return 0;
}

// The small-transfer path, one round, with d's (empty) pipe in hand: recv into a stack buffer, send it on.
// A read shorter than asked means src's queue was empty at that moment, and any later arrival raises a new
// EPOLLET edge, so no EAGAIN probe follows, unless the peer's FIN was seen (rdhup): the FIN's edge is
// already consumed, so read on to EOF. What dst does not take goes into the pipe (it is empty and holds at
// least the read, which is capped at its capacity) and is spliced on at dst's EPOLLOUT, so memory stays
// bounded and no byte is lost. A full buffer switches d to splice (bulk). 1 = go on, 0 = waiting, -errno.
int RelayCore::ReadSend(RelayDir* d) {
  char buf[kCopyBuf];
  size_t want = std::min(sizeof buf, static_cast<size_t>(d->pipe.cap));
  ssize_t n;
  do n = recv(d->src, buf, want, MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n == 0) {
    d->eof = true;
    return 1;
  }
  if (n < 0) return errno == EAGAIN ? 0 : -errno;
  size_t len = static_cast<size_t>(n);
  if (d->watch != nullptr) {  // a watched connection's responses: framed as they pass
    int64_t k = FrameDown(d, reinterpret_cast<const uint8_t*>(buf), len);
    if (k < 0) return static_cast<int>(k);
    len = static_cast<size_t>(k);  // shorter only when a move is due: the rest answers no request
  }
  size_t off = 0;
  while (off < len) {
    ssize_t m = send(d->dst, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (m > 0) { off += static_cast<size_t>(m); continue; }
    if (m < 0 && errno == EINTR) continue;
    if (m < 0 && errno == EAGAIN) break;
    return m < 0 ? -errno : -EPIPE;
  }
  d->bytes += off;
  if (off < len) {  // dst is full: park the rest in the pipe, splice it on at EPOLLOUT
    size_t rest = len - off;
    while (rest > 0) {
      ssize_t w = write(d->pipe.w, buf + off, rest);
      if (w > 0) { off += static_cast<size_t>(w); rest -= static_cast<size_t>(w); d->queued += static_cast<size_t>(w); continue; }
      if (w < 0 && errno == EINTR) continue;
      return w < 0 && errno != EAGAIN ? -errno : -ENOBUFS;  // cannot happen: the pipe was empty and holds want
    }
    d->bulk = true;  // dst pushes back: the rest of this burst goes by splice
    return 0;
  }
  if (len == want) {
    d->bulk = true;  // more may be queued: splice it
    return 1;
  }
  return d->rdhup ? 1 : 0;
}

// The no-pipe fallback, one round: peek up to kCopyBuf bytes, send what dst takes, then consume exactly
// that much from src. Unsent bytes never leave src's kernel queue, so nothing is buffered here and the
// backpressure rule is the same as with a pipe. 1 = progress (bytes moved or EOF seen), 0 = waiting (src
// empty, or dst full: wait_out, resumed by dst's EPOLLOUT), -errno. The next pump tries a pipe again.
int RelayCore::CopyDir(RelayDir* d) {
  char buf[kCopyBuf];
  ssize_t n;
  do n = recv(d->src, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n == 0) {
    d->eof = true;
    return 1;
  }
  if (n < 0) return errno == EAGAIN ? 0 : -errno;
  ssize_t m;
  do m = send(d->dst, buf, static_cast<size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT); while (m < 0 && errno == EINTR);
  if (m < 0) {
    if (errno != EAGAIN) return -errno;
    d->wait_out = true;
    return 0;
  }
  size_t left = static_cast<size_t>(m);
  while (left > 0) {  // the peeked bytes are still queued and only this thread reads src
    ssize_t k = recv(d->src, buf, left, MSG_DONTWAIT);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return k < 0 ? -errno : -EIO;
    left -= static_cast<size_t>(k);
  }
  d->bytes += static_cast<uint64_t>(m);
  if (d->watch != nullptr) {
    int64_t k = FrameDown(d, reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(m));
    if (k < 0) return static_cast<int>(k);
  }
  return 1;  // a short send: the next round's send gets EAGAIN and sets wait_out
}

void RelayCore::Pump(RelayConn* c, int dirs, int64_t now) {
  uint64_t before = c->up.bytes + c->down.bytes;
  bool budget_left = true;
  while ((dirs & kDirUp) != 0 && c->prefix_off < c->prefix.size()) {
    ssize_t n = send(c->upstream, c->prefix.data() + c->prefix_off, c->prefix.size() - c->prefix_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) { c->prefix_off += static_cast<size_t>(n); continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return Finish(c, n < 0 ? errno : EPIPE);
  }
  int rc = 0;
  if ((dirs & kDirUp) != 0 && c->prefix_off == c->prefix.size()) {
    rc = c->watch ? PumpUpWatched(c, &budget_left) : PumpDir(&c->up, &budget_left);
  }
  if (rc == 0 && (dirs & kDirDown) != 0) rc = PumpDir(&c->down, &budget_left);
  if (rc < 0) return Finish(c, -rc);
  if (c->up.bytes + c->down.bytes != before) c->deadline_ms = now;
  if (c->watch && AfterPump(c, now)) return;
  bool up_done = c->up.eof && c->up.queued == 0 && c->up.shut;
  bool down_done = c->down.eof && c->down.queued == 0 && c->down.shut;
  if (up_done && down_done) return Finish(c, 0);
  if (!budget_left && !c->in_ready) {
    c->in_ready = true;
    ready_.push_back(c);
  }
}

}  // namespace baton
