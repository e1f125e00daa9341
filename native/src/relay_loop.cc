// The relay thread: native upstream connect, then splice(2) in both directions through pooled pipes.
// Rules (research/handoff-mechanics.md, splice): EPOLLET and pump until EAGAIN (or a budget, then the
// connection goes on the ready list); splice from a socket only into an empty pipe, because EAGAIN is
// ambiguous while the pipe could be full; shutdown(dst, SHUT_WR) after src EOF once the pipe drained;
// errors reset both sides (SO_LINGER{1,0}); connections are freed only at the end of an epoll batch;
// the client fd is a dup whose open file description is shared, so it gets an explicit EPOLL_CTL_DEL.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "relay.h"

namespace baton {

static const int kBatchMax = 128;
static const int kPumpRounds = 16;  // fill+drain rounds per direction per wakeup before yielding

static int64_t baton__now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

static void baton__reset_close(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

RelayCore::~RelayCore() {
  if (epfd_ >= 0) close(epfd_);
  if (evfd_ >= 0) close(evfd_);
}

int RelayCore::Start(Notify notify, void* notify_arg) {
  notify_ = notify;
  notify_arg_ = notify_arg;
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return -errno;
  evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (evfd_ < 0) return -errno;
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) < 0) return -errno;
  int rc = pthread_create(&thread_, nullptr, ThreadMain, this);
  if (rc != 0) return -rc;
  pthread_setname_np(thread_, "baton-relay");
  started_ = true;
  return 0;
}

void RelayCore::Submit(RelayConn* c) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake = inbox_.empty();
    inbox_.push_back(c);
  }
  stat_[kStatConnecting].fetch_add(1, std::memory_order_relaxed);
  stat_[kStatTotal].fetch_add(1, std::memory_order_relaxed);
  if (wake) {
    uint64_t one = 1;
    ssize_t n = write(evfd_, &one, sizeof one);
    (void)n;
  }
}

// After this the thread is gone and so are its epoll and eventfd; only queued events remain.
void RelayCore::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!started_) return;
  stop_.store(true);
  uint64_t one = 1;
  ssize_t n = write(evfd_, &one, sizeof one);
  (void)n;
  pthread_join(thread_, nullptr);
  close(epfd_);
  close(evfd_);
  epfd_ = evfd_ = -1;
}

size_t RelayCore::TakeEvents(RelayEvent* out, size_t max) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = std::min(max, events_.size() - events_head_);
  std::copy(events_.begin() + events_head_, events_.begin() + events_head_ + n, out);
  events_head_ += n;
  if (events_head_ == events_.size()) {
    events_.clear();
    events_head_ = 0;
    notify_pending_ = false;
  }
  return n;
}

void RelayCore::ReadStats(double* out) const {
  for (int i = 0; i < kStatCount; i++) out[i] = static_cast<double>(stat_[i].load(std::memory_order_relaxed));
}

void* RelayCore::ThreadMain(void* arg) {
  static_cast<RelayCore*>(arg)->Run();
  return nullptr;
}

// The loop. Timeouts are checked by a sweep every quarter of the shortest timeout (10 ms .. 1 s).
void RelayCore::Run() {
  struct epoll_event evs[kBatchMax];
  int shortest = opts_.connect_timeout_ms;
  if (opts_.idle_timeout_ms > 0) shortest = std::min(shortest, opts_.idle_timeout_ms);
  int sweep_ms = std::max(10, std::min(1000, shortest / 4));
  int64_t next_sweep = baton__now_ms() + sweep_ms;
  while (!stop_.load()) {
    int timeout = ready_.empty() ? sweep_ms : 0;
    int n = epoll_wait(epfd_, evs, kBatchMax, timeout);
    int64_t now = baton__now_ms();
    for (int i = 0; i < n; i++) {
      RelayConn* c = static_cast<RelayConn*>(evs[i].data.ptr);
      if (c == nullptr) TakeInbox();
      else OnEvent(c, evs[i].events, now);
    }
    if (!ready_.empty()) {
      std::vector<RelayConn*> again;
      again.swap(ready_);
      for (RelayConn* c : again) {
        c->in_ready = false;
        if (c->state == RelayState::kRelaying) Pump(c, now);
      }
    }
    if (now >= next_sweep) {
      Sweep(now);
      next_sweep = now + sweep_ms;
    }
    FreeDead();
    FlushNotify();
  }
  ShutdownAll();
  FreeDead();
  for (RelayPipe& p : pool_) {
    stat_[kStatPooled].fetch_sub(1, std::memory_order_relaxed);
    PipePut(&p, false);
  }
  pool_.clear();
}

void RelayCore::TakeInbox() {
  uint64_t v;
  ssize_t r = read(evfd_, &v, sizeof v);
  (void)r;
  std::vector<RelayConn*> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(inbox_);
  }
  int64_t now = baton__now_ms();
  for (RelayConn* c : batch) StartConnect(c, now);
}

void RelayCore::Link(RelayConn* c) {
  c->next = conns_;
  if (conns_ != nullptr) conns_->prev = c;
  conns_ = c;
}

void RelayCore::Unlink(RelayConn* c) {
  if (c->prev != nullptr) c->prev->next = c->next;
  else conns_ = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  c->prev = c->next = nullptr;
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
  ev.data.ptr = c;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c->upstream, &ev) < 0) return Fail(c, errno);
}

void RelayCore::OnEvent(RelayConn* c, uint32_t events, int64_t now) {
  if (c->state == RelayState::kDead) return;  // freed at the end of this batch
  if (c->state == RelayState::kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) return Fail(c, err);
    if ((events & (EPOLLERR | EPOLLHUP)) != 0) return Fail(c, ECONNRESET);
    if ((events & EPOLLOUT) == 0) return;
    return Establish(c, now);
  }
  if ((events & EPOLLERR) != 0) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) getsockopt(c->client, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Finish(c, err);
  }
  Pump(c, now);
}

// Connected: get the pipes, add the client to epoll, tell JS (which then owns nothing but the callback).
void RelayCore::Establish(RelayConn* c, int64_t now) {
  if (!PipeGet(&c->up.pipe)) return Fail(c, errno);
  if (!PipeGet(&c->down.pipe)) {
    int err = errno;
    PipePut(&c->up.pipe, true);
    return Fail(c, err);
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = c;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c->client, &ev) < 0) {
    int err = errno;
    PipePut(&c->up.pipe, true);
    PipePut(&c->down.pipe, true);
    return Fail(c, err);
  }
  c->up.src = c->client;
  c->up.dst = c->upstream;
  c->down.src = c->upstream;
  c->down.dst = c->client;
  c->state = RelayState::kRelaying;
  c->deadline_ms = now;
  stat_[kStatConnecting].fetch_sub(1, std::memory_order_relaxed);
  stat_[kStatRelaying].fetch_add(1, std::memory_order_relaxed);
  Post({kRelayEstablished, c->id, static_cast<double>(c->orig_fd), 0, 0});
  Pump(c, now);
}

// One direction until EAGAIN. Returns 0 (waiting), or -errno. *budget_left = false when it yielded.
int RelayCore::PumpDir(RelayDir* d, bool* budget_left) {
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
        if (shutdown(d->dst, SHUT_WR) < 0 && errno != ENOTCONN) return -errno;
      }
      return 0;
    }
    ssize_t n = splice(d->src, nullptr, d->pipe.w, nullptr, static_cast<size_t>(d->pipe.cap),
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d->queued = static_cast<size_t>(n);
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

void RelayCore::Pump(RelayConn* c, int64_t now) {
  uint64_t before = c->up.bytes + c->down.bytes;
  bool budget_left = true;
  while (c->prefix_off < c->prefix.size()) {
    ssize_t n = send(c->upstream, c->prefix.data() + c->prefix_off, c->prefix.size() - c->prefix_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) { c->prefix_off += static_cast<size_t>(n); continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return Finish(c, n < 0 ? errno : EPIPE);
  }
  int rc = 0;
  if (c->prefix_off == c->prefix.size()) rc = PumpDir(&c->up, &budget_left);
  if (rc == 0) rc = PumpDir(&c->down, &budget_left);
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

void RelayCore::Sweep(int64_t now) {
  for (RelayConn* c = conns_; c != nullptr; c = c->next) {
    if (c->state == RelayState::kConnecting && now >= c->deadline_ms) {
      Fail(c, ETIMEDOUT);
    } else if (c->state == RelayState::kRelaying && opts_.idle_timeout_ms > 0 &&
               now - c->deadline_ms >= opts_.idle_timeout_ms) {
      Finish(c, ETIMEDOUT);
    }
  }
}

void RelayCore::FreeDead() {
  for (RelayConn* c : dead_) {
    if (c->in_ready) ready_.erase(std::remove(ready_.begin(), ready_.end(), c), ready_.end());
    if (c->prev != nullptr || c->next != nullptr || conns_ == c) Unlink(c);
    delete c;
  }
  dead_.clear();
}

// Stop: connects in flight fail (the caller keeps its client), relays are reset.
void RelayCore::ShutdownAll() {
  std::vector<RelayConn*> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(inbox_);
  }
  for (RelayConn* c : batch) {
    Link(c);
    Fail(c, ECANCELED);
  }
  for (RelayConn* c = conns_; c != nullptr; c = c->next) {
    if (c->state == RelayState::kConnecting) Fail(c, ECANCELED);
    else if (c->state == RelayState::kRelaying) Finish(c, ECANCELED);
  }
}

bool RelayCore::PipeGet(RelayPipe* p) {
  if (!pool_.empty()) {
    *p = pool_.back();
    pool_.pop_back();
    stat_[kStatPooled].fetch_sub(1, std::memory_order_relaxed);
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return false;
  p->r = fds[0];
  p->w = fds[1];
  fcntl(p->w, F_SETPIPE_SZ, opts_.pipe_size);  // may fail (pipe-max-size, user quota): keep what we have
  p->cap = fcntl(p->w, F_GETPIPE_SZ);
  if (p->cap <= 0) p->cap = 65536;
  stat_[kStatPipes].fetch_add(1, std::memory_order_relaxed);
  return true;
}

// reusable: the pipe is empty. A pipe with data left (reset mid-stream) is closed, never pooled.
void RelayCore::PipePut(RelayPipe* p, bool reusable) {
  if (p->r < 0) return;
  if (reusable && static_cast<int>(pool_.size()) < opts_.pool_max && !stop_.load()) {
    pool_.push_back(*p);
    stat_[kStatPooled].fetch_add(1, std::memory_order_relaxed);
  } else {
    close(p->r);
    close(p->w);
    stat_[kStatPipes].fetch_sub(1, std::memory_order_relaxed);
  }
  p->r = p->w = -1;
}

void RelayCore::Post(const RelayEvent& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(ev);
  posted_ = true;
}

// Once per batch: one threadsafe call if JS has not been told yet.
void RelayCore::FlushNotify() {
  if (!posted_) return;
  posted_ = false;
  bool call;
  {
    std::lock_guard<std::mutex> lock(mu_);
    call = !notify_pending_ && !events_.empty();
    if (call) notify_pending_ = true;
  }
  if (call && notify_enabled_.load()) notify_(notify_arg_);
}

}  // namespace baton
