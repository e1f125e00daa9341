// The splice relay (TCPSP): one epoll thread relays client <-> upstream pairs with splice(2) through pooled
// pipes. The JS thread only submits connections (RelayCore::Submit) and drains events (RelayCore::TakeEvents);
// everything else, including the upstream connect and every epoll ADD, happens on the relay thread.
// splice_relay.cc: the N-API face (baton_relay_*); splice_loop.cc: the thread's epoll loop, pipe pool and
// events; splice_conn.cc: a connection's connect, events, establish, fail and finish; splice_pump.cc: the
// byte movers. No napi call ever happens on the relay thread.
#ifndef BATON_SPLICE_RELAY_H
#define BATON_SPLICE_RELAY_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "splice_http.h"

namespace baton {

// Directions of a connection, and the tag on the upstream fd's epoll data (the conn pointer | 1).
static const int kDirUp = 1;
static const int kDirDown = 2;
static const uintptr_t kTagUpstream = 1;

// Event kinds delivered to JS (one record = kind, id, a, b, err, fd, and bytes for head/returned).
// head: a watched connection's later request head (data) waits for a verdict (baton_relay_verdict).
// returned: a watched connection stopped before a request that moves; fd is the client (the relay's dup,
// now the caller's), data the bytes from that head on, a/b the bytes relayed.
enum RelayEventKind { kRelayEstablished = 1, kRelayFailed = 2, kRelayClosed = 3, kRelayHead = 4, kRelayReturned = 5 };

struct RelayEvent {
  int kind = 0;
  double id = 0;
  double a = 0;  // established: the caller's original client fd; closed/returned: bytes up
  double b = 0;  // closed/returned: bytes down
  int err = 0;   // failed/closed: positive errno or 0
  int fd = -1;   // returned: the client
  std::string data;  // head/returned
};

struct RelayPipe {
  int r = -1;
  int w = -1;
  int cap = 0;  // F_GETPIPE_SZ
};

// One direction: src -> dst, small reads by recv+send, bulk by splice through the pipe (splice_pump.cc). The
// pipe is only spliced or written into while empty (queued == 0), and it is held only while it has bytes: taken from the pool when a read from src is tried, given back as soon as it is
// empty again, so an idle connection holds no pipe. pipe.r >= 0 after a pump implies queued > 0.
struct RelayDir {
  int src = -1;
  int dst = -1;
  RelayPipe pipe;
  size_t queued = 0;
  bool eof = false;       // src returned 0
  bool shut = false;      // shutdown(dst, SHUT_WR) done
  bool wait_out = false;  // copy fallback (no pipe to be had): src has bytes, dst was full
  bool bulk = false;      // a read filled the copy buffer: splice until a splice returns little
  bool rdhup = false;     // src's peer shut down (EPOLLRDHUP/HUP seen): read on to EOF, never trust a short read
  uint64_t bytes = 0;
  bool dst_upstream = false;      // dst is the upstream socket (no other reference to it exists)
  const RelayDir* other = nullptr;  // the opposite direction of the same connection
  struct RelayWatch* watch = nullptr;  // down of a watched connection: responses are framed (splice_watch.cc)
};

// A watched connection's request and response framing (splice_watch.cc). The client's bytes go up through
// `in` (read, framed, sent); at each later request boundary the head waits there for JS's verdict.
struct RelayWatch {
  std::deque<uint8_t> pending;  // kinds of forwarded requests whose final response head has not come
  HttpFramer req{true, &pending};
  HttpFramer res{false, &pending};
  std::string in;      // client bytes read and not yet sent up
  size_t in_off = 0;   // in[in_off, fwd_end): framed, to send; in[fwd_end, size): not framed yet
  size_t fwd_end = 0;
  size_t scan = 0;     // where the search for the end of a waiting head resumes (from in_off)
  uint64_t requests = 0;
  bool waiting = false;     // a head was posted; no verdict yet
  bool stay = false;        // the verdict for the head at in_off: it stays
  bool wait_upgrade = false;  // an Upgrade/CONNECT went up: the client waits until its response decides
  bool moving = false;
  bool tunnel = false;
  bool discard = false;     // the server ended while moving: read the client to its end, drop it
  bool drained = false;     // the client's queue was read empty and no EPOLLIN edge came since
};

enum class RelayState : uint8_t { kConnecting, kRelaying, kDead };

struct RelayConn {
  double id = 0;
  int orig_fd = -1;  // the caller's fd; never touched here, only reported back at establish
  int client = -1;   // our F_DUPFD_CLOEXEC dup
  int upstream = -1;
  RelayState state = RelayState::kConnecting;
  bool in_ready = false;
  sockaddr_storage addr;
  socklen_t addrlen = 0;
  std::string prefix;  // PROXY header, written before any client byte
  size_t prefix_off = 0;
  std::unique_ptr<RelayWatch> watch;  // set for watched connections (conn.watch); consumed bytes start in watch->in
  RelayDir up;    // client -> upstream
  RelayDir down;  // upstream -> client
  int64_t deadline_ms = 0;  // connecting: connect deadline; relaying: last activity
  RelayConn* prev = nullptr;
  RelayConn* next = nullptr;
};

struct RelayOptions {
  int pipe_size = 262144;
  int connect_timeout_ms = 5000;
  int idle_timeout_ms = 0;  // 0 = none
  int pool_max = 64;        // idle pipes kept for reuse (each is 2 fds); pipes in use are not counted
  int max_header_bytes = 16384;  // watched connections: a later head longer than this goes to JS as is (431)
};

struct RelayVerdict {
  double id;
  bool move;
};

// Stats slots, in the order baton_relay_stats writes them.
enum RelayStat {
  kStatRelaying, kStatConnecting, kStatTotal, kStatFailed, kStatErrors,
  kStatPipes, kStatPooled, kStatBytesUp, kStatBytesDown, kStatCount
};

class RelayCore {
 public:
  using Notify = void (*)(void* arg);

  explicit RelayCore(const RelayOptions& opts) : opts_(opts) {}
  ~RelayCore();
  // JS thread. 0 or -errno.
  int Start(Notify notify, void* notify_arg);
  // JS thread. Takes ownership of c (and its client dup). true = the inbox was empty: Wake() must follow
  // (the caller may defer it to coalesce a burst of submits into one eventfd write).
  bool Submit(RelayConn* c);
  // JS thread: signal the eventfd so the relay thread takes the inbox.
  void Wake();
  // JS thread: the verdict on the head a kRelayHead event carried. Wake() must follow (once per batch).
  void Verdict(double id, bool move);
  // JS thread: stop the loop, end all connections (events are queued), join. Idempotent.
  void Stop();
  // JS thread. Moves up to max queued events to out; returns how many.
  size_t TakeEvents(RelayEvent* out, size_t max);
  void DisableNotify() { notify_enabled_.store(false); }
  void ReadStats(double* out) const;
  bool stopped() const { return stopped_; }

  std::atomic<int> refs{1};

 private:
  static void* ThreadMain(void* arg);
  void Run();
  void TakeInbox();
  void StartConnect(RelayConn* c, int64_t now);
  void OnEvent(RelayConn* c, bool is_upstream, uint32_t events, int64_t now);
  void Establish(RelayConn* c, int64_t now);
  void Pump(RelayConn* c, int dirs, int64_t now);
  int PumpDir(RelayDir* d, bool* budget_left);
  int PumpDirRounds(RelayDir* d, bool* budget_left);
  int CopyDir(RelayDir* d);
  int ReadSend(RelayDir* d);
  // splice_watch.cc
  int PumpUpWatched(RelayConn* c, bool* budget_left);
  int PumpUpWatchedRounds(RelayConn* c, bool* budget_left);
  int SpliceBody(RelayConn* c);
  int SendIn(RelayConn* c);
  int JudgeHead(RelayConn* c);
  int ReadIn(RelayConn* c);
  int ShutUp(RelayConn* c);
  int64_t FrameDown(RelayDir* d, const uint8_t* p, size_t n);
  int SpliceDown(RelayDir* d);
  bool AfterPump(RelayConn* c, int64_t now);
  void ApplyVerdict(const RelayVerdict& v, int64_t now);
  void Return(RelayConn* c);
  void Fail(RelayConn* c, int err);
  void Finish(RelayConn* c, int err);
  void Sweep(int64_t now);
  void FreeDead();
  void ShutdownAll();
  bool PipeGet(RelayPipe* p);
  void PipePut(RelayPipe* p, bool reusable);
  void Post(RelayEvent ev);
  void FlushNotify();
  void Link(RelayConn* c);
  void Unlink(RelayConn* c);

  RelayOptions opts_;
  int epfd_ = -1;
  int evfd_ = -1;
  pthread_t thread_{};
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> notify_enabled_{true};
  Notify notify_ = nullptr;
  void* notify_arg_ = nullptr;

  // Shared with the JS thread, under mu_.
  std::mutex mu_;
  std::vector<RelayConn*> inbox_;
  std::vector<RelayVerdict> verdicts_;
  std::vector<RelayEvent> events_;
  size_t events_head_ = 0;
  bool notify_pending_ = false;

  // Relay thread only.
  RelayConn* conns_ = nullptr;
  std::vector<RelayConn*> dead_;
  std::vector<RelayConn*> ready_;
  std::vector<RelayPipe> pool_;
  std::unordered_map<double, RelayConn*> waiting_;  // watched connections whose head waits for a verdict
  bool posted_ = false;

  std::atomic<int64_t> stat_[kStatCount] = {};
};

}  // namespace baton

#endif
