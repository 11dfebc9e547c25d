#include "analyzers/call_protocols.h"

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "analyzers/payload.h"

namespace reqcost::analyzers {
namespace {

uint32_t Be32(std::string_view s, size_t at) {
  return static_cast<uint32_t>(static_cast<uint8_t>(s[at])) << 24 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[at + 1])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[at + 2])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[at + 3]));
}

uint32_t Le24(std::string_view s) {
  return static_cast<uint32_t>(static_cast<uint8_t>(s[0])) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[2])) << 16;
}

// MySQL command bytes a client sends as the first packet of a call.
bool IsMysqlCommand(uint8_t cmd) {
  switch (cmd) {
    case 0x01:  // COM_QUIT
    case 0x02:  // COM_INIT_DB
    case 0x03:  // COM_QUERY
    case 0x0e:  // COM_PING
    case 0x11:  // COM_CHANGE_USER
    case 0x16:  // COM_STMT_PREPARE
    case 0x17:  // COM_STMT_EXECUTE
    case 0x19:  // COM_STMT_CLOSE
    case 0x1f:  // COM_RESET_CONNECTION
      return true;
    default:
      return false;
  }
}

bool IsMysqlCommandPacket(std::string_view p, uint64_t len) {
  if (p.size() < 5) return false;
  return Le24(p) + 4 == len && p[3] == 0 &&
         IsMysqlCommand(static_cast<uint8_t>(p[4]));
}

bool IsPostgresStartup(std::string_view p, uint64_t len) {
  if (p.size() < 8) return false;
  constexpr uint32_t kProtocol3 = 196608;   // 3.0
  constexpr uint32_t kCancel = 80877102;
  constexpr uint32_t kSslRequest = 80877103;
  constexpr uint32_t kGssRequest = 80877104;
  const uint32_t size = Be32(p, 0);
  const uint32_t code = Be32(p, 4);
  if (size < 8 || size > len || size > 10000) return false;
  return code == kProtocol3 || code == kCancel || code == kSslRequest ||
         code == kGssRequest;
}

bool IsPostgresQuery(std::string_view p, uint64_t len) {
  if (p.size() < 5 || p[0] != 'Q') return false;
  const uint32_t size = Be32(p, 1);
  return size >= 5 && uint64_t{size} + 1 <= len;
}

// "*<digits>\r\n$": a RESP array of bulk strings, as every client sends.
bool IsRespArray(std::string_view p) {
  if (p.size() < 4 || p[0] != '*') return false;
  size_t i = 1;
  while (i < p.size() && i < 12 && std::isdigit(static_cast<uint8_t>(p[i]))) {
    ++i;
  }
  if (i == 1) return false;
  return p.substr(i, 3) == "\r\n$" ||
         (p.size() < i + 3 && std::string_view("\r\n$").substr(
                                  0, p.size() - i) == p.substr(i));
}

constexpr std::string_view kMemcachedWords[] = {
    "get",    "gets",    "gat",  "gats",      "set",       "add",
    "replace", "append", "prepend", "cas",    "delete",    "incr",
    "decr",   "touch",   "stats", "version",  "flush_all", "verbosity",
    "mg",     "ms",      "md",   "ma",        "mn",        "me",
    "quit"};

// The memcached text command word at the start of `p`, or empty.
std::string_view MemcachedWord(std::string_view p) {
  size_t end = p.find_first_of(" \r");
  if (end == std::string_view::npos) return {};
  std::string_view word = p.substr(0, end);
  for (std::string_view w : kMemcachedWords) {
    if (word == w) return w;
  }
  return {};
}

bool IsMemcachedBinary(std::string_view p, uint64_t len) {
  constexpr uint8_t kRequestMagic = 0x80;
  constexpr size_t kHeader = 24;
  if (p.size() < 12 || static_cast<uint8_t>(p[0]) != kRequestMagic) {
    return false;
  }
  return uint64_t{Be32(p, 8)} + kHeader == len;
}

std::string Cut(std::string_view text, size_t max) {
  if (text.size() > max) text = text.substr(0, max);
  return ValidUtf8(text);
}

}  // namespace

std::string_view ProtocolName(CallProtocol protocol) {
  switch (protocol) {
    case CallProtocol::kMysql:
      return "mysql";
    case CallProtocol::kPostgresql:
      return "postgresql";
    case CallProtocol::kRedis:
      return "redis";
    case CallProtocol::kMemcached:
      return "memcached";
    case CallProtocol::kHttp:
      return "http";
    case CallProtocol::kFastCgi:
      return "fastcgi";
    case CallProtocol::kUnknown:
      break;
  }
  return "";
}

CallProtocol DetectFromSend(std::string_view prefix, uint64_t len) {
  if (prefix.empty() || len == 0) return CallProtocol::kUnknown;
  if (auto h = ParseFastCgiHeader(prefix);
      h.has_value() && h->type == kFcgiBeginRequest) {
    return CallProtocol::kFastCgi;
  }
  if (IsMysqlCommandPacket(prefix, len)) return CallProtocol::kMysql;
  if (IsPostgresStartup(prefix, len) || IsPostgresQuery(prefix, len)) {
    return CallProtocol::kPostgresql;
  }
  if (IsRespArray(prefix)) return CallProtocol::kRedis;
  if (ParseHttpRequestLine(prefix).has_value()) return CallProtocol::kHttp;
  if (!MemcachedWord(prefix).empty() || IsMemcachedBinary(prefix, len)) {
    return CallProtocol::kMemcached;
  }
  return CallProtocol::kUnknown;
}

CallProtocol DetectFromGreeting(std::string_view p) {
  // [length: 3 bytes LE][sequence 0][protocol 10][server version "5.5.5-..."]
  if (p.size() < 6 || p[3] != 0 || p[4] != 0x0a) return CallProtocol::kUnknown;
  const uint32_t size = Le24(p);
  if (size < 20 || size > 1024) return CallProtocol::kUnknown;
  if (!std::isdigit(static_cast<uint8_t>(p[5]))) return CallProtocol::kUnknown;
  return CallProtocol::kMysql;
}

CallProtocol ProtocolByPort(uint16_t port) {
  switch (port) {
    case 3306:
      return CallProtocol::kMysql;
    case 5432:
      return CallProtocol::kPostgresql;
    case 6379:
      return CallProtocol::kRedis;
    case 11211:
      return CallProtocol::kMemcached;
    case 80:
    case 8080:
      return CallProtocol::kHttp;
    case 9000:
      return CallProtocol::kFastCgi;
    default:
      return CallProtocol::kUnknown;
  }
}

CallProtocol ProtocolByPath(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view name =
      slash == std::string_view::npos ? path : path.substr(slash + 1);
  const std::string lower = absl::AsciiStrToLower(std::string(name));
  if (lower.find(".s.pgsql.") != std::string::npos) {
    return CallProtocol::kPostgresql;
  }
  if (lower.find("mysql") != std::string::npos ||
      lower.find("mariadb") != std::string::npos) {
    return CallProtocol::kMysql;
  }
  if (lower.find("redis") != std::string::npos) return CallProtocol::kRedis;
  if (lower.find("memcached") != std::string::npos) {
    return CallProtocol::kMemcached;
  }
  return CallProtocol::kUnknown;
}

std::string ExtractQuery(CallProtocol protocol, std::string_view p,
                         size_t max) {
  switch (protocol) {
    case CallProtocol::kMysql: {
      if (p.size() < 5 || p[3] != 0) return "";
      const uint8_t cmd = static_cast<uint8_t>(p[4]);
      if (cmd != 0x03 && cmd != 0x16) return "";
      const uint32_t size = Le24(p);
      if (size < 1) return "";
      std::string_view text = p.substr(5);
      if (text.size() > size - 1) text = text.substr(0, size - 1);
      return Cut(text, max);
    }
    case CallProtocol::kPostgresql: {
      if (p.size() < 5) return "";
      const uint32_t size = Be32(p, 1);
      if (size < 4) return "";
      std::string_view body = p.substr(5);
      if (body.size() > size - 4) body = body.substr(0, size - 4);
      if (p[0] == 'P') {  // Parse: statement name, then the query
        size_t nul = body.find('\0');
        if (nul == std::string_view::npos) return "";
        body = body.substr(nul + 1);
      } else if (p[0] != 'Q') {
        return "";
      }
      return Cut(body.substr(0, body.find('\0')), max);
    }
    case CallProtocol::kRedis: {
      if (!IsRespArray(p)) return "";
      size_t dollar = p.find("\r\n$");
      if (dollar == std::string_view::npos) return "";
      size_t i = dollar + 3;
      size_t n = 0;
      size_t digits = 0;
      while (i < p.size() && std::isdigit(static_cast<uint8_t>(p[i])) &&
             digits < 3) {
        n = n * 10 + static_cast<size_t>(p[i] - '0');
        ++i;
        ++digits;
      }
      constexpr size_t kMaxCommandName = 32;
      if (digits == 0 || n == 0 || n > kMaxCommandName ||
          p.substr(i, 2) != "\r\n" || p.size() < i + 2 + n) {
        return "";
      }
      std::string_view name = p.substr(i + 2, n);
      for (char c : name) {
        if (!std::isalnum(static_cast<uint8_t>(c)) && c != '_' && c != '.' &&
            c != '|' && c != '-') {
          return "";
        }
      }
      return absl::AsciiStrToUpper(std::string(name));
    }
    case CallProtocol::kMemcached: {
      std::string_view word = MemcachedWord(p);
      if (!word.empty()) return std::string(word);
      if (p.size() >= 2 && static_cast<uint8_t>(p[0]) == 0x80) {
        return absl::StrFormat("opcode 0x%02x", static_cast<uint8_t>(p[1]));
      }
      return "";
    }
    case CallProtocol::kHttp:
      return ParseHttpRequestLine(p).value_or("");
    case CallProtocol::kFastCgi:
    case CallProtocol::kUnknown:
      break;
  }
  return "";
}

}  // namespace reqcost::analyzers
