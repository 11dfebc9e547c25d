// The part of the client request stage that works from decrypted bytes: a
// client connection whose TLS library calls are seen (TlsDataEvent) has its
// requests split from what the calls moved, not from the TLS records:
// HTTP/2 a request per stream, HTTPS/1.1 a request per read after a
// response. The definitions are in docs/definitions.md ("HTTP/2 streams").
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analyzers/client_request_boundaries.h"
#include "analyzers/client_requests.h"
#include "analyzers/connections.h"
#include "analyzers/hpack.h"
#include "analyzers/http2_frames.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/payload.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {
namespace {

// Socket reads and writes kept while no TLS call claims them: a call moves
// a few records, so a few dozen cover any call.
constexpr size_t kMaxPending = 64;

// The bytes a TLS call always keeps (one frame header): a longer payload
// means --payload asked for more.
constexpr size_t kTlsPeek = 9;

bool EndsStream(const H2FrameHeader& f) {
  return (f.type == static_cast<uint8_t>(Http2FrameType::kHeaders) ||
          f.type == static_cast<uint8_t>(Http2FrameType::kData)) &&
         (f.flags & kHttp2EndStream) != 0;
}

Http2Frame ToFrame(const H2FrameHeader& f) {
  Http2Frame out;
  out.length = f.length;
  out.type = f.type;
  out.flags = f.flags;
  out.stream_id = f.stream_id;
  return out;
}

// Where a call's bytes moved on the socket: its carriers' span, else the
// call's own.
struct CallSpan {
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
};

CallSpan SpanOf(const TlsDataEvent& e,
                const std::vector<SyscallRecord>& carriers) {
  if (carriers.empty()) return {e.enter_ns, e.exit_ns};
  return {carriers.front().start_ns(), carriers.back().exit_ns};
}

}  // namespace

void ClientRequestBoundaries::StartDecrypted(Conn* conn, ClientConn* client) {
  client->decrypted = std::make_unique<DecryptedConn>();
  DecryptedConn& d = *client->decrypted;
  OpenRequest* r = client->request.get();
  if (r == nullptr) return;
  if (r->has_write) {
    // Answered before the TLS calls showed (a connection mid-stream).
    finalizer_->Finalize(*conn, client);
    return;
  }
  // The request the record-level split opened at the read that carried
  // these bytes: its connection-level parts go to the first decrypted
  // request, its reads to the calls that claim them.
  exchanges_->StopWaiting(r);
  d.pending = std::move(r->syscalls);
  r->syscalls.clear();
  d.first = std::move(client->request);
}

void ClientRequestBoundaries::StartUpgraded(ClientConn* client) {
  client->decrypted = std::make_unique<DecryptedConn>();
  DecryptedConn& d = *client->decrypted;
  d.h2 = true;
  std::unique_ptr<OpenRequest> r = std::move(client->request);
  // Its write was the 101, not its response: that is stream 1's END_STREAM.
  r->has_write = false;
  r->first_write_start = 0;
  r->last_write_exit = 0;
  r->stream_id = 1;
  d.tracker.OpenUpgradeStream();
  // Its exchange is one begun since its read (before its 101: lighttpd),
  // taken at its response's first write as any request takes one
  // (exchanges.h), or one begun in the turn of the preface's read
  // (OnH2Read).
  exchanges_->Reclaim(r.get());
  d.upgraded = r.get();
  d.streams[1] = std::move(r);
}

void ClientRequestBoundaries::OnDecryptedSyscall(ClientConn* client,
                                                 const SyscallEvent& e,
                                                 const SyscallRecord& rec) {
  DecryptedConn& d = *client->decrypted;
  if ((IsRead(e.syscall) || IsWrite(e.syscall)) && e.ret > 0) {
    d.pending.push_back(rec);
    if (d.pending.size() > kMaxPending) d.pending.erase(d.pending.begin());
    return;
  }
  OpenRequest* r = client->request.get();
  if (d.h2 || r == nullptr) return;  // a stream owns no wait nor close
  if (IsRead(e.syscall)) {
    (r->has_write ? r->trailing : r->syscalls).push_back(rec);
  } else if (e.syscall == Syscall::kClose ||
             e.syscall == Syscall::kShutdown) {
    r->closes.push_back(rec);
  }
}

std::unique_ptr<OpenRequest> ClientRequestBoundaries::NewDecryptedRequest(
    Conn* conn, ClientConn* client, uint32_t tid, uint64_t start_ns,
    uint64_t read_exit) {
  DecryptedConn& d = *client->decrypted;
  std::unique_ptr<OpenRequest> r;
  if (d.first) {
    r = std::move(d.first);
    r->syscalls.clear();
    r->trailing.clear();
    r->request_line.reset();
  } else {
    r = std::make_unique<OpenRequest>();
    TakeConnection(conn, client, r.get());
  }
  r->has_read = true;
  r->tid = tid;
  r->first_read_start = start_ns;
  r->first_read_exit = read_exit;
  r->last_read_exit = read_exit;
  r->tls_mark_ns = start_ns;
  return r;
}

void ClientRequestBoundaries::OnTlsData(Conn* conn, ClientConn* client,
                                        const TlsDataEvent& e) {
  if (!client->decrypted) StartDecrypted(conn, client);
  DecryptedConn& d = *client->decrypted;
  // The socket calls this TLS call made: those that ended inside it.
  std::vector<SyscallRecord> carriers;
  const bool read = e.is_read();
  auto& pending = d.pending;
  for (const SyscallRecord& rec : pending) {
    if (rec.exit_ns >= e.enter_ns && rec.exit_ns <= e.exit_ns &&
        IsRead(rec.syscall) == read) {
      carriers.push_back(rec);
    }
  }
  pending.erase(std::remove_if(pending.begin(), pending.end(),
                               [&](const SyscallRecord& rec) {
                                 return rec.exit_ns <= e.exit_ns &&
                                        IsRead(rec.syscall) == read;
                               }),
                pending.end());
  if (e.h2()) d.h2 = true;
  if (d.h2) {
    if (d.lost) return;
    if ((e.flags & (TlsDataEvent::kFramesLost | TlsDataEvent::kMoreFrames)) !=
        0) {
      // Streams can no longer be told apart on this connection.
      d.lost = true;
      ++anomalies_->http2_frames_lost;
      EndStreams(*conn, client, IncompleteReason::kHttp2FramesLost);
      client->http2 = true;
      return;
    }
    if (read) {
      OnH2Read(conn, client, e, carriers);
    } else {
      OnH2Write(conn, client, e, carriers);
    }
    return;
  }
  OnH1Data(conn, client, e, carriers);
}

void ClientRequestBoundaries::OnH2Read(
    Conn* conn, ClientConn* client, const TlsDataEvent& e,
    const std::vector<SyscallRecord>& carriers) {
  DecryptedConn& d = *client->decrypted;
  const CallSpan span = SpanOf(e, carriers);
  std::vector<OpenRequest*> ended;  // requests whose last byte came here
  if (d.upgraded != nullptr) {
    ended.push_back(d.upgraded);  // the preface's read
    d.upgraded = nullptr;
  }
  for (const H2FrameHeader& f : e.frames) {
    Http2StreamEvent ev = d.tracker.OnFrame(ToFrame(f), true);
    if (ev == Http2StreamEvent::kRequestStart) {
      auto r = NewDecryptedRequest(conn, client, e.tid, span.start_ns,
                                   span.end_ns);
      r->stream_id = f.stream_id;
      r->syscalls = carriers;
      exchanges_->Await(r.get());
      d.streams[f.stream_id] = std::move(r);
    } else if (ev == Http2StreamEvent::kReset) {
      auto it = d.streams.find(f.stream_id);
      if (it != d.streams.end()) {
        std::unique_ptr<OpenRequest> r = std::move(it->second);
        d.streams.erase(it);
        ended.erase(std::remove(ended.begin(), ended.end(), r.get()),
                    ended.end());
        finalizer_->FinalizeRequest(*conn, std::move(r),
                                    IncompleteReason::kStreamReset);
      }
      continue;
    }
    if (EndsStream(f)) {
      auto it = d.streams.find(f.stream_id);
      if (it != d.streams.end() && !it->second->has_write) {
        OpenRequest* r = it->second.get();
        r->last_read_exit = span.end_ns;
        if (r->syscalls.empty() ||
            r->syscalls.back().exit_ns < span.end_ns) {
          r->syscalls.insert(r->syscalls.end(), carriers.begin(),
                             carriers.end());
        }
        ended.push_back(r);
      }
    }
  }
  if (e.payload.size() > kTlsPeek) DecodePaths(client, e);
  exchanges_->StreamsRead(conn->tgid, e.tid, conn->uid, span.end_ns,
                          std::move(ended));
}

void ClientRequestBoundaries::OnH2Write(
    Conn* conn, ClientConn* client, const TlsDataEvent& e,
    const std::vector<SyscallRecord>& carriers) {
  DecryptedConn& d = *client->decrypted;
  const CallSpan span = SpanOf(e, carriers);
  OpenRequest* last = nullptr;  // the stream the carriers were given to
  for (const H2FrameHeader& f : e.frames) {
    Http2StreamEvent ev = d.tracker.OnFrame(ToFrame(f), false);
    auto it = d.streams.find(f.stream_id);
    if (it == d.streams.end()) continue;
    OpenRequest* r = it->second.get();
    if (!r->has_write) {
      r->has_write = true;
      r->first_write_start = span.start_ns;
      if (!r->exchange && !r->stream_unpaired) {
        exchanges_->Attribute(r, span.start_ns);
      }
      exchanges_->StopWaiting(r);
    }
    if (r != last) {
      r->syscalls.insert(r->syscalls.end(), carriers.begin(), carriers.end());
      last = r;
    }
    r->last_write_exit = std::max(r->last_write_exit, span.end_ns);
    if (ev == Http2StreamEvent::kResponseEnd ||
        ev == Http2StreamEvent::kReset) {
      std::unique_ptr<OpenRequest> done = std::move(it->second);
      d.streams.erase(it);
      if (d.upgraded == done.get()) d.upgraded = nullptr;
      last = nullptr;
      finalizer_->FinalizeRequest(
          *conn, std::move(done),
          ev == Http2StreamEvent::kReset
              ? std::optional(IncompleteReason::kStreamReset)
              : std::nullopt);
    }
  }
}

// With --payload, the client's header blocks as far as the captured
// prefixes show them: method and :path of each new stream. HPACK's dynamic
// table needs every block in order, so a block not wholly seen ends the
// decoding for the connection (no path rather than a wrong one).
void ClientRequestBoundaries::DecodePaths(ClientConn* client,
                                          const TlsDataEvent& e) {
  DecryptedConn& d = *client->decrypted;
  if (!d.paths) return;
  if (!d.client_frames) {
    if ((e.flags & TlsDataEvent::kPreface) == 0) {
      d.paths = false;  // its start was not seen
      return;
    }
    Http2FrameParser::Options options;
    options.client_preface = true;
    options.max_payload_kept = 1 << 16;
    d.client_frames = std::make_unique<Http2FrameParser>(options);
  }
  std::vector<Http2Frame> frames;
  // A frame header past the captured prefix ends the decoding, after the
  // blocks wholly seen before it (a read of many HEADERS at once: h2c's
  // first read carries the preface, SETTINGS and every first request).
  const bool fed = d.client_frames->Feed(e.payload, e.bytes, &frames).ok();
  if (!fed) d.paths = false;
  for (const Http2Frame& f : frames) {
    const bool headers = f.is(Http2FrameType::kHeaders);
    if (!headers && !f.is(Http2FrameType::kContinuation)) continue;
    if (!f.payload_complete()) {
      d.paths = false;
      return;
    }
    absl::StatusOr<std::string_view> fragment =
        HeadersFragment(f.payload, headers ? f.flags : 0);
    if (!fragment.ok()) {
      d.paths = false;
      return;
    }
    if (headers) {
      d.header_block.clear();
      d.header_stream = f.stream_id;
    }
    d.header_block.append(fragment->data(), fragment->size());
    if ((f.flags & kHttp2EndHeaders) == 0) continue;
    absl::StatusOr<std::vector<HeaderField>> fields =
        d.hpack.Decode(d.header_block);
    d.header_block.clear();
    if (!fields.ok()) {
      d.paths = false;
      return;
    }
    std::string method, path;
    for (const HeaderField& h : *fields) {
      if (h.name == ":method") method = h.value;
      if (h.name == ":path") path = h.value;
    }
    // Read as an HTTP/1.x request line is: a token, a path of visible
    // ASCII shown without its query; HPACK values are any bytes.
    auto it = d.streams.find(d.header_stream);
    if (it != d.streams.end() && !it->second->request_line.has_value()) {
      it->second->request_line = ParseHttpRequestLine(method + " " + path);
    }
  }
}

void ClientRequestBoundaries::OnH1Data(
    Conn* conn, ClientConn* client, const TlsDataEvent& e,
    const std::vector<SyscallRecord>& carriers) {
  const CallSpan span = SpanOf(e, carriers);
  OpenRequest* r = client->request.get();
  if (e.is_read()) {
    if (r != nullptr && r->has_write) {
      finalizer_->Finalize(*conn, client);
      r = nullptr;
    }
    if (r == nullptr) {
      client->request =
          NewDecryptedRequest(conn, client, e.tid, span.start_ns, span.end_ns);
      r = client->request.get();
      if (e.payload.size() > kTlsPeek) {
        r->request_line = ParseHttpRequestLine(e.payload);
      }
      exchanges_->Await(r);
    }
    r->last_read_exit = span.end_ns;
    r->syscalls.insert(r->syscalls.end(), carriers.begin(), carriers.end());
    return;
  }
  if (r == nullptr) {
    ++anomalies_->stray_events;
    return;
  }
  if (!r->has_write) {
    r->has_write = true;
    r->first_write_start = span.start_ns;
    exchanges_->Attribute(r, span.start_ns);
    exchanges_->StopWaiting(r);
  }
  for (auto& t : r->trailing) r->syscalls.push_back(t);
  r->trailing.clear();
  r->syscalls.insert(r->syscalls.end(), carriers.begin(), carriers.end());
  r->last_write_exit = std::max(r->last_write_exit, span.end_ns);
}

void ClientRequestBoundaries::EndStreams(const Conn& conn, ClientConn* client,
                                         IncompleteReason reason) {
  if (!client->decrypted) return;
  DecryptedConn& d = *client->decrypted;
  auto streams = std::move(d.streams);
  d.streams.clear();
  d.upgraded = nullptr;
  for (auto& [id, r] : streams) {
    finalizer_->FinalizeRequest(conn, std::move(r), reason);
  }
  // Connection-level parts no request took (a connection that carried no
  // request) are dropped with it.
  d.first.reset();
}

void ClientRequestBoundaries::DropStreams(ClientConn* client) {
  if (!client->decrypted) return;
  for (auto& [id, r] : client->decrypted->streams) {
    exchanges_->StopWaiting(r.get());
    exchanges_->ForgetStream(r.get());
  }
  client->decrypted->streams.clear();
  client->decrypted->upgraded = nullptr;
}

}  // namespace reqcost::analyzers
