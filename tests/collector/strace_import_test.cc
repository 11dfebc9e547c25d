// The strace log parser on hand-written log lines (the formats strace 6.1
// prints with -f -ttt -T -yy -Y, -tt, -ff, no -yy, and broken lines).
#include "collector/strace_import.h"

#include <sys/socket.h>

#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collector/event.h"

namespace reqcost::collector {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

StraceImport Import(std::string_view text, std::string name = "log") {
  return ImportStrace({{std::move(name), text}});
}

// nginx worker 100 and php-fpm worker 200 over a unix socket, as strace -f
// -ttt -T -yy -Y -s 64 prints them (inodes and times made up).
constexpr std::string_view kUnixStack =
    "100<nginx> 1000.000100 accept4(6<TCP:[127.0.0.1:8080]>, "
    "{sa_family=AF_INET, "
    "sin_port=htons(40000), sin_addr=inet_addr(\"127.0.0.1\")}, [112 => 16], "
    "SOCK_NONBLOCK) = 3<TCP:[127.0.0.1:8080->127.0.0.1:40000]> <0.000010>\n"
    "100<nginx> 1000.000200 recvfrom(3<TCP:[127.0.0.1:8080->127.0.0.1:40000]>, "
    "\"GET /sleep.php?us=20000 HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n\", 1024, 0, "
    "NULL, "
    "NULL) = 45 <0.000008>\n"
    "100<nginx> 1000.000300 connect(9<UNIX-STREAM:[5001]>, {sa_family=AF_UNIX, "
    "sun_path=\"/tmp/t/php-fpm.sock\"}, 110) = 0 <0.000020>\n"
    "200<php-fpm8.2> 1000.000050 "
    "accept(0<UNIX-STREAM:[4000,\"/tmp/t/php-fpm.sock\"]>, "
    "{sa_family=AF_UNIX},  <unfinished ...>\n"
    "100<nginx> 1000.000400 writev(9<UNIX-STREAM:[5001]>, "
    "[{iov_base=\"\\1\\1\\0\\1\\0\\10"
    "\\0\\0\\0\\1\\0\\0\\0\\0\\0\\0\", iov_len=16}, "
    "{iov_base=\"\\1\\4\\0\\1\"..., "
    "iov_len=500}], 2) = 516 <0.000015>\n"
    "200<php-fpm8.2> 1000.000410 <... accept resumed>[112 => 2]) = "
    "4<UNIX-STREAM:[5002->5001,\"/tmp/t/php-fpm.sock\"]> <0.000355>\n"
    "200<php-fpm8.2> 1000.000500 "
    "read(4<UNIX-STREAM:[5002->5001,\"/tmp/t/php-fpm.sock\"]>, "
    "\"\\1\\1\\0\\1\\0\\10\\0\\0\"..., 8) = 8 <0.000005>\n"
    "200<php-fpm8.2> 1000.000600 openat(AT_FDCWD</>, \"/srv/sleep.php\", "
    "O_RDONLY) = "
    "5</srv/sleep.php> <0.000005>\n"
    "200<php-fpm8.2> 1000.000700 read(5</srv/sleep.php>, \"<?php\"..., 4096) = "
    "200 "
    "<0.000003>\n"
    "200<php-fpm8.2> 1000.020700 "
    "write(4<UNIX-STREAM:[5002->5001,\"/tmp/t/php-fpm.sock\"]>, "
    "\"\\1\\6\\0\\1\\0\\20\\0\\0\", 8) = 8 <0.000012>\n"
    "100<nginx> 1000.020800 recvfrom(9<UNIX-STREAM:[5001]>, \"\\1\\6\\0\\1\", "
    "4096, 0, "
    "NULL, NULL) = 8 <0.000006>\n"
    "100<nginx> 1000.020900 close(9<UNIX-STREAM:[5001]>) = 0 <0.000004>\n"
    "100<nginx> 1000.021000 writev(3<TCP:[127.0.0.1:8080->127.0.0.1:40000]>, "
    "[{iov_base=\"HTTP/1.1 200 OK\\r\\n\"..., iov_len=150}], 1) = 150 "
    "<0.000030>\n"
    "100<nginx> 1000.021100 close(3<TCP:[127.0.0.1:8080->127.0.0.1:40000]>) = "
    "0 "
    "<0.000005>\n"
    "200<php-fpm8.2> 1000.021200 --- SIGCHLD {si_signo=SIGCHLD, "
    "si_code=CLD_EXITED, "
    "si_pid=300<php-fpm8.2>} ---\n";

TEST(StraceImportTest, SocketCallsBecomeEventsWithTimesFromTtttAndT) {
  StraceImport im = Import(kUnixStack);
  EXPECT_EQ(im.stats.malformed, 0u) << im.stats.malformed_samples.size();
  ASSERT_EQ(im.events.size(), 11u);  // the file read and openat are not events
  const SyscallEvent& accept4 = im.events[0];
  EXPECT_EQ(accept4.syscall, Syscall::kAccept4);
  EXPECT_EQ(accept4.tgid, 100u);
  EXPECT_EQ(accept4.fd, 6);
  EXPECT_EQ(accept4.ret, 3);
  EXPECT_EQ(accept4.enter_ns, 1000'000'100'000u);
  EXPECT_EQ(accept4.exit_ns, 1000'000'110'000u);
  EXPECT_EQ(accept4.flags, SyscallEvent::kListener);
  EXPECT_EQ(accept4.sock.family, AF_INET);
  EXPECT_EQ(accept4.sock.local_port, 8080);
  EXPECT_EQ(accept4.sock.remote_port, 40000);
  EXPECT_EQ(accept4.sock.local_addr[0], 127);
  EXPECT_EQ(accept4.sock.local_addr[3], 1);
  EXPECT_EQ(im.stats.not_socket, 1u);   // read of sleep.php
  EXPECT_EQ(im.stats.other_calls, 1u);  // openat
  EXPECT_EQ(im.stats.signals, 1u);
  EXPECT_EQ(im.stats.identified, 11u);
  EXPECT_FALSE(im.inferred_only());
  // Events come out by exit time: every one after its predecessor.
  for (size_t i = 1; i < im.events.size(); ++i) {
    EXPECT_LE(im.events[i - 1].exit_ns, im.events[i].exit_ns);
  }
}

TEST(StraceImportTest, PayloadIsTheDecodedStringsUpToTheFirstCutOne) {
  StraceImport im = Import(kUnixStack);
  ASSERT_GE(im.events.size(), 5u);
  EXPECT_EQ(im.events[1].syscall, Syscall::kRecvfrom);
  EXPECT_EQ(im.events[1].payload,
            "GET /sleep.php?us=20000 HTTP/1.0\r\nHost: x\r\n\r\n");
  const SyscallEvent& writev = im.events[4];  // after the accept's end
  ASSERT_EQ(writev.syscall, Syscall::kWritev);
  // Both iovecs: the first whole (16 bytes), the second cut after 4 bytes.
  EXPECT_EQ(writev.payload,
            std::string("\1\1\0\1\0\10\0\0\0\1\0\0\0\0\0\0\1\4\0\1", 20));
  EXPECT_EQ(writev.ret, 516);
  EXPECT_EQ(im.stats.payload_bytes, 45u);
}

TEST(StraceImportTest, UnixPeersPairBothEndsAndConnectKeepsItsPath) {
  StraceImport im = Import(kUnixStack);
  const SyscallEvent* connect = nullptr;
  const SyscallEvent* accept = nullptr;
  for (const SyscallEvent& e : im.events) {
    if (e.syscall == Syscall::kConnect) connect = &e;
    if (e.syscall == Syscall::kAccept) accept = &e;
  }
  ASSERT_NE(connect, nullptr);
  ASSERT_NE(accept, nullptr);
  // strace shows the peer on the accepting end only: the connecting end
  // gets it from there, as the kernel's peer pointers pair both ends.
  EXPECT_EQ(connect->sock.sock, 5001u);
  EXPECT_EQ(connect->sock.peer, 5002u);
  EXPECT_EQ(accept->sock.sock, 5002u);
  EXPECT_EQ(accept->sock.peer, 5001u);
  EXPECT_EQ(accept->fd, 0);
  EXPECT_EQ(accept->ret, 4);
  EXPECT_TRUE(connect->flags & SyscallEvent::kPeerPath);
  EXPECT_EQ(connect->payload, "/tmp/t/php-fpm.sock");
  // The unfinished accept started at its first line and took -T's 355 us.
  EXPECT_EQ(accept->enter_ns, 1000'000'050'000u);
  EXPECT_EQ(accept->exit_ns, 1000'000'405'000u);
}

TEST(StraceImportTest, ProcessesComeFromTheLogWithCommsFromY) {
  StraceImport im = Import(kUnixStack);
  ASSERT_EQ(im.header.processes.size(), 2u);
  EXPECT_EQ(im.header.processes[0].pid, 100u);
  EXPECT_EQ(im.header.processes[0].comm, "nginx");
  EXPECT_EQ(im.header.processes[1].comm, "php-fpm8.2");
  EXPECT_EQ(im.header.start_mono_ns, 1000'000'050'000u);
  EXPECT_EQ(im.header.end_mono_ns, 1000'021'105'000u);
}

TEST(StraceImportTest, ForksMakeProcessesAndThreadsJoinTheirProcess) {
  StraceImport im = Import(
      "10 1.000000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|"
      "CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 11 <0.000100>\n"
      "11 1.100000 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|"
      "CLONE_THREAD|CLONE_SYSVSEM, exit_signal=0}, 88) = 12 <0.000050>\n"
      "12 1.200000 connect(3<TCP:[77]>, {sa_family=AF_INET, "
      "sin_port=htons(9000), "
      "sin_addr=inet_addr(\"127.0.0.1\")}, 16) = -1 EINPROGRESS (Operation now "
      "in "
      "progress) <0.000040>\n"
      "12 1.300000 writev(3<TCP:[127.0.0.1:50000->127.0.0.1:9000]>, "
      "[{iov_base=\"x\", iov_len=1}], 1) = 1 <0.000010>\n"
      "10 1.400000 vfork() = 13 <0.000100>\n"
      "13 1.500000 execve(\"/usr/sbin/php-fpm8.2\", [\"php-fpm\"], 0x7ffd /* 9 "
      "vars */) = 0 "
      "<0.000300>\n"
      "13 1.600000 +++ exited with 0 +++\n");
  EXPECT_EQ(im.stats.malformed, 0u);
  ASSERT_EQ(im.events.size(), 2u);
  EXPECT_EQ(im.events[0].tgid, 11u);
  EXPECT_EQ(im.events[0].tid, 12u);
  EXPECT_EQ(im.events[0].ret, -115);  // EINPROGRESS
  // The connect's identity is the connected socket's (live capture reads it
  // at the call's exit), taken from the next call on its fd.
  EXPECT_EQ(im.events[0].sock.local_port, 50000);
  EXPECT_EQ(im.events[0].sock.remote_port, 9000);
  ASSERT_EQ(im.process_events.size(), 4u);
  EXPECT_EQ(im.process_events[0].op, ProcessEvent::Op::kFork);
  EXPECT_EQ(im.process_events[0].tgid, 11u);
  EXPECT_EQ(im.process_events[0].parent_tgid, 10u);
  EXPECT_EQ(im.process_events[1].op, ProcessEvent::Op::kFork);
  EXPECT_EQ(im.process_events[1].tgid, 13u);
  EXPECT_EQ(im.process_events[2].op, ProcessEvent::Op::kExec);
  EXPECT_EQ(im.process_events[2].comm, "php-fpm8.2");
  EXPECT_EQ(im.process_events[3].op, ProcessEvent::Op::kExit);
  ASSERT_EQ(im.header.processes.size(), 1u);  // 10; 11 and 13 were forked
  EXPECT_EQ(im.header.processes[0].pid, 10u);
}

TEST(StraceImportTest, TcpV6AndOlderUnixAnnotations) {
  std::optional<StraceSocket> v6 =
      ParseStraceSocket("TCPv6:[[::1]:8080->[::1]:41000]");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->id.family, AF_INET6);
  EXPECT_EQ(v6->id.local_port, 8080);
  EXPECT_EQ(v6->id.remote_port, 41000);
  EXPECT_EQ(v6->id.local_addr[15], 1);
  std::optional<StraceSocket> old = ParseStraceSocket("UNIX:[123->456]");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->id.family, AF_UNIX);
  EXPECT_EQ(old->id.type, SOCK_STREAM);
  EXPECT_EQ(old->id.sock, 123u);
  EXPECT_EQ(old->id.peer, 456u);
  std::optional<StraceSocket> dgram = ParseStraceSocket("UNIX-DGRAM:[9]");
  ASSERT_TRUE(dgram.has_value());
  EXPECT_EQ(dgram->id.type, SOCK_DGRAM);
  std::optional<StraceSocket> y = ParseStraceSocket("socket:[77]");
  ASSERT_TRUE(y.has_value());
  EXPECT_FALSE(y->known);
  EXPECT_FALSE(ParseStraceSocket("pipe:[12]").has_value());
  EXPECT_FALSE(ParseStraceSocket("/var/www/index.php").has_value());
  EXPECT_FALSE(ParseStraceSocket("TCP:[999.1.1.1:80->1.1.1.1:2]").has_value());
}

TEST(StraceImportTest, TimeOfDayRollsOverAtMidnight) {
  StraceImport im = Import(
      "5 23:59:59.999000 read(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, \"a\", 1) "
      "= 1 "
      "<0.000500>\n"
      "5 00:00:00.001000 write(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, \"b\", "
      "1) = 1 "
      "<0.000100>\n");
  ASSERT_EQ(im.events.size(), 2u);
  EXPECT_TRUE(im.stats.wall_clock);
  EXPECT_EQ(im.events[0].enter_ns, 86'399'999'000'000u);
  EXPECT_EQ(im.events[1].enter_ns, 86'400'001'000'000u);
}

TEST(StraceImportTest, FilePerPidTakesThePidFromTheSuffix) {
  // Without -f's PID column strace pads short calls' results to a column.
  StraceImport im = ImportStrace(
      {{"trace.321",
        "1.000000 getpid()                = 321 <0.000001>\n"
        "1.000000 write(4<UNIX-STREAM:[1->2]>, \"x\", 1) = 1 <0.000001>\n"},
       {"trace.654",
        "1.000010 read(5<UNIX-STREAM:[2->1]>, \"x\", 1) = 1 <0.000001>\n"}});
  ASSERT_EQ(im.events.size(), 2u);
  EXPECT_EQ(im.events[0].tgid, 321u);
  EXPECT_EQ(im.events[1].tgid, 654u);
  EXPECT_EQ(im.stats.no_pid_lines, 0u);
  EXPECT_EQ(im.stats.files, 2u);
  EXPECT_EQ(im.stats.malformed, 0u);
  EXPECT_EQ(im.stats.calls, 3u);
}

TEST(StraceImportTest, WithoutYySocketsAreFdsOpenedInTheLogAndBackendsLeftOut) {
  StraceImport im = Import(
      "1 1.000000 accept4(6, {sa_family=AF_INET, sin_port=htons(4000)}, [16], "
      "SOCK_NONBLOCK) = 3 <0.000010>\n"
      "1 1.000100 read(3, \"GET / HTTP/1.0\\r\\n\\r\\n\", 1024) = 18 "
      "<0.000005>\n"
      "1 1.000150 read(7, \"file\", 4) = 4 <0.000005>\n"
      "1 1.000200 socket(AF_UNIX, SOCK_STREAM, 0) = 9 <0.000005>\n"
      "1 1.000300 connect(9, {sa_family=AF_UNIX, sun_path=\"/run/php.sock\"}, "
      "110) = 0 "
      "<0.000010>\n"
      "1 1.000400 write(9, \"\\1\\1\", 2) = 2 <0.000005>\n"
      "2 1.000350 accept(0, {sa_family=AF_UNIX}, [2]) = 4 <0.000100>\n"
      "2 1.000500 read(4, \"\\1\\1\", 2) = 2 <0.000005>\n"
      "1 1.030000 read(9, \"\\1\\6\", 2) = 2 <0.000005>\n"
      "1 1.030100 close(9) = 0 <0.000005>\n"
      "1 1.030200 write(3, \"HTTP/1.1 200 OK\\r\\n\", 17) = 17 <0.000005>\n");
  EXPECT_EQ(im.stats.malformed, 0u);
  EXPECT_TRUE(im.inferred_only());
  EXPECT_EQ(im.stats.unknown_fd, 1u);        // read(7): a file, for all we know
  EXPECT_EQ(im.stats.backend_left_out, 2u);  // pid 2 only accepts
  for (const SyscallEvent& e : im.events) {
    EXPECT_EQ(e.tgid, 1u);
    EXPECT_EQ(e.sock.family, 0);
  }
  EXPECT_EQ(im.events.size(), 7u);
}

TEST(StraceImportTest, MalformedLinesAreCountedWithTheirLineNumbers) {
  StraceImport im = Import(
      "1 1.000000 write(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, \"a\", 1) = 1 "
      "<0.000001>\n"
      "this is not strace\n"
      "\n"
      "strace: Process 1 attached\n"
      "1 1.000001 write(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, \"a\", 1 "
      "garbage\n"
      "1 1.000002 <... nothing\n"
      "1 1.000003 read(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, \"b\", 1) = 1 "
      "<0.0000",
      "x.log");
  EXPECT_EQ(im.stats.malformed, 3u);
  EXPECT_THAT(im.stats.malformed_samples,
              ElementsAre("x.log:2", "x.log:5", "x.log:6"));
  EXPECT_EQ(im.stats.info_lines, 2u);
  EXPECT_EQ(im.stats.truncated, 1u);  // the cut last line
  EXPECT_EQ(im.stats.lines, 7u);
  EXPECT_EQ(im.events.size(), 1u);
}

TEST(StraceImportTest, UnfinishedNeverResumedAndOrphanResumedAreCounted) {
  StraceImport im = Import(
      "7 2.000000 <... read resumed>\"ab\", 10) = 2 <0.500000>\n"
      "7 2.100000 read(3<UNIX-STREAM:[1->2]>,  <unfinished ...>\n"
      "8 2.200000 accept(3<UNIX-STREAM:[1,\"/p\"]>,  <detached ...>\n");
  EXPECT_EQ(im.stats.orphan_resumed, 1u);
  EXPECT_EQ(im.stats.unfinished, 2u);
  ASSERT_EQ(im.events.size(), 0u);  // the orphan's fd is not shown: no socket
  EXPECT_EQ(im.stats.malformed, 1u);
}

TEST(StraceImportTest, PidBracketsPeekAndCallsWithoutDuration) {
  StraceImport im = Import(
      // strace -f writing to a terminal: "[pid N] " on other processes' lines.
      "[pid  42] 5.000000 recvfrom(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, "
      "\"GET\", 3, "
      "MSG_PEEK, NULL, NULL) = 3 <0.000002>\n"
      // No -T: only the start is known.
      "[pid  42] 5.000100 recvfrom(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, "
      "\"GET /\", 5, 0, "
      "NULL, NULL) = 5\n"
      // No -T, but resumed: it ran from its first line to its resumed one.
      "[pid  42] 5.000200 writev(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, "
      "[{iov_base=\"HTTP\", "
      "iov_len=4}], 1 <unfinished ...>\n"
      "[pid  42] 5.000500 <... writev resumed>) = 4\n"
      // A DNS query: a side call's socket keeps its kind.
      "[pid  42] 5.000600 sendto(9<UDP:[127.0.0.1:40000->127.0.0.53:53]>, "
      "\"\\x12\\x34\", 2, "
      "MSG_NOSIGNAL, NULL, 0) = 2 <0.000010>\n");
  EXPECT_EQ(im.stats.malformed, 0u);
  ASSERT_EQ(im.events.size(), 4u);
  EXPECT_EQ(im.events[0].tgid, 42u);
  EXPECT_EQ(im.events[0].flags, SyscallEvent::kPeek);
  EXPECT_EQ(im.events[1].flags, SyscallEvent::kExitOnly);
  EXPECT_FALSE(im.events[1].enter_seen());
  EXPECT_EQ(im.events[1].exit_ns, 5'000'100'000u);
  EXPECT_EQ(im.events[1].payload, "GET /");
  EXPECT_EQ(im.events[2].syscall, Syscall::kWritev);
  EXPECT_EQ(im.events[2].enter_ns, 5'000'200'000u);
  EXPECT_EQ(im.events[2].exit_ns, 5'000'500'000u);
  EXPECT_EQ(im.events[2].payload, "HTTP");
  EXPECT_EQ(im.events[3].sock.type, SOCK_DGRAM);
  EXPECT_EQ(im.events[3].sock.remote_port, 53);
  EXPECT_EQ(im.events[3].payload, "\x12\x34");
  EXPECT_EQ(im.stats.no_duration, 1u);
}

TEST(StraceImportTest, DecodesStraceEscapes) {
  EXPECT_EQ(DecodeStraceString(R"(a\r\n\t\"\\\0\1\10\177\x41z)"),
            std::string("a\r\n\t\"\\\0\1\10\177Az", 12));
  EXPECT_EQ(DecodeStraceString(R"(\)"), "\\");  // a lone backslash survives
}

TEST(StraceImportTest, NoSocketCallsLeavesNoEvents) {
  StraceImport im = Import(
      "1 1.000000 openat(AT_FDCWD, \"/etc/passwd\", O_RDONLY) = 3 <0.000010>\n"
      "1 1.000100 read(3</etc/passwd>, \"root\", 4) = 4 <0.000005>\n"
      "1 1.000200 +++ exited with 0 +++\n");
  EXPECT_THAT(im.events, IsEmpty());
  EXPECT_EQ(im.stats.calls, 2u);
  EXPECT_EQ(im.stats.exits, 1u);
  EXPECT_EQ(im.stats.malformed, 0u);
}

}  // namespace
}  // namespace reqcost::collector
