// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The overhead benchmark's floors: empty programs on the hooks reqcost
 * attaches to (or could), and nothing else. What a run with some of them
 * costs over an untraced run is what attaching anything at all to those
 * hooks costs on this kernel (the syscall slow path every task takes while
 * a syscall tracepoint is enabled, the tracepoint's own work before a
 * program runs), before any program does work.
 *
 * The object holds every floor's programs; user space (overhead.cc,
 * FloorProbe) turns autoload off for those its mode does not use, loads the
 * rest and attaches them all:
 *   floor-one-tp  enter_close
 *   floor-sock    sock_send, sock_recv, sock_state
 *   floor-new     RC_SETUP_SYSCALLS pairs, sock_send, sock_recv, sched
 *   floor-old     RC_TRACED_SYSCALLS pairs, sched
 *   floor-rawsys  raw_sys_enter, raw_sys_exit
 * The syscall-tracepoint and sched programs are empty; the socket-layer
 * and raw syscall programs first check the tgid against `traced` (filled by
 * user space with the stack's processes) as reqcost's programs do, because
 * they fire for every process on the machine and the check is what the
 * real programs cannot skip.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "reqcost.h"
#include "traced_syscalls.h"

#define FLOOR_MAX_TRACED 4096

/* tgid -> 1 for every process of the stack under test. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FLOOR_MAX_TRACED);
	__type(key, __u32);
	__type(value, __u8);
} traced SEC(".maps");

static __always_inline bool current_traced(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	return bpf_map_lookup_elem(&traced, &tgid) != NULL;
}

#define EMPTY_PAIR(name, sc, buf_arg, iovcnt_arg)				\
SEC("tp/syscalls/sys_enter_" #name)						\
int enter_##name(void *ctx) { return 0; }					\
SEC("tp/syscalls/sys_exit_" #name)						\
int exit_##name(void *ctx) { return 0; }

RC_TRACED_SYSCALLS(EMPTY_PAIR)

SEC("raw_tp/sched_process_fork")
int on_fork(void *ctx) { return 0; }

SEC("raw_tp/sched_process_exec")
int on_exec(void *ctx) { return 0; }

SEC("raw_tp/sched_process_exit")
int on_exit_process(void *ctx) { return 0; }

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send, struct sock *sk, int ret, int flags)
{
	if (!current_traced())
		return 0;
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv, struct sock *sk, int ret, int flags)
{
	if (!current_traced())
		return 0;
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (!current_traced())
		return 0;
	return 0;
}

SEC("raw_tp/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (!current_traced())
		return 0;
	return 0;
}

SEC("raw_tp/sys_exit")
int raw_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	if (!current_traced())
		return 0;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * floor-uprobe (tls_cost.cc): an empty uprobe and uretprobe, attached where
 * reqcost's TLS probes go (SSL_read, SSL_write and their _ex forms in the
 * libssl the traced processes map, per process). What they cost over no
 * probe is the trap itself: the floor under reqcost's TLS programs.
 */
SEC("uprobe")
int floor_uprobe(void *ctx) { return 0; }

SEC("uretprobe")
int floor_uretprobe(void *ctx) { return 0; }
