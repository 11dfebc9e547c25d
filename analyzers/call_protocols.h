// What a backend's call is to: the protocol of an outgoing connection,
// recognised from the first bytes each way (when the payload is captured) or
// from the port or unix socket path, and the query a call sends (with
// --payload). Every function accepts any bytes (short, binary, truncated)
// and answers "not recognised" rather than guess.
#ifndef REQCOST_ANALYZERS_CALL_PROTOCOLS_H_
#define REQCOST_ANALYZERS_CALL_PROTOCOLS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace reqcost::analyzers {

enum class CallProtocol : uint8_t {
  kUnknown,
  kMysql,
  kPostgresql,
  kRedis,
  kMemcached,
  kHttp,
  kFastCgi,
};

// "mysql", "postgresql", "redis", "memcached", "http", "fastcgi"; "" for
// kUnknown.
std::string_view ProtocolName(CallProtocol protocol);

// The protocol whose client message `prefix` begins (the captured start of a
// send of `len` bytes): a PostgreSQL startup, SSL or GSS request or simple
// query; a Redis RESP array; a memcached text or binary command; an HTTP/1.x
// request line; a FastCGI BEGIN_REQUEST record; a MySQL command packet whose
// length is the send's. kUnknown otherwise.
CallProtocol DetectFromSend(std::string_view prefix, uint64_t len);

// The protocol whose server greeting `prefix` begins (bytes the server sent
// before the client's first send): a MySQL/MariaDB handshake (protocol 10).
// kUnknown otherwise.
CallProtocol DetectFromGreeting(std::string_view prefix);

// The protocol of a well-known server port: 3306 mysql, 5432 postgresql,
// 6379 redis, 11211 memcached, 80 and 8080 http, 9000 fastcgi; else
// kUnknown.
CallProtocol ProtocolByPort(uint16_t port);

// The protocol a unix socket path names by its file name: "mysql" in it
// (mysqld.sock), ".s.PGSQL.", "redis", "memcached"; else kUnknown.
CallProtocol ProtocolByPath(std::string_view path);

// The query a client message carries, for display: a MySQL COM_QUERY's or
// COM_STMT_PREPARE's text, a PostgreSQL simple query's or Parse's text (both
// cut to `max` bytes, as valid UTF-8), a Redis command's name only (upper
// case, never its arguments), a memcached command word, an HTTP request line
// ("GET /path"). Empty when `prefix` carries none.
std::string ExtractQuery(CallProtocol protocol, std::string_view prefix,
                         size_t max);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_CALL_PROTOCOLS_H_
