// The relay thread's loop: start/stop, the inbox of new connections (eventfd), the epoll batch, the
// timeout sweep, the pipe pool, and events to JS. Connections are freed only at the end of a batch,
// because both fds of one connection can be in the same batch. Per-connection work: splice_conn.cc
// (connect, events, establish, fail, finish) and splice_pump.cc (the byte movers).
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "baton.h"
#include "splice_relay.h"

namespace baton {

static const int kBatchMax = 128;

static int64_t baton__now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

RelayCore::~RelayCore() {
  if (epfd_ >= 0) baton__close(epfd_);
  if (evfd_ >= 0) baton__close(evfd_);
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
  ev.data.u64 = 0;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) < 0) return -errno;
  int rc = pthread_create(&thread_, nullptr, ThreadMain, this);
  if (rc != 0) return -rc;
  pthread_setname_np(thread_, "baton-relay");
  started_ = true;
  return 0;
}

bool RelayCore::Submit(RelayConn* c) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake = inbox_.empty();
    inbox_.push_back(c);
  }
  stat_[kStatConnecting].fetch_add(1, std::memory_order_relaxed);
  stat_[kStatTotal].fetch_add(1, std::memory_order_relaxed);
  return wake;
}

void RelayCore::Verdict(double id, bool move) {
  std::lock_guard<std::mutex> lock(mu_);
  verdicts_.push_back({id, move});
}

void RelayCore::Wake() {
  if (stopped_) return;
  uint64_t one = 1;
  ssize_t n = write(evfd_, &one, sizeof one);
  (void)n;
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
  baton__close(epfd_);
  baton__close(evfd_);
  epfd_ = evfd_ = -1;
}

size_t RelayCore::TakeEvents(RelayEvent* out, size_t max) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = std::min(max, events_.size() - events_head_);
  std::move(events_.begin() + events_head_, events_.begin() + events_head_ + n, out);
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
      uintptr_t tag = static_cast<uintptr_t>(evs[i].data.u64);
      if (tag == 0) TakeInbox();
      else OnEvent(reinterpret_cast<RelayConn*>(tag & ~kTagUpstream), (tag & kTagUpstream) != 0, evs[i].events, now);
    }
    if (!ready_.empty()) {
      std::vector<RelayConn*> again;
      again.swap(ready_);
      for (RelayConn* c : again) {
        c->in_ready = false;
        if (c->state == RelayState::kRelaying) Pump(c, kDirUp | kDirDown, now);
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
  std::vector<RelayVerdict> verdicts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(inbox_);
    verdicts.swap(verdicts_);
  }
  int64_t now = baton__now_ms();
  for (RelayConn* c : batch) StartConnect(c, now);
  for (const RelayVerdict& v : verdicts) ApplyVerdict(v, now);
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

// A pipe for one direction's bytes in flight: the newest pooled one, else a new one. false (errno set) when
// none can be made (EMFILE, ENFILE, ENOMEM): the caller copies without a pipe. Pipes are returned the moment
// they are empty, so the pool (at most pool_max) plus the directions with bytes in flight bound the count.
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
    baton__close(p->r);
    baton__close(p->w);
    stat_[kStatPipes].fetch_sub(1, std::memory_order_relaxed);
  }
  p->r = p->w = -1;
}

void RelayCore::Post(RelayEvent ev) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(std::move(ev));
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
