/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The syscalls reqcost traces, one X(name, rc_syscall, buf, iovcnt) each:
 * the tracepoint is syscalls/sys_{enter,exit}_<name>; buf and iovcnt are the
 * enter's arguments that payload capture reads (0 when it has none), written
 * in terms of the enter's `ctx`. The fd is every one's first argument
 * (sendfile's is out_fd). The benchmark's floor probe attaches empty programs
 * to the very same list.
 */
#ifndef REQCOST_TRACED_SYSCALLS_H
#define REQCOST_TRACED_SYSCALLS_H

#define ARG(ctx, i) ((ctx)->args[i])

#define RC_TRACED_SYSCALLS(X)						\
	X(accept, RC_SYS_ACCEPT, 0, 0)					\
	X(accept4, RC_SYS_ACCEPT4, 0, 0)				\
	X(connect, RC_SYS_CONNECT, 0, 0)				\
	X(read, RC_SYS_READ, ARG(ctx, 1), 0)				\
	X(readv, RC_SYS_READV, ARG(ctx, 1), ARG(ctx, 2))		\
	X(recvfrom, RC_SYS_RECVFROM, ARG(ctx, 1), 0)			\
	X(recvmsg, RC_SYS_RECVMSG, ARG(ctx, 1), 0)			\
	X(write, RC_SYS_WRITE, ARG(ctx, 1), 0)				\
	X(writev, RC_SYS_WRITEV, ARG(ctx, 1), ARG(ctx, 2))		\
	X(sendto, RC_SYS_SENDTO, ARG(ctx, 1), 0)			\
	X(sendmsg, RC_SYS_SENDMSG, ARG(ctx, 1), 0)			\
	X(sendfile64, RC_SYS_SENDFILE, 0, 0)				\
	X(close, RC_SYS_CLOSE, 0, 0)					\
	X(shutdown, RC_SYS_SHUTDOWN, 0, 0)

#endif /* REQCOST_TRACED_SYSCALLS_H */
