// The relay thread's connection lifecycle: the native upstream connect, epoll events routed to the
// directions they can move, establish, and the two ends: Fail (before establish: the caller keeps its
// client) and Finish (after: both sides closed, or reset with SO_LINGER{1,0} on an error). The client fd is
// a dup whose open file description is shared with the caller's fd, so it gets an explicit EPOLL_CTL_DEL
// before close. The byte movers are in splice_pump.cc, the loop that calls all this in splice_loop.cc.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "baton.h"
#include "splice_relay.h"

namespace baton {

static void baton__reset_close(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  baton__close(fd);
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
  if (c->watch && !is_upstream && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
    c->watch->drained = false;  // a new edge: the watched up direction reads again
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
  if (c->watch) c->down.watch = c->watch.get();
  c->state = RelayState::kRelaying;
  c->deadline_ms = now;
  stat_[kStatConnecting].fetch_sub(1, std::memory_order_relaxed);
  stat_[kStatRelaying].fetch_add(1, std::memory_order_relaxed);
  Post({kRelayEstablished, c->id, static_cast<double>(c->orig_fd), 0, 0, -1, {}});
  Pump(c, kDirUp | kDirDown, now);
}

// Before establish: the client was never read or changed; close our dup only, the caller keeps its fd.
void RelayCore::Fail(RelayConn* c, int err) {
  if (c->upstream >= 0) baton__close(c->upstream);
  baton__close(c->client);
  c->upstream = c->client = -1;
  c->state = RelayState::kDead;
  stat_[kStatConnecting].fetch_sub(1, std::memory_order_relaxed);
  stat_[kStatFailed].fetch_add(1, std::memory_order_relaxed);
  Post({kRelayFailed, c->id, 0, 0, err, -1, {}});
  dead_.push_back(c);
}

// After establish. err == 0: both directions ended cleanly. Otherwise reset both sides.
void RelayCore::Finish(RelayConn* c, int err) {
  if (c->watch && c->watch->waiting) waiting_.erase(c->id);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c->client, nullptr);  // the description outlives our dup
  if (err == 0) {
    baton__close(c->client);
    baton__close(c->upstream);
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
  Post({kRelayClosed, c->id, static_cast<double>(c->up.bytes), static_cast<double>(c->down.bytes), err, -1, {}});
  dead_.push_back(c);
}

}  // namespace baton
