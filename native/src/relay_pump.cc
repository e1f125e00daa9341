// The relay thread's per-connection work: native upstream connect, then both directions relayed.
// Rules (research/handoff-mechanics.md, splice): EPOLLET; splice from a socket only into an empty pipe,
// because EAGAIN is ambiguous while the pipe could be full; shutdown(dst, SHUT_WR) after src EOF once the
// pipe drained; errors reset both sides (SO_LINGER{1,0}); the client fd is a dup whose open file description
// is shared with the caller's fd, so it gets an explicit EPOLL_CTL_DEL before close.
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "relay.h"

namespace baton {

static const int kPumpRounds = 16;     // fill+drain rounds per direction per wakeup before yielding
static const size_t kCopyBuf = 16384;  // recv+send and copy-fallback stack buffer; a full one means bulk

static void baton__reset_close(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

// Nonblocking connect; completion comes as EPOLLOUT and is checked with SO_ERROR.
void RelayCore::StartConnect(RelayConn* c, int64_t now) {
  Link(c);
  c->deadline_ms = now + opts_.connect_timeout_ms;
  int family = c->addr.ss_family;
  c->upstream = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->upstream < 0) return Fail(c, errno);
  if (family != AF_UNIX) {
    int one = 1;
    setsockopt(c->upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (connect(c->upstream, reinterpret_cast<sockaddr*>(&c->addr), c->addrlen) < 0 && errno != EINPROGRESS) {
    return Fail(c, errno == EAGAIN ? ECONNREFUSED : errno);  // AF_UNIX: EAGAIN = backlog full
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = reinterpret_cast<uintptr_t>(c) | kTagUpstream;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c->upstream, &ev) < 0) return Fail(c, errno);
}

// Pumps only the directions this event can move: readable src -> its direction; writable dst -> the
// direction that has bytes waiting in its pipe (EPOLLET reports write space after nearly every ACK).
void RelayCore::OnEvent(RelayConn* c, bool is_upstream, uint32_t events, int64_t now) {
  if (c->state == RelayState::kDead) return;  // freed at the end of this batch
  if (c->state == RelayState::kConnecting) {
    // A TCP socket is writable only once connected, and a failed connect raises EPOLLERR: SO_ERROR is
    // read only then (AF_UNIX connects never get here in progress).
    if ((events & (EPOLLERR | EPOLLHUP)) == 0) {
      if ((events & EPOLLOUT) != 0) Establish(c, now);
      return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    return Fail(c, err != 0 ? err : ECONNRESET);
  }
  if ((events & EPOLLERR) != 0) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) getsockopt(c->client, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Finish(c, err);
  }
  int in_dir = is_upstream ? kDirDown : kDirUp;
  int out_dir = is_upstream ? kDirUp : kDirDown;
  const RelayDir& out = is_upstream ? c->up : c->down;
  int dirs = 0;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) dirs |= in_dir;
  if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) (is_upstream ? c->down : c->up).rdhup = true;
  if ((events & (EPOLLHUP | EPOLLERR)) != 0) dirs |= out_dir;
  if ((events & EPOLLOUT) != 0 &&
      (out.queued > 0 || out.wait_out || (is_upstream && c->prefix_off < c->prefix.size()))) {
    dirs |= out_dir;
  }
  if (dirs != 0) Pump(c, dirs, now);
}

// Connected: add the client to epoll, tell JS (which then owns nothing but the callback). No pipe is taken
// here; each direction takes one only while it has bytes in flight (PumpDir).
void RelayCore::Establish(RelayConn* c, int64_t now) {
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = reinterpret_cast<uintptr_t>(c);
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c->client, &ev) < 0) return Fail(c, errno);
  c->up.src = c->client;
  c->up.dst = c->upstream;
  c->down.src = c->upstream;
  c->down.dst = c->client;
  c->up.dst_upstream = true;
  c->up.other = &c->down;
  c->down.other = &c->up;
  c->state = RelayState::kRelaying;
  c->deadline_ms = now;
  stat_[kStatConnecting].fetch_sub(1, std::memory_order_relaxed);
  stat_[kStatRelaying].fetch_add(1, std::memory_order_relaxed);
  Post({kRelayEstablished, c->id, static_cast<double>(c->orig_fd), 0, 0});
  Pump(c, kDirUp | kDirDown, now);
}

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
  if ((dirs & kDirUp) != 0 && c->prefix_off == c->prefix.size()) rc = PumpDir(&c->up, &budget_left);
  if (rc == 0 && (dirs & kDirDown) != 0) rc = PumpDir(&c->down, &budget_left);
  if (rc < 0) return Finish(c, -rc);
  if (c->up.bytes + c->down.bytes != before) c->deadline_ms = now;
  bool up_done = c->up.eof && c->up.queued == 0 && c->up.shut;
  bool down_done = c->down.eof && c->down.queued == 0 && c->down.shut;
  if (up_done && down_done) return Finish(c, 0);
  if (!budget_left && !c->in_ready) {
    c->in_ready = true;
    ready_.push_back(c);
  }
}

// Before establish: the client was never read or changed; close our dup only, the caller keeps its fd.
void RelayCore::Fail(RelayConn* c, int err) {
  if (c->upstream >= 0) close(c->upstream);
  close(c->client);
  c->upstream = c->client = -1;
  c->state = RelayState::kDead;
  stat_[kStatConnecting].fetch_sub(1, std::memory_order_relaxed);
  stat_[kStatFailed].fetch_add(1, std::memory_order_relaxed);
  Post({kRelayFailed, c->id, 0, 0, err});
  dead_.push_back(c);
}

// After establish. err == 0: both directions ended cleanly. Otherwise reset both sides.
void RelayCore::Finish(RelayConn* c, int err) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c->client, nullptr);  // the description outlives our dup
  if (err == 0) {
    close(c->client);
    close(c->upstream);
  } else {
    baton__reset_close(c->client);
    baton__reset_close(c->upstream);
    stat_[kStatErrors].fetch_add(1, std::memory_order_relaxed);
  }
  c->upstream = c->client = -1;
  PipePut(&c->up.pipe, c->up.queued == 0);
  PipePut(&c->down.pipe, c->down.queued == 0);
  c->state = RelayState::kDead;
  stat_[kStatRelaying].fetch_sub(1, std::memory_order_relaxed);
  stat_[kStatBytesUp].fetch_add(static_cast<int64_t>(c->up.bytes), std::memory_order_relaxed);
  stat_[kStatBytesDown].fetch_add(static_cast<int64_t>(c->down.bytes), std::memory_order_relaxed);
  Post({kRelayClosed, c->id, static_cast<double>(c->up.bytes), static_cast<double>(c->down.bytes), err});
  dead_.push_back(c);
}

}  // namespace baton
