// The phases of a request and their names: the one table that text, JSON,
// HTML data, compare, metrics and the exporters read.
#ifndef REQCOST_ANALYZERS_PHASE_H_
#define REQCOST_ANALYZERS_PHASE_H_

#include <array>
#include <cstddef>

namespace reqcost::analyzers {

// A phase of a complete request. total = server + transport + backend;
// queue is part of transport and tls part of server, both only where known.
enum class Phase { kTotal, kServer, kTransport, kBackend, kQueue, kTls };

inline constexpr size_t kPhaseCount = 6;

// Every phase in display order (the order of tables, JSON deltas and
// metric series); kPhases[i] has index i.
inline constexpr std::array<Phase, kPhaseCount> kPhases = {
    Phase::kTotal,   Phase::kServer, Phase::kTransport,
    Phase::kBackend, Phase::kQueue,  Phase::kTls};

// The phase's position in kPhases.
constexpr size_t PhaseIndex(Phase phase) { return static_cast<size_t>(phase); }

// "total", "server", "transport", "backend", "queue", "tls": the name in
// text, JSON keys, metric labels and span attributes.
constexpr const char* PhaseName(Phase phase) {
  constexpr std::array<const char*, kPhaseCount> kNames = {
      "total", "server", "transport", "backend", "queue", "tls"};
  return kNames[PhaseIndex(phase)];
}

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PHASE_H_
