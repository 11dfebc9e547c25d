/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What crosses the ring buffer between bpf/reqcost.bpf.c and the collector.
 * The single definition of every record: the BPF side includes it after
 * vmlinux.h, user space after <linux/types.h>.
 */
#ifndef __REQCOST_H
#define __REQCOST_H

#define RC_PAYLOAD_MAX 256	/* most bytes of a read or write ever captured */
#define RC_COMM_LEN 16
#define RC_ADDR_LEN 16		/* IPv6; IPv4 uses the first 4 bytes */
#define RC_TLS_MAX 4		/* TLS record headers kept per read */
#define RC_H2_FRAMES_MAX 16	/* HTTP/2 frame headers kept per TLS read or write */
#define RC_TLS_DATA_PEEK 9	/* plaintext bytes always kept: one HTTP/2 frame header */

/* Every record starts with kind and size (bytes, payload included). */
enum rc_record_kind {
	RC_REC_SYSCALL = 1,
	RC_REC_PROCESS = 2,
	RC_REC_TLS_DATA = 3,
};

/* The syscalls that are traced; values are stable (capture files keep them). */
enum rc_syscall {
	RC_SYS_ACCEPT = 1,
	RC_SYS_ACCEPT4 = 2,
	RC_SYS_CONNECT = 3,
	RC_SYS_READ = 4,
	RC_SYS_READV = 5,
	RC_SYS_RECVFROM = 6,
	RC_SYS_RECVMSG = 7,
	RC_SYS_WRITE = 8,
	RC_SYS_WRITEV = 9,
	RC_SYS_SENDTO = 10,
	RC_SYS_SENDMSG = 11,
	RC_SYS_SENDFILE = 12,
	RC_SYS_CLOSE = 13,
	RC_SYS_SHUTDOWN = 14,
	RC_SYS_RECVMMSG = 15,	/* seen at the socket layer only */
	RC_SYS_SENDMMSG = 16,	/* seen at the socket layer only */
	/*
	 * Both ends of a new socket pair: fd is the first (sv[0]), ret the
	 * second (sv[1]) or -errno, sock the first end's identity (its peer is
	 * the second's). Its ends carry no requests (nginx's master-worker
	 * channels): a fork hands them on, so they are known by socket.
	 */
	RC_SYS_SOCKETPAIR = 17,
	RC_SYS_MAX = 18,
};

/* rc_syscall_event.flags */
enum rc_syscall_flags {
	RC_F_NO_ENTER = 1,	/* exit seen without its enter: enter_ns is 0 */
	RC_F_LISTENER = 2,	/* accept: the accepting fd is a listening socket */
	/*
	 * Seen at the socket layer (sock:sock_{recv,send}_length), where the
	 * call's start is not hooked: enter_ns is 0 and exit_ns is the end of
	 * the socket operation, just before the syscall returns.
	 */
	RC_F_EXIT_ONLY = 4,
	RC_F_PEEK = 8,		/* a read with MSG_PEEK: the bytes stay queued */
	/*
	 * The thread slept during the call (a voluntary context switch): a
	 * blocking accept or read waited for a client or for data. Set on
	 * calls traced at enter and exit only.
	 */
	RC_F_BLOCKED = 16,
	/*
	 * A connect on a unix socket: the payload is the path it asked for
	 * (sun_path), whatever --payload says, so that a connection to a name
	 * service (nscd, systemd-resolved) is told from a backend link.
	 */
	RC_F_PEER_PATH = 32,
	/*
	 * A TCP read or write that moved bytes: tcp_seq is the TCP sequence
	 * number of its first byte (write_seq or copied_seq of the tcp_sock,
	 * less the bytes moved). Both ends of a connection see the same number
	 * for the same byte, also when it was opened before attach.
	 */
	RC_F_TCP_SEQ = 64,
};

/* rc_tls_records.flags */
enum rc_tls_flags {
	RC_TLS_ON = 1,		/* the socket carries TLS records: this read was walked */
	RC_TLS_MORE = 2,	/* more than RC_TLS_MAX records began in this read */
	RC_TLS_LOST = 4,	/* record boundaries lost (implausible header) */
	/* Not TLS: the socket's first read began with the HTTP/2 client
	 * preface (cleartext HTTP/2, "h2c"). */
	RC_TLS_H2C = 8,
};

/*
 * rc_tls_data_event.op: which call moved the plaintext, a TLS library's or,
 * on a cleartext HTTP/2 (h2c) connection, the socket syscall itself.
 */
enum rc_tls_data_op {
	RC_TLS_DATA_READ = 1,	/* SSL_read */
	RC_TLS_DATA_READ_EX = 2,	/* SSL_read_ex */
	RC_TLS_DATA_WRITE = 3,	/* SSL_write */
	RC_TLS_DATA_WRITE_EX = 4,	/* SSL_write_ex */
	/*
	 * A read or write syscall of an h2c connection (its syscall record
	 * came just before, with the same exit_ns): ssl is then the socket's
	 * id (rc_sock_id.sock), enter_ns the syscall's, or its exit when the
	 * start is not hooked.
	 */
	RC_TLS_DATA_SYS_READ = 5,
	RC_TLS_DATA_SYS_WRITE = 6,
};

/*
 * The cookie of a TLS uprobe_multi site (ssl_enter_multi): an enum
 * rc_tls_data_op from READ to WRITE_EX, or this for SSL_free.
 */
#define RC_TLS_SITE_FREE 15

/* rc_tls_data_event.flags */
enum rc_tls_data_flags {
	/*
	 * This direction of the connection carries HTTP/2 frames: its first
	 * bytes seen were the client connection preface or a SETTINGS frame
	 * (the server's preface). Frame headers are followed from call to call.
	 */
	RC_TLS_DATA_H2 = 1,
	RC_TLS_DATA_PREFACE = 2,	/* this call began with the client preface */
	RC_TLS_DATA_MORE = 4,	/* more frames to keep than RC_H2_FRAMES_MAX began here */
	RC_TLS_DATA_LOST = 8,	/* frame boundaries lost (implausible header) */
};

enum rc_process_op {
	RC_PROC_FORK = 1,	/* a traced process created a new process */
	RC_PROC_EXEC = 2,	/* a traced process executed a new program */
	RC_PROC_EXIT = 3,	/* the last thread of a traced process exited */
	RC_PROC_LEAVE = 4,	/* a process traced for its cgroup moved out of every
				 * traced cgroup: no longer traced */
};

/* Values of the `traced` map: why a process is traced. */
enum rc_traced_by {
	RC_TRACED_BY_PID = 1,	/* a -p PID or its descendant: traced wherever it goes */
	RC_TRACED_BY_CGROUP = 2,	/* it is in a traced cgroup: traced while it stays */
};

/* Per-CPU counters, indexes into the `counters` array map. */
enum rc_counter {
	RC_CNT_EMITTED = 0,	/* records written to the ring buffer */
	RC_CNT_DROPPED = 1,	/* records lost: the ring buffer was full */
	RC_CNT_UNPAIRED = 2,	/* exits whose enter was not seen, not emitted */
	RC_CNT_ENTER_LOST = 3,	/* enters not stored: no per-thread storage could be allocated */
	RC_CNT_FOREIGN = 4,	/* socket I/O of a traced process outside a known syscall
				 * (io_uring, splice, ...): not emitted */
	RC_CNT_TLS_CALLS = 5,	/* TLS library calls of traced processes (uprobe entries) */
	RC_CNT_TLS_RETURNS = 6,	/* return-probe hits of those calls (under a session link,
				 * only the calls followed to their return) */
	RC_CNT_STREAM_STATES = 7,	/* record-walker states made for stream sockets (TLS,
					 * h2c, or plain and not TCP) */
	RC_CNT_MAX = 8,
};

/*
 * Who a socket is. sock and peer are struct sock addresses hashed with a
 * per-run key: for a connected unix socket, peer is the id of the other end
 * (the very socket the other process accepted or connected). For TCP the
 * addresses and ports (host byte order) say it; loopback ends mirror.
 */
struct rc_sock_id {
	__u64 sock;
	__u64 peer;
	__u8 local_addr[RC_ADDR_LEN];
	__u8 remote_addr[RC_ADDR_LEN];
	__u16 local_port;
	__u16 remote_port;
	__u16 family;		/* AF_UNIX, AF_INET, AF_INET6 */
	__u16 type;		/* SOCK_STREAM, SOCK_DGRAM, ... */
};

/*
 * The TLS records that begin in one read of a stream socket that carries
 * TLS, from their 5-byte headers (content type, version, length): no
 * payload, no decryption. The kernel follows the record boundaries from one
 * read to the next, so a record split over several reads is counted once,
 * in the read where its header is.
 */
struct rc_tls_records {
	__u8 count;		/* headers kept below, at most RC_TLS_MAX */
	__u8 flags;		/* enum rc_tls_flags; 0: not a TLS stream */
	__u8 type[RC_TLS_MAX];	/* 20 change_cipher_spec, 21 alert, 22 handshake, 23 application_data */
	__u16 length[RC_TLS_MAX];	/* bytes after the header */
	__u16 reserved;
};

/* One socket syscall of a traced process, emitted at its exit. */
struct rc_syscall_event {
	__u16 kind;		/* RC_REC_SYSCALL */
	__u16 size;		/* sizeof header + payload_len */
	__u16 syscall;		/* enum rc_syscall */
	__u16 flags;		/* enum rc_syscall_flags */
	__u32 tgid;
	__u32 tid;
	__u64 enter_ns;		/* CLOCK_MONOTONIC */
	__u64 exit_ns;
	__s64 ret;		/* accept: the new fd; socketpair: the second fd; read/write: bytes */
	__s32 fd;		/* accept: the listening fd, -1 when unknown; socketpair: the first fd */
	__u32 payload_len;	/* bytes of payload that follow */
	struct rc_sock_id sock;	/* accept: the accepted socket */
	struct rc_tls_records tls;	/* reads of a TLS stream */
	__u32 tcp_seq;		/* with RC_F_TCP_SEQ: sequence number of the first byte */
	__u32 reserved;
	__u8 payload[RC_PAYLOAD_MAX];
};

#define RC_SYSCALL_EVENT_HEADER_SIZE 128 /* offsetof(struct rc_syscall_event, payload) */

/* A change in the traced process set. */
struct rc_process_event {
	__u16 kind;		/* RC_REC_PROCESS */
	__u16 size;		/* sizeof(struct rc_process_event) */
	__u16 op;		/* enum rc_process_op */
	__u16 reserved;
	__u32 tgid;
	__u32 parent_tgid;
	__u64 ts_ns;		/* CLOCK_MONOTONIC */
	__u64 start_ns;		/* the process's start time, since boot */
	char comm[RC_COMM_LEN];
};

/* One HTTP/2 frame header (9 bytes on the wire), decoded. */
struct rc_h2_frame {
	__u32 length;		/* payload bytes */
	__u32 stream_id;	/* reserved bit cleared */
	__u8 type;
	__u8 flags;
	__u16 reserved;
};

/*
 * Plaintext that a TLS library call of a traced process moved (OpenSSL's
 * SSL_read, SSL_write and their _ex forms, seen by uprobes), emitted at the
 * call's return when it moved bytes; or the bytes a read or write syscall
 * moved on a cleartext HTTP/2 connection (RC_TLS_DATA_SYS_*). The frames are the HTTP/2 frame headers
 * that begin in these bytes and bound requests (HEADERS, CONTINUATION,
 * PUSH_PROMISE, RST_STREAM, GOAWAY and any frame with END_STREAM; DATA,
 * WINDOW_UPDATE, PING, SETTINGS and PRIORITY are followed but only counted),
 * followed across calls in the kernel; the payload is the first bytes, at
 * least RC_TLS_DATA_PEEK of them.
 */
struct rc_tls_data_event {
	__u16 kind;		/* RC_REC_TLS_DATA */
	__u16 size;		/* sizeof header + payload_len */
	__u16 op;		/* enum rc_tls_data_op */
	__u16 flags;		/* enum rc_tls_data_flags */
	__u32 tgid;
	__u32 tid;
	__u64 enter_ns;		/* CLOCK_MONOTONIC */
	__u64 exit_ns;
	__u64 ssl;		/* the SSL * hashed with the per-run key; h2c: the socket id */
	__s64 bytes;		/* plaintext bytes moved (> 0) */
	__s32 fd;		/* the socket the call read or wrote, -1: none seen */
	__u32 payload_len;	/* bytes of payload that follow */
	__u16 frames_seen;	/* frame headers that began in these bytes */
	__u8 frame_count;	/* of them, the ones kept below */
	__u8 reserved[5];
	struct rc_h2_frame frames[RC_H2_FRAMES_MAX];
	__u8 payload[RC_PAYLOAD_MAX];
};

#define RC_TLS_DATA_EVENT_HEADER_SIZE 256 /* offsetof(struct rc_tls_data_event, payload) */

#endif /* __REQCOST_H */
