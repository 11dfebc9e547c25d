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
 *   floor-emit    RC_SETUP_SYSCALLS pairs as emit_enter_* and emit_exit_*,
 *                 emit_sock_send, emit_sock_recv, sched (see below)
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

/*
 * floor-emit: floor-new's hooks, each emitting what reqcost's record costs
 * at the least, and nothing else: a thread's traced call found through its
 * task storage (a process's first, through `traced`), its enter stamped
 * there, and at its exit (or a socket-layer hit) one record of reqcost's
 * size reserved in a ring buffer, filled, stamped and submitted without a
 * wake-up (user space drains it on a timer, as reqcost does). No socket is
 * looked at: every close of a traced process emits (reqcost emits a
 * socket's only), so this is a floor for pages that close no files.
 */
struct floor_record {
	__u64 enter_ns;
	__u64 exit_ns;
	__u8 rest[RC_SYSCALL_EVENT_HEADER_SIZE - 16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} floor_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);	/* the enter's stamp, 0: none */
} floor_enter SEC(".maps");

/* The calling thread's storage if its process is traced, else NULL. */
static __always_inline __u64 *floor_traced_task(struct task_struct *task)
{
	__u64 *t = bpf_task_storage_get(&floor_enter, task, NULL, 0);

	if (t || !current_traced())
		return t;
	return bpf_task_storage_get(&floor_enter, task, NULL,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
}

static __always_inline void floor_emit(__u64 enter_ns)
{
	struct floor_record *r;

	r = bpf_ringbuf_reserve(&floor_events, sizeof(*r), 0);
	if (!r)
		return;
	r->enter_ns = enter_ns;
	__builtin_memset(r->rest, 0, sizeof(r->rest));
	r->exit_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

#define EMIT_PAIR(name, sc, buf_arg, iovcnt_arg)				\
SEC("tp/syscalls/sys_enter_" #name)						\
int emit_enter_##name(void *ctx)						\
{										\
	__u64 *t = floor_traced_task(bpf_get_current_task_btf());		\
										\
	if (t)									\
		*t = bpf_ktime_get_ns();					\
	return 0;								\
}										\
SEC("tp/syscalls/sys_exit_" #name)						\
int emit_exit_##name(void *ctx)							\
{										\
	__u64 *t = bpf_task_storage_get(&floor_enter,				\
					bpf_get_current_task_btf(), NULL, 0);	\
										\
	if (t && *t) {								\
		floor_emit(*t);							\
		*t = 0;								\
	}									\
	return 0;								\
}

RC_SETUP_SYSCALLS(EMIT_PAIR)

SEC("tp_btf/sock_send_length")
int BPF_PROG(emit_sock_send, struct sock *sk, int ret, int flags)
{
	if (floor_traced_task(bpf_get_current_task_btf()))
		floor_emit(0);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(emit_sock_recv, struct sock *sk, int ret, int flags)
{
	if (floor_traced_task(bpf_get_current_task_btf()))
		floor_emit(0);
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
