// Joining the captures of several hosts: a front end on one host, its TCP
// backends on others, each recorded by its own `reqcost record` and profiled
// on its own (its clock, its tables). The joiner is a step after that.
//
// Matching, never by time across hosts: a front's backend exchange (its
// link's connection, seen from the connecting end, and the TCP sequence
// number of the exchange's first sent byte) matches the request a backend
// host read on the same connection (seen from the accepting end: the same
// 4-tuple, mirrored) whose reads hold that byte. Sequence numbers are the
// kernel's own (write_seq at the sender, copied_seq at the receiver), the
// same at both ends, so a kept connection's exchanges match one by one and
// a connection opened before attach matches as well.
//
// Phases of a joined request, each a duration taken within one capture:
// backend from the backend host ([exit of the read that holds the exchange's
// first byte, exit of the backend's last reply write]); the exchange W from
// the front host; transport = |W| - backend (backend is clamped to |W|, and
// the clamp counted); server and total unchanged from the front host. Queue
// (connect to the backend's accept) would need both clocks and is unknown.
//
// Clocks: a capture's wall-clock offset only places the requests of the
// other captures that joined nothing on the first capture's time line, for
// display; a joined request's backend syscalls are drawn centred in its
// exchange. Shifting one capture's clocks changes no figure.
//
// Where the hosts see different 4-tuples (DNAT, a TCP load balancer, a
// proxy) nothing matches: such exchanges and backend requests stay as they
// were, counted and named by their endpoints. The NAT table (conntrack)
// holds the translation that would join them; reqcost does not read it.
#ifndef REQCOST_ANALYZERS_HOST_JOIN_H_
#define REQCOST_ANALYZERS_HOST_JOIN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "analyzers/request.h"

namespace reqcost::analyzers {

// One capture's finalized requests (complete or not), in the order they were
// finalized, with what the capture says about its host and clock.
struct HostRequests {
  std::string name;              // the capture file, for messages
  std::string host;              // its host name
  int64_t mono_to_wall_ns = 0;   // wall clock = CLOCK_MONOTONIC + this
  std::vector<Request> requests;
};

// Exchanges or backend requests that matched nothing, for one capture and
// one pair of endpoints.
struct UnmatchedEndpoints {
  std::string capture;
  // "front": a front's exchanges to `server` that no backend capture has;
  // "backend": a backend's requests from `client` that no front capture
  // sent.
  std::string side;
  std::string client;  // "address" (the client port varies per connection)
  std::string server;  // "address:port"
  uint64_t count = 0;
};

// What the join did.
struct JoinSummary {
  uint64_t captures = 0;
  uint64_t matched = 0;  // exchanges joined with the backend host's request
  // Of them, joined but left as the front measured them: the front's or
  // the backend's request was incomplete.
  uint64_t matched_incomplete = 0;
  uint64_t clamped = 0;  // backend longer than its exchange: clamped to it
  uint64_t unmatched_exchanges = 0;  // front TCP exchanges that matched none
  uint64_t unmatched_backend = 0;    // backend requests no front exchange had
  // The unmatched ones by capture and endpoints, most first.
  std::vector<UnmatchedEndpoints> unmatched;
};

// The requests of every host after joining: each capture's requests in
// order, a joined backend request folded into its front's request (and not
// kept on its own), the other captures' remaining requests shifted onto the
// first capture's clock by the wall-clock offsets. Ids are renumbered 1, 2,
// ... in that order.
struct JoinResult {
  std::vector<Request> requests;
  JoinSummary summary;
};

// Joins the captures in `hosts` (the first one's clock is the reference
// for display).
JoinResult JoinHosts(std::vector<HostRequests> hosts);

// "address:port" ("[v6]:port") of one end of `t`.
std::string ServerEndpoint(const WireTuple& t);
// The client's address of `t`, without its port.
std::string ClientAddress(const WireTuple& t);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_HOST_JOIN_H_
