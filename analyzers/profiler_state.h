// The profiler's state, shared by its stages (internal to the profiler):
// the per-stage types and Profiler::State, whose methods are defined in the
// stage files.
#ifndef REQCOST_ANALYZERS_PROFILER_STATE_H_
#define REQCOST_ANALYZERS_PROFILER_STATE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analyzers/client_requests.h"
#include "analyzers/exchanges.h"
#include "analyzers/payload.h"
#include "analyzers/profiler.h"
#include "analyzers/profiler_records.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

enum class Role { kUnknown, kClient, kLink, kBackendSide, kIgnored };

struct Conn {
  uint64_t uid = 0;
  uint32_t tgid = 0;
  int32_t fd = -1;
  Role role = Role::kUnknown;
  bool preattach = false;  // first seen on a read/write/close, not accept/connect
  // Why its first request is incomplete when preattach (see Open's caller).
  const char* preattach_reason = nullptr;
  bool accepted = false;  // opened by accept (vs connect or unknown)
  bool role_guessed = false;  // paired before attach with no evidence
  SocketId sock;
  uint64_t requests = 0;  // client requests / exchanges / backend works so far
  std::optional<uint64_t> partner;  // uid of the paired connection
  // Bytes sent / read on it while traced: stream offsets that match the other
  // end's when both ends were opened while tracing.
  uint64_t bytes_out = 0;
  uint64_t bytes_in = 0;
  // Client.
  std::optional<SyscallRecord> accept;
  std::unique_ptr<OpenRequest> request;
  // Backend link.
  std::shared_ptr<Exchange> exchange;
  // Oldest first, at most kMaxQueued each (vectors: most links never queue
  // more than one, and a deque allocates even when empty).
  std::vector<std::shared_ptr<Exchange>> unbound_exchanges;
  std::vector<std::shared_ptr<BackendWork>> unbound_work;
  FastCgiStream fcgi_out;
  FastCgiStream fcgi_in;
  // Backend side.
  std::shared_ptr<BackendWork> work;
  std::optional<uint64_t> accept_exit;
};

struct ProcessState {
  std::string comm;
  bool has_client = false;
  bool has_backend_side = false;
  std::vector<OpenRequest*> waiting;  // no response write yet, oldest first
  std::deque<std::shared_ptr<Exchange>> candidates;  // unattributed
};

using TupleKey = std::tuple<std::array<uint8_t, 16>, uint16_t,
                            std::array<uint8_t, 16>, uint16_t>;

// An event waiting in the reorder buffer, processed in order of `key`, then
// of arrival.
struct Queued {
  template <typename Event>
  Queued(uint64_t key, const Event& event) : key(key), item(event) {}

  uint64_t key = 0;
  std::variant<SyscallEvent, ProcessEvent> item;
};

struct Profiler::State {
  ProfilerOptions options;
  std::function<void(const Request&)> callback;
  RequestStats stats;
  Anomalies anomalies;

  // Sorted by key; equal keys in arrival order. Events arrive almost in
  // order, so nearly every one is appended at the back.
  std::deque<Queued> queue;
  uint64_t newest_ns = 0;
  uint64_t processed_ns = 0;

  uint64_t next_uid = 1;
  uint64_t next_request_id = 1;
  uint64_t next_exchange_seq = 1;
  std::map<uint64_t, Conn> conns;  // by uid
  // Lookups only (never iterated: their order is not the uid order).
  absl::flat_hash_map<std::pair<uint32_t, int32_t>, Conn*> by_fd;
  // Connections whose fd was reused before their close was seen, by that
  // fd: in a threaded process the fd is free before close() returns, so
  // another thread's accept can come first. Each waits for its own close
  // until the next other event on the fd (see Settle).
  absl::flat_hash_map<std::pair<uint32_t, int32_t>, Conn*> displaced;
  absl::flat_hash_map<uint64_t, uint64_t> unix_index;  // sock id -> uid
  absl::flat_hash_map<TupleKey, uint64_t> inet_index;
  std::set<uint16_t> listen_ports;
  std::map<uint32_t, ProcessState> processes;
  std::vector<std::pair<uint64_t, uint64_t>> drops;
  // Start of the first drop window ever (drops forgets old windows): a
  // connection first seen after it may have had its accept dropped.
  std::optional<uint64_t> first_drop_ns;

  // Reordering and dispatch (profiler.cc).
  template <typename Event>
  void Push(uint64_t key, const Event& event);
  void Drain(bool all);
  void Handle(const SyscallEvent& e);
  void Dispatch(Conn* conn, const SyscallEvent& e);
  void ProcessExit(uint32_t tgid);

  Conn* Find(uint32_t tgid, int32_t fd);
  Conn* Open(const SyscallEvent& e, int32_t fd, bool accepted);
  void Close(Conn* conn);
  bool Settle(const SyscallEvent& e);
  void Index(Conn* conn);
  void Unindex(Conn* conn);
  Conn* FindPartner(const Conn& conn);
  void Classify(Conn* conn);
  void MakeLink(Conn* link, Conn* side);
  void NoteClient(uint32_t tgid);

  void FinalizeRequest(Conn* conn, std::string_view reason);

  // Client request boundaries (client_requests.cc).
  void OnClientEvent(Conn* conn, const SyscallEvent& e);

  // Backend exchanges and attribution (exchanges.cc).
  void OnLinkEvent(Conn* conn, const SyscallEvent& e);
  void OnBackendSideEvent(Conn* conn, const SyscallEvent& e);
  bool ContinuesWork(const Conn& side, const BackendWork& work, uint64_t len);
  void StartWorkAt(BackendWork* work, uint64_t first_read_exit);
  std::shared_ptr<Exchange> NewExchange(Conn* link, uint64_t start_enter,
                                        bool partial);
  void Bind(Conn* link);
  void Attribute(OpenRequest* request, uint64_t write_start);
  void PruneCandidates(uint32_t tgid);
  void StopWaiting(OpenRequest* request);
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PROFILER_STATE_H_
