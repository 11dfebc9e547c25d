/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The syscalls reqcost traces with syscall tracepoints, one
 * X(name, rc_syscall, buf, iovcnt) each: the tracepoint is
 * syscalls/sys_{enter,exit}_<name>; buf and iovcnt are the enter's arguments
 * that payload capture reads (0 when it has none), written in terms of the
 * enter's `ctx`: iovcnt is readv/writev's iovec count, recvfrom's and
 * recvmsg's flags (for MSG_PEEK), and connect's address length (its buf is
 * the address: a unix socket's path is kept); socketpair's buf is its
 * int sv[2], read at the exit. The fd is every one's first argument
 * (sendfile's is out_fd; socketpair's is its domain, unused).
 * The benchmark's floor probe attaches empty programs to the very same lists.
 *
 * RC_SETUP_SYSCALLS are always traced: they open and end connections and
 * have no socket-layer tracepoint. RC_DATA_SYSCALLS move bytes: by default
 * they are seen through the socket-layer tracepoints sock:sock_recv_length
 * and sock:sock_send_length (socket I/O only, at its end), and traced
 * here only with --syscall-times (both ends of every call, files included).
 */
#ifndef REQCOST_TRACED_SYSCALLS_H
#define REQCOST_TRACED_SYSCALLS_H

#define ARG(ctx, i) ((ctx)->args[i])

#define RC_SETUP_SYSCALLS(X)						\
	X(accept, RC_SYS_ACCEPT, 0, 0)					\
	X(accept4, RC_SYS_ACCEPT4, 0, 0)				\
	X(connect, RC_SYS_CONNECT, ARG(ctx, 1), ARG(ctx, 2))		\
	X(close, RC_SYS_CLOSE, 0, 0)					\
	X(shutdown, RC_SYS_SHUTDOWN, 0, 0)				\
	X(socketpair, RC_SYS_SOCKETPAIR, ARG(ctx, 3), 0)

#define RC_DATA_SYSCALLS(X)						\
	X(read, RC_SYS_READ, ARG(ctx, 1), 0)				\
	X(readv, RC_SYS_READV, ARG(ctx, 1), ARG(ctx, 2))		\
	X(recvfrom, RC_SYS_RECVFROM, ARG(ctx, 1), ARG(ctx, 3))		\
	X(recvmsg, RC_SYS_RECVMSG, ARG(ctx, 1), ARG(ctx, 2))		\
	X(write, RC_SYS_WRITE, ARG(ctx, 1), 0)				\
	X(writev, RC_SYS_WRITEV, ARG(ctx, 1), ARG(ctx, 2))		\
	X(sendto, RC_SYS_SENDTO, ARG(ctx, 1), 0)			\
	X(sendmsg, RC_SYS_SENDMSG, ARG(ctx, 1), 0)			\
	X(sendfile64, RC_SYS_SENDFILE, 0, 0)

#define RC_TRACED_SYSCALLS(X) RC_SETUP_SYSCALLS(X) RC_DATA_SYSCALLS(X)

#endif /* REQCOST_TRACED_SYSCALLS_H */
