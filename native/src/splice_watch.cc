// Watched connections on the relay thread (the service's keepAlive is reroute): every request after the
// first is judged by JS before a byte of it goes up. The client's bytes go up through RelayWatch::in: read
// (recv, the small direction), framed (splice_http.cc), sent. At a later request boundary the head waits in
// `in` until it is whole (or maxHeaderBytes long), goes to JS in one kRelayHead event, and the client is not
// read until the verdict comes back (baton_relay_verdict, through the inbox): stay = send it and go on;
// move = nothing more goes up, the responses to the requests already sent finish (the response direction is
// framed too, but its body bytes are still spliced: FrameDown only sees what ReadSend reads, and bulk splices
// are cut at body ends), then Return() closes the upstream and gives the client back (kRelayReturned, with
// `in` from that head on). Large request bodies (a Content-Length or chunk of 16 KiB or more still to come)
// are spliced up, cut at their end. After a 101 or a CONNECT 2xx the connection is a tunnel: `in` is flushed and the
// up direction is an ordinary PumpDir again. A response framed by close means the connection cannot move:
// the client is read to its end and dropped (discard), as an unwatched relay would end.
#include <errno.h>
#include <fcntl.h>  // splice
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>

#include "baton.h"
#include "splice_relay.h"

namespace baton {

static const int kWatchRounds = 16;
static const size_t kReadChunk = 16384;  // as kCopyBuf: one read's stack buffer
static const size_t kCompactAt = 65536;
static const size_t kHeadPeek = 4096;     // a response head (or chunk line) is peeked in windows of this
static const size_t kCopyBuf = 16384;     // as in splice_pump.cc: a transfer this large counts as bulk

// Sends in[in_off, fwd_end). 1 = all sent, 0 = upstream full (wait_out: its EPOLLOUT pumps up again), -errno.
int RelayCore::SendIn(RelayConn* c) {
  RelayWatch* w = c->watch.get();
  RelayDir* d = &c->up;
  while (w->in_off < w->fwd_end) {
    ssize_t n = send(c->upstream, w->in.data() + w->in_off, w->fwd_end - w->in_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      w->in_off += static_cast<size_t>(n);
      d->bytes += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      d->wait_out = true;
      return 0;
    }
    return n < 0 ? -errno : -EPIPE;
  }
  if (w->in_off == w->in.size()) {
    w->in.clear();
    w->in_off = w->fwd_end = 0;
  } else if (w->in_off >= kCompactAt) {
    w->in.erase(0, w->in_off);
    w->fwd_end -= w->in_off;
    w->in_off = 0;
  }
  return 1;
}

// A later head starts at in[fwd_end]: once it is whole (or as long as JS accepts, or the client ended), post
// it and wait. 1 = posted, 0 = read more.
int RelayCore::JudgeHead(RelayConn* c) {
  RelayWatch* w = c->watch.get();
  const char* base = w->in.data() + w->fwd_end;
  size_t avail = w->in.size() - w->fwd_end;
  size_t from = w->scan > 3 ? w->scan - 3 : 0;
  size_t len = 0;
  const char* end = static_cast<const char*>(memmem(base + from, avail - from, "\r\n\r\n", 4));
  if (end != nullptr) len = static_cast<size_t>(end - base) + 4;
  else if (avail >= static_cast<size_t>(opts_.max_header_bytes) || c->up.eof) len = avail;
  if (len == 0) {
    w->scan = avail;
    return 0;
  }
  w->scan = 0;
  w->waiting = true;
  waiting_[c->id] = c;
  RelayEvent ev;
  ev.kind = kRelayHead;
  ev.id = c->id;
  ev.data.assign(base, len);
  Post(std::move(ev));
  return 1;
}

// Appends what the client has (one read). 1 = read something (maybe more queued) or EOF, 0 = nothing
// queued (or known to be drained: a short read emptied the queue and no EPOLLIN edge came since), -errno.
int RelayCore::ReadIn(RelayConn* c) {
  RelayWatch* w = c->watch.get();
  if (w->drained) return 0;
  char buf[kReadChunk];
  ssize_t n;
  do n = recv(c->client, buf, sizeof buf, MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n == 0) {
    c->up.eof = true;
    return 1;
  }
  if (n < 0) {
    if (errno != EAGAIN) return -errno;
    w->drained = true;
    return 0;
  }
  w->in.append(buf, static_cast<size_t>(n));
  // A short read emptied the queue: a later arrival raises a new edge (OnEvent clears drained), unless the
  // peer's FIN was seen, whose edge is spent: then read on to EOF.
  if (static_cast<size_t>(n) < sizeof buf && !c->up.rdhup) w->drained = true;
  return 1;
}

// The client ended and everything before its end went up: pass the end on (see PumpDirRounds).
int RelayCore::ShutUp(RelayConn* c) {
  RelayDir* d = &c->up;
  if (d->shut) return 0;
  d->shut = true;
  bool closing = d->other->eof && d->other->queued == 0 && d->other->shut;
  if (!closing && shutdown(c->upstream, SHUT_WR) < 0 && errno != ENOTCONN) return -errno;
  return 0;
}

// A request ended at fwd_end (or at the end of a spliced body).
static void baton__request_ended(RelayWatch* w) {
  w->requests++;
  w->stay = false;
  if ((w->req.last_kind() & (kReqUpgrade | kReqConnect)) != 0) w->wait_upgrade = true;
}

// A large request body goes up by splice (through the direction's pipe), never past its end; `in` is empty.
// 1 = progress, 0 = waiting (upstream full, or the client's queue empty), 2 = not a bulk body: read it, -errno.
int RelayCore::SpliceBody(RelayConn* c) {
  RelayWatch* w = c->watch.get();
  RelayDir* d = &c->up;
  while (d->queued > 0) {
    ssize_t n = splice(d->pipe.r, nullptr, c->upstream, nullptr, d->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d->queued -= static_cast<size_t>(n);
      d->bytes += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      d->wait_out = true;
      return 0;
    }
    return n < 0 ? -errno : -EPIPE;
  }
  uint64_t left = w->req.BodyLeft();
  if (left < kReadChunk || w->drained || d->eof) return 2;
  if (d->pipe.r < 0 && !PipeGet(&d->pipe)) return 2;  // no pipe to be had: copy
  size_t want = std::min<uint64_t>(left, static_cast<uint64_t>(d->pipe.cap));
  ssize_t n = splice(c->client, nullptr, d->pipe.w, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n > 0) {
    d->queued = static_cast<size_t>(n);
    w->req.Skip(static_cast<uint64_t>(n));
    if (w->req.ended()) baton__request_ended(w);
    return 1;
  }
  if (n == 0) {
    d->eof = true;
    return 1;
  }
  if (errno == EINTR) return 1;
  if (errno != EAGAIN) return -errno;
  w->drained = true;  // the pipe is empty, so EAGAIN means the socket is
  return 0;
}

// The up direction of a watched connection. 0 = waiting (for bytes, space, a verdict or a response), -errno.
// The direction's pipe is held only while a spliced body has bytes in it.
int RelayCore::PumpUpWatched(RelayConn* c, bool* budget_left) {
  int rc = PumpUpWatchedRounds(c, budget_left);
  RelayDir* d = &c->up;
  if (d->queued == 0 && d->pipe.r >= 0) PipePut(&d->pipe, true);
  return rc;
}

int RelayCore::PumpUpWatchedRounds(RelayConn* c, bool* budget_left) {
  RelayWatch* w = c->watch.get();
  RelayDir* d = &c->up;
  d->wait_out = false;
  for (int round = 0; round < kWatchRounds; round++) {
    if (w->discard) {
      w->in.clear();
      w->in_off = w->fwd_end = 0;
      if (d->eof) return ShutUp(c);
      int rc = ReadIn(c);
      if (rc <= 0) return rc;
      continue;
    }
    int rc = SendIn(c);
    if (rc <= 0) return rc;
    if (w->tunnel) {
      w->fwd_end = w->in.size();
      rc = SendIn(c);
      if (rc <= 0) return rc;
      return PumpDir(d, budget_left);
    }
    if (w->moving || w->waiting || w->wait_upgrade) return 0;
    if (w->fwd_end < w->in.size()) {
      if (w->req.at_boundary() && w->requests > 0 && !w->stay) {
        if (JudgeHead(c) > 0) return 0;
      } else {
        int64_t k = w->req.Feed(reinterpret_cast<const uint8_t*>(w->in.data()) + w->fwd_end, w->in.size() - w->fwd_end);
        if (k < 0) return static_cast<int>(k);
        w->fwd_end += static_cast<size_t>(k);
        if (w->req.ended()) baton__request_ended(w);
        continue;
      }
    }
    if (w->in.empty() && (d->queued > 0 || w->req.BodyLeft() >= kReadChunk)) {
      rc = SpliceBody(c);
      if (rc <= 1) {
        if (rc <= 0) return rc;
        continue;
      }
    }
    if (d->eof) return w->in.empty() ? ShutUp(c) : 0;  // a partial head at the end was posted above
    rc = ReadIn(c);
    if (rc <= 0) return rc;
  }
  *budget_left = false;
  return 0;
}

// The bulk path of a watched connection's responses, one round, with d's (empty) pipe in hand: the head
// (or chunk line) is peeked and framed, then it and the body bytes after it, never past the body's end, are
// spliced into the pipe in one call. Nothing is copied to user space but the peeked head. 1 = go on,
// 0 = waiting, -errno.
int RelayCore::SpliceDown(RelayDir* d) {
  RelayWatch* w = d->watch;
  if (w->moving && w->pending.empty() && w->res.at_boundary()) return 0;  // the move is due: read no more
  size_t head = 0;
  if (w->res.BodyLeft() == 0) {
    uint8_t buf[kHeadPeek];
    ssize_t n;
    do n = recv(d->src, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
    if (n == 0) return ReadSend(d);  // EOF: the copy path marks it
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    int64_t k = w->res.Feed(buf, static_cast<size_t>(n), true);
    if (k < 0) return static_cast<int>(k);
    head = static_cast<size_t>(k);  // fed to the framer: exactly this many must move now
  }
  size_t cap = static_cast<size_t>(d->pipe.cap);
  size_t want = cap;
  if (!w->res.until_close() && !w->res.tunnel()) want = head + std::min<uint64_t>(w->res.BodyLeft(), cap - head);
  size_t moved = 0;
  while (moved < want) {
    ssize_t n = splice(d->src, nullptr, d->pipe.w, nullptr, want - moved, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      moved += static_cast<size_t>(n);
      if (moved >= head) break;  // the peeked bytes are queued: only they must move in this round
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (moved >= head && n == 0) {
      d->eof = true;
      break;
    }
    if (moved >= head && errno == EAGAIN) break;
    return n < 0 && errno != EAGAIN ? -errno : -EIO;  // peeked bytes that cannot be moved: cannot happen
  }
  d->queued = moved;
  if (moved > head && w->res.BodyLeft() > 0) w->res.Skip(moved - head);
  if (moved < kCopyBuf) d->bulk = false;  // back to recv + send for small transfers
  return moved > 0 || d->eof ? 1 : 0;
}

// Response bytes p[0, n) going down: framed. Returns how many may go on (fewer when a move is due and
// what follows answers no request), or -EPROTO.
int64_t RelayCore::FrameDown(RelayDir* d, const uint8_t* p, size_t n) {
  RelayWatch* w = d->watch;
  size_t off = 0;
  while (off < n) {
    if (w->res.tunnel() || w->res.until_close()) return static_cast<int64_t>(n);
    if (w->moving && w->pending.empty() && w->res.at_boundary()) return static_cast<int64_t>(off);
    int64_t k = w->res.Feed(p + off, n - off);
    if (k < 0) return k;
    off += static_cast<size_t>(k);
  }
  return static_cast<int64_t>(n);
}

// After a pump of a watched connection: a tunnel starts, an upgrade was declined, the server ended a
// connection that was to move, or the move is due. true = it took over (returned, or pumped again).
bool RelayCore::AfterPump(RelayConn* c, int64_t now) {
  RelayWatch* w = c->watch.get();
  bool again = false;
  if (w->res.tunnel() && !w->tunnel) {
    w->tunnel = true;
    w->wait_upgrade = false;
    c->down.watch = nullptr;
    again = true;
  } else if (w->wait_upgrade && w->pending.empty()) {
    w->wait_upgrade = false;  // answered without switching: judge what follows
    again = true;
  }
  if (c->down.eof && (w->moving || w->wait_upgrade) && !w->discard) {
    w->moving = w->wait_upgrade = false;
    w->discard = true;
    again = true;
  }
  if (w->moving && w->pending.empty() && w->res.at_boundary() && c->down.queued == 0) {
    Return(c);
    return true;
  }
  if (!again) return false;
  Pump(c, kDirUp, now);
  return true;
}

void RelayCore::ApplyVerdict(const RelayVerdict& v, int64_t now) {
  auto it = waiting_.find(v.id);
  if (it == waiting_.end()) return;  // ended meanwhile
  RelayConn* c = it->second;
  waiting_.erase(it);
  if (c->state != RelayState::kRelaying || !c->watch) return;
  c->watch->waiting = false;
  if (v.move) c->watch->moving = true;
  else c->watch->stay = true;
  Pump(c, kDirUp, now);  // its AfterPump returns the client if the move is due already
}

// Every response before the moving request went down: close the upstream, give the client back.
void RelayCore::Return(RelayConn* c) {
  RelayWatch* w = c->watch.get();
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c->client, nullptr);
  baton__close(c->upstream);
  PipePut(&c->up.pipe, c->up.queued == 0);
  PipePut(&c->down.pipe, c->down.queued == 0);
  RelayEvent ev;
  ev.kind = kRelayReturned;
  ev.id = c->id;
  ev.a = static_cast<double>(c->up.bytes);
  ev.b = static_cast<double>(c->down.bytes);
  ev.fd = c->client;
  ev.data.assign(w->in, w->in_off, std::string::npos);
  c->upstream = c->client = -1;
  c->state = RelayState::kDead;
  stat_[kStatRelaying].fetch_sub(1, std::memory_order_relaxed);
  stat_[kStatBytesUp].fetch_add(static_cast<int64_t>(c->up.bytes), std::memory_order_relaxed);
  stat_[kStatBytesDown].fetch_add(static_cast<int64_t>(c->down.bytes), std::memory_order_relaxed);
  Post(std::move(ev));
  dead_.push_back(c);
}

}  // namespace baton
