// HTTP/1.1 message framing on the relay thread, for connections whose later requests are watched (the
// service's keepAlive is reroute): where each request and each response ends. The same machine as
// src/forward/http-framing.ts (the JavaScript relay's); keep the two in step. A streaming byte machine
// with no buffering: heads are read byte by byte (only the first line's start and the values of
// Content-Length, Transfer-Encoding and Upgrade are kept), bodies are counted or walked (chunk sizes,
// extensions, data, trailers), so body bytes can be spliced without being looked at (BodyLeft / Skip).
// Request heads were accepted by sniffHead (src/request/sniff.ts) before they reach it. Anything it cannot
// follow is an error (-EPROTO): the relay resets the connection rather than guess.
#ifndef BATON_SPLICE_HTTP_H
#define BATON_SPLICE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <deque>

namespace baton {

// Request kinds, queued per forwarded request so that its response can be framed.
static const uint8_t kReqHead = 1;
static const uint8_t kReqConnect = 2;
static const uint8_t kReqUpgrade = 4;

class HttpFramer {
 public:
  HttpFramer(bool request, std::deque<uint8_t>* pending) : request_(request), pending_(pending) {}

  // Consumes p[0, n) up to the end of one message (stop_at_body: or up to where counted body bytes start);
  // returns how many bytes it consumed, or -EPROTO. ended() then says whether a message ended there.
  int64_t Feed(const uint8_t* p, size_t n, bool stop_at_body = false);
  // Counted body bytes (Content-Length, chunk data) that can pass unread: Skip(k) for k <= BodyLeft().
  uint64_t BodyLeft() const { return state_ == kLength || state_ == kChunkData ? left_ : 0; }
  void Skip(uint64_t k);

  bool ended() const { return ended_; }
  bool final_response() const { return final_; }
  uint8_t last_kind() const { return last_kind_; }
  bool at_boundary() const { return state_ == kNone; }
  bool until_close() const { return state_ == kClose; }
  bool tunnel() const { return state_ == kTunnel; }

 private:
  enum State : uint8_t {
    kLine, kCr, kNone, kLength, kChunkSize, kChunkExt, kChunkSizeLf, kChunkData, kChunkDataCr, kChunkDataLf,
    kTrailer, kTrailerLine, kTrailerLf, kTrailerEndLf, kClose, kTunnel
  };
  bool Skipping() const;
  int HeadByte(uint8_t c);  // 1 = the message ended, 0 = go on, -EPROTO
  int BodyByte(uint8_t c);
  void StartHead();
  void FirstByte(uint8_t c);
  void FieldByte(uint8_t c);
  int EndLine();
  int HeadEnd();
  int RequestHeadEnd();
  int Length();
  void Done() { state_ = kNone; ended_ = true; }

  bool request_;
  std::deque<uint8_t>* pending_;
  State state_ = kNone;
  uint64_t left_ = 0;
  int hex_ = 0;
  bool line_start_ = true;
  int line_no_ = 0;
  int first_ = 0;
  int first_len_ = 0;
  int name_idx_ = -1;  // index into the kept names still matching; -1 none yet, -2 not a kept name
  int name_pos_ = 0;
  bool in_value_ = false;
  char value_[256];
  int value_len_ = 0;
  bool cl_seen_ = false;
  uint64_t cl_ = 0;
  bool te_seen_ = false;
  bool te_chunked_ = false;
  bool upgrade_ = false;
  bool method_head_ = false;
  bool method_connect_ = false;
  bool ended_ = false;
  bool final_ = false;
  uint8_t last_kind_ = 0;
};

}  // namespace baton

#endif
