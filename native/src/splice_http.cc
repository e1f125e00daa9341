// The relay thread's HTTP framer (splice_http.h); a line-for-line port of src/forward/http-framing.ts.
#include "splice_http.h"

#include <errno.h>
#include <string.h>

#include <algorithm>

namespace baton {

static const char* const kNames[] = {"content-length", "transfer-encoding", "upgrade"};
static const int kNameLens[] = {14, 17, 7};
static const int kNameCount = 3;
static const int kCl = 0, kTe = 1, kUpgrade = 2;
static const int kMaxHexDigits = 15;
static const uint8_t CR = 0x0d, LF = 0x0a;

static int baton__hex(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  uint8_t l = c | 0x20;
  return l >= 'a' && l <= 'f' ? l - 'a' + 10 : -1;
}

int64_t HttpFramer::Feed(const uint8_t* p, size_t n, bool stop_at_body) {
  ended_ = false;
  size_t i = 0;
  while (i < n) {
    if (stop_at_body && (state_ == kLength || state_ == kChunkData) && left_ > 0) return static_cast<int64_t>(i);
    if (state_ == kLength || state_ == kChunkData) {
      uint64_t k = std::min<uint64_t>(left_, n - i);
      i += k;
      left_ -= k;
      if (left_ == 0) {
        if (state_ == kChunkData) {
          state_ = kChunkDataCr;
        } else {
          Done();
          return static_cast<int64_t>(i);
        }
      }
      continue;
    }
    if (state_ == kClose || state_ == kTunnel) return static_cast<int64_t>(n);
    if (state_ == kLine && Skipping()) {  // the rest of a line nothing is kept of: to its CR (or a bare LF)
      while (i < n && p[i] != CR && p[i] != LF) i++;
      if (i == n) break;
    }
    uint8_t c = p[i++];
    int rc = state_ <= kNone ? HeadByte(c) : BodyByte(c);
    if (rc < 0) return rc;
    if (rc > 0) return static_cast<int64_t>(i);
  }
  return static_cast<int64_t>(i);
}

// Inside a line whose remaining bytes change nothing: a header value not kept, or the first line past
// the bytes read from it (a request's method, a response's status code).
bool HttpFramer::Skipping() const {
  if (line_start_) return false;
  if (line_no_ == 0) return first_len_ > (request_ ? 8 : 12);
  return in_value_ && name_idx_ == -2;
}

void HttpFramer::Skip(uint64_t k) {
  ended_ = false;
  left_ -= k;
  if (left_ > 0) return;
  if (state_ == kChunkData) state_ = kChunkDataCr;
  else Done();
}

int HttpFramer::HeadByte(uint8_t c) {
  if (state_ == kNone) StartHead();
  if (state_ == kCr) {
    if (c != LF) return -EPROTO;
    state_ = kLine;
    if (line_start_) return HeadEnd();  // the blank line
    return EndLine();
  }
  if (c == CR) {
    state_ = kCr;
    return 0;
  }
  if (c == LF) return -EPROTO;
  if (line_no_ == 0) FirstByte(c);
  else FieldByte(c);
  line_start_ = false;
  return 0;
}

void HttpFramer::StartHead() {
  state_ = kLine;
  line_start_ = true;
  line_no_ = 0;
  first_ = first_len_ = 0;
  name_idx_ = -1;
  name_pos_ = 0;
  in_value_ = false;
  cl_seen_ = te_seen_ = te_chunked_ = upgrade_ = false;
  method_head_ = method_connect_ = false;
  cl_ = 0;
}

void HttpFramer::FirstByte(uint8_t c) {
  int k = first_len_++;
  if (request_) {
    static const char kHead[] = "HEAD ";
    static const char kConnect[] = "CONNECT ";
    if (k == 0) {
      first_ = (c == 'H' ? 1 : 0) | (c == 'C' ? 2 : 0);
      return;
    }
    if ((first_ & 1) != 0 && (k > 4 || c != kHead[k])) first_ &= ~1;
    if ((first_ & 2) != 0 && (k > 7 || c != kConnect[k])) first_ &= ~2;
    if (k == 4 && (first_ & 1) != 0) method_head_ = true;
    if (k == 7 && (first_ & 2) != 0) method_connect_ = true;
  } else if (k >= 9 && k <= 11) {
    int d = c - '0';
    first_ = (d < 0 || d > 9) ? -100000 : first_ * 10 + d;  // negative: not a status
  }
}

void HttpFramer::FieldByte(uint8_t c) {
  if (line_start_) {
    name_idx_ = -1;
    name_pos_ = 0;
    in_value_ = false;
    value_len_ = 0;
  }
  if (in_value_) {
    if (name_idx_ >= 0) {
      if (value_len_ >= static_cast<int>(sizeof value_)) name_idx_ = -3;  // too long: an error at the line's end
      else value_[value_len_++] = static_cast<char>(c);
    }
    return;
  }
  if (c == ':') {
    in_value_ = true;
    if (name_idx_ >= 0 && name_pos_ != kNameLens[name_idx_]) name_idx_ = -2;
    return;
  }
  uint8_t lc = (c >= 'A' && c <= 'Z') ? (c | 0x20) : c;
  if (name_pos_ == 0) {
    name_idx_ = -2;
    for (int k = 0; k < kNameCount; k++) {
      if (kNames[k][0] == lc) { name_idx_ = k; break; }
    }
  } else if (name_idx_ >= 0 && (name_pos_ >= kNameLens[name_idx_] || kNames[name_idx_][name_pos_] != lc)) {
    name_idx_ = -2;
  }
  name_pos_++;
}

// A header line ended: take its value if the framer keeps it.
int HttpFramer::EndLine() {
  int idx = line_no_ == 0 ? -1 : name_idx_;
  line_no_++;
  line_start_ = true;
  if (idx == -3) return -EPROTO;
  if (idx < 0 || !in_value_) return 0;
  int b = 0, e = value_len_;
  while (b < e && (value_[b] == ' ' || value_[b] == '\t')) b++;
  while (e > b && (value_[e - 1] == ' ' || value_[e - 1] == '\t')) e--;
  if (idx == kCl) {
    if (e - b < 1 || e - b > 15) return -EPROTO;
    uint64_t v = 0;
    for (int k = b; k < e; k++) {
      int d = value_[k] - '0';
      if (d < 0 || d > 9) return -EPROTO;
      v = v * 10 + static_cast<uint64_t>(d);
    }
    if (cl_seen_ && v != cl_) return -EPROTO;
    cl_seen_ = true;
    cl_ = v;
  } else if (idx == kTe) {
    te_seen_ = true;
    int s = e;
    while (s > b && value_[s - 1] != ',') s--;
    while (s < e && (value_[s] == ' ' || value_[s] == '\t')) s++;
    te_chunked_ = e - s == 7 && strncasecmp(value_ + s, "chunked", 7) == 0;
  } else if (idx == kUpgrade) {
    upgrade_ = true;
  }
  return 0;
}

int HttpFramer::HeadEnd() {
  if (line_no_ == 0) return -EPROTO;
  final_ = true;
  if (request_) return RequestHeadEnd();
  int status = first_;
  if (first_len_ < 12 || status < 100) return -EPROTO;
  if (status < 200 && status != 101) {  // informational: another response to the same request follows
    final_ = false;
    Done();
    return 1;
  }
  uint8_t kind = 0;
  if (!pending_->empty()) {
    kind = pending_->front();
    pending_->pop_front();
  }
  if (status == 101 || ((kind & kReqConnect) != 0 && status < 300)) {
    state_ = kTunnel;
    ended_ = true;
    return 1;
  }
  if ((kind & kReqHead) != 0 || status == 204 || status == 304) {
    Done();
    return 1;
  }
  if (te_seen_) {
    state_ = te_chunked_ ? kChunkSize : kClose;
    left_ = 0;
    hex_ = 0;
    return 0;
  }
  if (cl_seen_) return Length();
  state_ = kClose;
  return 0;
}

int HttpFramer::RequestHeadEnd() {
  last_kind_ = static_cast<uint8_t>((method_head_ ? kReqHead : 0) | (method_connect_ ? kReqConnect : 0) |
                                    (upgrade_ ? kReqUpgrade : 0));
  pending_->push_back(last_kind_);
  if (te_seen_) {
    if (!te_chunked_) return -EPROTO;
    state_ = kChunkSize;
    left_ = 0;
    hex_ = 0;
    return 0;
  }
  if (cl_seen_) return Length();
  Done();
  return 1;
}

int HttpFramer::Length() {
  if (cl_ == 0) {
    Done();
    return 1;
  }
  left_ = cl_;
  state_ = kLength;
  return 0;
}

int HttpFramer::BodyByte(uint8_t c) {
  switch (state_) {
    case kChunkSize: {
      int d = baton__hex(c);
      if (d >= 0) {
        if (++hex_ > kMaxHexDigits) return -EPROTO;
        left_ = left_ * 16 + static_cast<uint64_t>(d);
        return 0;
      }
      if (hex_ == 0) return -EPROTO;
      if (c == CR) { state_ = kChunkSizeLf; return 0; }
      if (c == ';' || c == ' ' || c == '\t') { state_ = kChunkExt; return 0; }
      return -EPROTO;
    }
    case kChunkExt:
      if (c == CR) state_ = kChunkSizeLf;
      else if (c == LF || (c < 0x20 && c != '\t') || c == 0x7f) return -EPROTO;
      return 0;
    case kChunkSizeLf:
      if (c != LF) return -EPROTO;
      hex_ = 0;
      state_ = left_ == 0 ? kTrailer : kChunkData;
      return 0;
    case kChunkDataCr:
      if (c != CR) return -EPROTO;
      state_ = kChunkDataLf;
      return 0;
    case kChunkDataLf:
      if (c != LF) return -EPROTO;
      state_ = kChunkSize;
      return 0;
    case kTrailer:
      if (c == CR) { state_ = kTrailerEndLf; return 0; }
      if (c == LF) return -EPROTO;
      state_ = kTrailerLine;
      return 0;
    case kTrailerLine:
      if (c == CR) state_ = kTrailerLf;
      else if (c == LF) return -EPROTO;
      return 0;
    case kTrailerLf:
      if (c != LF) return -EPROTO;
      state_ = kTrailer;
      return 0;
    case kTrailerEndLf:
      if (c != LF) return -EPROTO;
      Done();
      return 1;
    default:
      return -EPROTO;
  }
}

}  // namespace baton
