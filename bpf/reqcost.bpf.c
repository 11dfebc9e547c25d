// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * reqcost kernel side: one record per socket operation of a traced process,
 * with its timestamps and the socket's identity. Connections open and end
 * through syscall tracepoints (accept, accept4, connect, close, shutdown,
 * and socketpair, whose ends are no connections: enter and exit). Bytes move through the socket-layer tracepoints
 * sock:sock_recv_length and sock:sock_send_length by default: they fire for
 * socket I/O only, at its end, so a file read costs the traced processes
 * nothing; the syscall and fd come from the task's saved user registers.
 * With --syscall-times the data syscalls are traced at enter and exit
 * instead (their duration is known; every file read and write pays). No
 * kprobes, no fentry: this kernel loads neither.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "reqcost.h"
#include "traced_syscalls.h"

#define MAX_TRACED_PROCS 8192
#define MAX_TRACED_CGROUPS 256	/* TracerOptions::kMaxCgroups */
#define MAX_CGROUP_LEVELS 32	/* TracerOptions::kMaxCgroupLevel + 1 */
#define RINGBUF_BYTES (8 * 1024 * 1024)	/* default; user space may resize */

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define MSG_PEEK 2
#define IPPROTO_TCP 6

/* Set by user space between open and load. */
const volatile __u32 targ_payload = 0;	/* bytes of each read/write to keep */
const volatile __u64 targ_hash_key = 0;	/* per-run key for socket ids */
const volatile bool targ_tls = true;	/* walk the TLS record headers of reads */
const volatile bool targ_syscall_times = false;	/* data syscalls at enter and exit */
const volatile __u64 targ_wakeup_bytes = 1024 * 1024;	/* wake the consumer past this backlog */
const volatile __u32 targ_tls_data_bytes = RC_TLS_DATA_PEEK;	/* plaintext bytes kept per call */
const volatile __u32 targ_self_tgid = 0;	/* reqcost itself: never traced */
const volatile bool targ_cgroups = false;	/* cgroup targets were given */

/*
 * Bit L set: a traced cgroup sits at level L of the v2 hierarchy (the root
 * is level 0). Written by user space when its targets are re-read, so not
 * read-only.
 */
__u64 cgroup_levels = 0;

/*
 * Bumped each time a process leaves the traced cgroups (on_cgroup_attach).
 * A thread's pending storage stands for "traced" only while its epoch is
 * the current one: after a leave, each thread checks its process once more
 * at its next call, and one no longer traced loses its storage.
 */
__u32 leave_epoch = 0;

/*
 * tgid -> enum rc_traced_by for every traced process; kept current on fork,
 * exit and cgroup moves.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TRACED_PROCS);
	__type(key, __u32);
	__type(value, __u8);
} traced SEC(".maps");

/*
 * v2 cgroup id -> 1 for every traced cgroup (--cgroup, --unit): a process in
 * one of them or in a descendant of one is traced from its first traced
 * call, fork or exec on (see join_by_cgroup).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TRACED_CGROUPS);
	__type(key, __u64);
	__type(value, __u8);
} traced_cgroups SEC(".maps");

/*
 * What the enter of a syscall leaves for its exit, in the thread's own
 * storage: no hash, no update or delete per syscall (syscall 0 = nothing
 * pending), and it goes away with the thread, even one that dies mid-call.
 */
struct pending {
	__u64 enter_ns;
	__u64 nvcsw;		/* the thread's voluntary context switches at enter */
	__u64 buf;		/* user buffer, iovec or msghdr, for payload */
	__u64 iovcnt;		/* readv/writev: iovecs at buf */
	__s32 fd;
	__u16 syscall;		/* enum rc_syscall; 0 once the exit has run */
	__u8 close_sock;	/* close: fd was a socket, close_id is valid */
	struct rc_sock_id close_id;	/* close: read at enter */
	/*
	 * A TLS library call in progress (uprobe to uretprobe); the socket
	 * I/O it does meanwhile names its fd.
	 */
	__u64 ssl;		/* SSL *; 0: none in progress */
	__u64 ssl_buf;		/* its plaintext buffer */
	__u64 ssl_count;	/* _ex: where the library stores the byte count */
	__u64 ssl_enter_ns;
	__s32 ssl_fd;		/* socket fd of its I/O, -1: none seen yet */
	__u16 ssl_op;		/* enum rc_tls_data_op */
	__u32 epoch;		/* leave_epoch when its process was last known traced */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RINGBUF_BYTES);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RC_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * Records are built here, then copied out with their true length. Copies
 * into the payload pass a length masked with PAYLOAD_MASK at an offset below
 * RC_PAYLOAD_MAX: the slack makes every such copy provably in bounds.
 */
#define PAYLOAD_MASK (2 * RC_PAYLOAD_MAX - 1)

/*
 * v &= PAYLOAD_MASK in a form clang cannot drop: it proves the mask redundant
 * and may then hand the helper an unbounded copy of the register.
 */
static __always_inline __u64 verifier_bound(__u64 v)
{
	asm volatile("%0 &= 511" : "+r"(v));
	return v;
}

_Static_assert(PAYLOAD_MASK == 511, "verifier_bound() masks with 511");

struct scratch_event {
	struct rc_syscall_event e;
	__u8 slack[2 * RC_PAYLOAD_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch_event);
} scratch SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1;
}

static __always_inline bool is_traced(__u32 tgid)
{
	return bpf_map_lookup_elem(&traced, &tgid) != NULL;
}

static __always_inline void emit_process(__u16 op, struct task_struct *task,
					 __u32 parent_tgid);

/*
 * The current process sits in a traced cgroup or below one: one lookup per
 * level that holds a traced cgroup (usually one), of the current cgroup's
 * ancestor at that level.
 */
static __always_inline bool in_traced_cgroup(void)
{
	__u64 levels = cgroup_levels;

	for (int level = 0; level < MAX_CGROUP_LEVELS; level++) {
		__u64 id;

		if (!(levels & (1ULL << level)))
			continue;
		id = bpf_get_current_ancestor_cgroup_id(level);
		if (id == 0)
			return false;	/* the current cgroup is less deep */
		if (bpf_map_lookup_elem(&traced_cgroups, &id))
			return true;
	}
	return false;
}

/*
 * The current process `task` is not traced yet: trace it from now on if it
 * is in a traced cgroup (it joined after attach, or was started there), and
 * tell user space with an exec record (its program and name as of now).
 * reqcost itself never joins.
 */
static __always_inline bool join_by_cgroup(struct task_struct *task)
{
	__u32 tgid;

	/* Before any read: every untraced process's socket I/O comes here. */
	if (!targ_cgroups)
		return false;
	__u8 how = RC_TRACED_BY_CGROUP;

	tgid = BPF_CORE_READ(task, tgid);
	if (tgid == targ_self_tgid || !in_traced_cgroup())
		return false;
	/* Of threads joining at once, one tells. */
	if (bpf_map_update_elem(&traced, &tgid, &how, BPF_NOEXIST) == 0)
		emit_process(RC_PROC_EXEC, task,
			     BPF_CORE_READ(task, real_parent, tgid));
	return is_traced(tgid);
}

/* is_traced(), or joins the current process `task` by its cgroup. */
static __always_inline bool is_traced_now(struct task_struct *task)
{
	return is_traced(BPF_CORE_READ(task, tgid)) || join_by_cgroup(task);
}

/*
 * Kernel structs are read with plain loads through BTF pointers (the
 * verifier turns them into exception-handled loads): no helper call per
 * field. A pointer that the kernel keeps as a number (an fd table entry,
 * void *private_data) becomes a BTF pointer again with bpf_rdonly_cast,
 * which the verifier replaces by a register move.
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define CAST(type, v) \
	((struct type *)bpf_rdonly_cast((void *)(v), bpf_core_type_id_kernel(struct type)))

/*
 * A pointer's value as a number: the verifier allows no arithmetic on a
 * BTF pointer, but what is loaded back from a map value or a ring-buffer
 * record is a plain number. `slot` is where the result goes anyway.
 */
static __always_inline __u64 ptr_value(__u64 *slot, const void *ptr)
{
	*slot = (__u64)ptr;
	return *(volatile __u64 *)slot;
}

/* A keyed mix (splitmix64 finaliser): no kernel address leaves raw. */
static __always_inline __u64 hash_ptr(__u64 x)
{
	if (!x)
		return 0;
	x ^= targ_hash_key;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return (x ^ (x >> 31)) | 1;
}

/* The struct sock behind a socket fd of `task`, else NULL. */
static __always_inline struct sock *fd_to_sock(struct task_struct *task, int fd)
{
	struct fdtable *fdt;
	struct file *file;
	struct socket *sock;
	void *priv;

	if (fd < 0)
		return NULL;
	fdt = task->files->fdt;
	if ((unsigned int)fd >= fdt->max_fds)
		return NULL;
	/*
	 * fdt->fd is an array of pointers, a plain number to the verifier. Its
	 * slot is read as the first member of a struct whose first member is a
	 * struct file * (kiocb's ki_filp): a plain load, no helper call.
	 */
	file = CAST(kiocb, (__u64)fdt->fd + (__u64)fd * sizeof(void *))->ki_filp;
	if (!file)
		return NULL;
	if ((file->f_inode->i_mode & S_IFMT) != S_IFSOCK)
		return NULL;
	priv = file->private_data;
	if (!priv)
		return NULL;
	sock = CAST(socket, priv);
	return sock->sk;
}

/* Fills all of *id (a map value or a record: see ptr_value). */
static __always_inline void read_sock_id(struct sock *sk, struct rc_sock_id *id)
{
	__u16 family = sk->__sk_common.skc_family;
	__u32 *local = (__u32 *)id->local_addr, *remote = (__u32 *)id->remote_addr;

	__builtin_memset(id, 0, sizeof(*id));
	id->family = family;
	id->type = sk->sk_type;
	id->sock = hash_ptr(ptr_value(&id->sock, sk));
	if (family == AF_UNIX) {
		struct unix_sock *u = CAST(unix_sock, sk);

		id->peer = hash_ptr(ptr_value(&id->peer, u->peer));
	} else if (family == AF_INET) {
		local[0] = sk->__sk_common.skc_rcv_saddr;
		remote[0] = sk->__sk_common.skc_daddr;
	} else if (family == AF_INET6) {
		local[0] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0];
		local[1] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1];
		local[2] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2];
		local[3] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3];
		remote[0] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
		remote[1] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1];
		remote[2] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
		remote[3] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
	}
	if (family == AF_INET || family == AF_INET6) {
		id->local_port = sk->__sk_common.skc_num;
		id->remote_port = bpf_ntohs(sk->__sk_common.skc_dport);
	}
}

static __always_inline bool has_payload(__u16 sc)
{
	return sc != RC_SYS_ACCEPT && sc != RC_SYS_ACCEPT4 &&
	       sc != RC_SYS_CONNECT && sc != RC_SYS_CLOSE &&
	       sc != RC_SYS_SHUTDOWN && sc != RC_SYS_SENDFILE &&
	       sc != RC_SYS_RECVMMSG && sc != RC_SYS_SENDMMSG &&
	       sc != RC_SYS_SOCKETPAIR;
}

static __always_inline bool is_read(__u16 sc)
{
	return sc == RC_SYS_READ || sc == RC_SYS_READV || sc == RC_SYS_RECVFROM ||
	       sc == RC_SYS_RECVMSG || sc == RC_SYS_RECVMMSG;
}

/*
 * The calling thread's pending storage if its process is traced, else NULL;
 * `task` is the current task's trusted BTF pointer.
 * A thread has it only once it made a traced call while its process was
 * traced, and a process stays traced until its last thread exits: storage
 * found means traced, without the hash lookup.
 */
/*
 * `p`, the storage of the current thread `task`, if its process is still
 * traced; NULL (and the storage deleted) once it left the traced cgroups.
 * One load and compare while no process left since the thread's last call.
 */
static __always_inline struct pending *still_traced(struct task_struct *task,
						    struct pending *p)
{
	__u32 epoch = leave_epoch;

	if (!p || p->epoch == epoch)
		return p;
	if (!is_traced(task->tgid)) {
		bpf_task_storage_delete(&pending, task);
		return NULL;
	}
	p->epoch = epoch;
	return p;
}

/*
 * `created_ns` (may be NULL): set to the time just before the thread's
 * storage was created, else left alone. Creating it allocates (tens of µs
 * the first time on this VM): an enter stamped after that would lose it
 * from the thread's first traced call, often the accept of a request.
 */
static __always_inline struct pending *traced_task(struct task_struct *task,
						   __u64 *created_ns)
{
	struct pending *p;

	p = bpf_task_storage_get(&pending, task, NULL, 0);
	if (p)
		return still_traced(task, p);
	/*
	 * Every other process's socket I/O ends here (the load generator's
	 * too): its tgid by a plain load through the BTF pointer, no helper.
	 */
	if (!is_traced(task->tgid) && !join_by_cgroup(task))
		return NULL;
	if (created_ns)
		*created_ns = bpf_ktime_get_ns();
	p = bpf_task_storage_get(&pending, task, NULL,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!p)
		count(RC_CNT_ENTER_LOST);
	else
		p->epoch = leave_epoch;
	return p;
}

/* The TLS record walker: needs ptr_value and the targ_ globals above. */
#include "tls_walk.bpf.h"
/* The HTTP/2 frame walker, for TLS plaintext and h2c syscalls alike. */
#include "h2_walk.bpf.h"

static __always_inline int on_enter(__u16 sc, int fd, __u64 buf, __u64 iovcnt)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 created_ns = 0;
	struct pending *p;
	struct sock *sk;

	p = traced_task(task, &created_ns);
	if (!p)
		return 0;
	/*
	 * The enter only notes the time and the arguments, on every fd (an
	 * exit with no enter then really means a syscall in flight at attach,
	 * counted as unpaired): which socket, if any, is looked up once, at
	 * the exit. Except for close, whose fd is gone by then: it is looked
	 * up first, and a close of a file (most closes of a PHP page) only
	 * leaves the mark its exit returns on, without a clock read.
	 */
	p->syscall = sc;
	sk = sc == RC_SYS_CLOSE ? fd_to_sock(task, fd) : NULL;
	if (sc == RC_SYS_CLOSE) {
		p->close_sock = sk != NULL;
		if (!sk)
			return 0;
	}
	p->enter_ns = created_ns ? created_ns : bpf_ktime_get_ns();
	p->nvcsw = task->nvcsw;
	p->fd = fd;
	p->buf = buf;
	p->iovcnt = iovcnt;
	if (sk) {
		read_sock_id(sk, &p->close_id);
		tls_forget(sk);
	}
	return 0;
}

#define MAX_IOVECS 4	/* payload is gathered from at most this many */

/*
 * Copies up to `want` bytes moved through `iovcnt` iovecs at `iov` into dst,
 * a scratch payload (see PAYLOAD_MASK). Returns the bytes copied.
 */
static __always_inline __u32 gather_iovecs(__u8 *dst, const struct iovec *iov,
					   __u64 iovcnt, __u32 want)
{
	__u32 off = 0;

#pragma unroll
	for (int i = 0; i < MAX_IOVECS; i++) {
		struct iovec v;
		__u32 len;

		if (i >= iovcnt || off >= want)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i]))
			break;
		len = v.iov_len < want - off ? v.iov_len : want - off;
		if (len > RC_PAYLOAD_MAX)
			len = RC_PAYLOAD_MAX;
		off &= RC_PAYLOAD_MAX - 1;	/* off < want <= RC_PAYLOAD_MAX */
		if (bpf_probe_read_user(dst + off, verifier_bound(len), v.iov_base))
			break;
		off += len;
	}
	return off;
}

/* Copies the first `want` bytes a syscall moved into dst; returns how many. */
static __always_inline __u32 copy_payload(__u8 *dst, __u16 sc, __u64 buf,
					  __u64 iovcnt, __u32 want)
{
	struct user_msghdr msg;

	switch (sc) {
	case RC_SYS_READV:
	case RC_SYS_WRITEV:
		return gather_iovecs(dst, (const struct iovec *)buf, iovcnt, want);
	case RC_SYS_RECVMSG:
	case RC_SYS_SENDMSG:
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)buf))
			return 0;
		return gather_iovecs(dst, msg.msg_iov, msg.msg_iovlen, want);
	default:
		if (bpf_probe_read_user(dst, verifier_bound(want), (void *)buf))
			return 0;
		return want;
	}
}

/*
 * The first buffer a read filled: its address in *base, its length (a
 * plain buffer's is unbounded: the read's result bounds it). 0: none.
 */
static __always_inline __u64 first_buffer(__u16 sc, __u64 buf, __u64 iovcnt,
					  __u64 *base)
{
	struct user_msghdr msg;
	struct iovec v;

	switch (sc) {
	case RC_SYS_READ:
	case RC_SYS_RECVFROM:
		*base = buf;
		return ~0ULL;
	case RC_SYS_READV:
		if (!iovcnt || bpf_probe_read_user(&v, sizeof(v), (void *)buf))
			return 0;
		break;
	case RC_SYS_RECVMSG:
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)buf) ||
		    !msg.msg_iovlen ||
		    bpf_probe_read_user(&v, sizeof(v), msg.msg_iov))
			return 0;
		break;
	default:
		return 0;
	}
	*base = (__u64)v.iov_base;
	return v.iov_len;
}

#define WAKEUP_CHECK_EVERY 16	/* records per CPU between backlog checks */

/*
 * Ring-buffer flags for the next record: never wake the consumer (it polls
 * every 100 ms), except when the backlog has passed targ_wakeup_bytes (an
 * eighth of the ring: each wake-up costs the consumer a context switch and
 * a cold cache, ~90 us on a VM, so it comes once per large batch). The
 * backlog is looked at every WAKEUP_CHECK_EVERY records of a CPU only: the
 * query reads the consumer's position, a cache line the consumer's CPU
 * writes, and cost ~70 ns per record when made for every one.
 */
static __always_inline __u64 wakeup_flags(__u64 *emitted)
{
	if (emitted && (*emitted & (WAKEUP_CHECK_EVERY - 1)) == WAKEUP_CHECK_EVERY - 1 &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= targ_wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 *emitted_counter(void)
{
	__u32 which = RC_CNT_EMITTED;

	return bpf_map_lookup_elem(&counters, &which);
}

/*
 * The socket an exit is about: accept's listening socket, else the fd's.
 * NULL when it is no socket (nothing is emitted then). `p` is NULL for an
 * accept seen without its enter: the listening fd is unknown but the new
 * fd says everything that matters.
 */
static __always_inline struct sock *exit_sock(__u16 sc, struct task_struct *task,
					      long ret, struct pending *p,
					      __u16 *flags)
{
	struct sock *sk;

	if (!p) {
		*flags = RC_F_NO_ENTER;
		return ret >= 0 ? fd_to_sock(task, (int)ret) : NULL;
	}
	*flags = 0;
	sk = fd_to_sock(task, p->fd);
	/* unix sockets use TCP_LISTEN too */
	if (sk && (sc == RC_SYS_ACCEPT || sc == RC_SYS_ACCEPT4) &&
	    sk->__sk_common.skc_state == TCP_LISTEN)
		*flags = RC_F_LISTENER;
	return sk;
}

/* What one record says, gathered by whichever hook saw the operation. */
struct op {
	__u16 sc;
	__u16 flags;
	__s32 fd;
	long ret;
	__u64 enter_ns;		/* 0: not seen or not hooked */
	__u64 exit_ns;
	__u64 buf;		/* user buffer, iovec or msghdr; 0: none */
	__u64 iovcnt;
	struct sock *sk;	/* whose identity the record carries; NULL: none */
	const struct rc_sock_id *id;	/* else this one (close: read at enter) */
};

/*
 * The stream position of the first byte a TCP read or write moved, into
 * e->tcp_seq with RC_F_TCP_SEQ set: one load from the tcp_sock (a plain load
 * through the BTF pointer, relocated by CO-RE like every field here). At the
 * end of a send write_seq is past the bytes just queued; at the end of a
 * receive copied_seq is past the bytes just copied (a peek leaves it where
 * the peeked bytes begin). Sequence numbers wrap: u32 arithmetic.
 */
static __always_inline void read_tcp_seq(struct rc_syscall_event *e,
					 const struct op *op)
{
	struct tcp_sock *tp;
	__u32 seq;

	if (op->ret <= 0 || e->sock.type != SOCK_STREAM ||
	    (e->sock.family != AF_INET && e->sock.family != AF_INET6) ||
	    op->sk->sk_protocol != IPPROTO_TCP)
		return;
	tp = CAST(tcp_sock, op->sk);
	if (is_read(op->sc)) {
		seq = tp->copied_seq;
		if (!(op->flags & RC_F_PEEK))
			seq -= (__u32)op->ret;
	} else if ((op->sc >= RC_SYS_WRITE && op->sc <= RC_SYS_SENDFILE) ||
		   op->sc == RC_SYS_SENDMMSG) {
		seq = tp->write_seq - (__u32)op->ret;
	} else {
		return;
	}
	e->tcp_seq = seq;
	e->flags |= RC_F_TCP_SEQ;
}

/*
 * Where a TCP read's first byte lies in its stream (TLS_STREAM_OFF_UNKNOWN
 * when e->tcp_seq was not read: not TCP). bytes_received counts the
 * stream's bytes up to rcv_nxt (its FIN included, like rcv_nxt). A segment
 * that arrives between the two loads moves both, and the figure is off by
 * its length: a read at the start then looks past it, or a later read
 * looks like the first; either way tls_walk classifies it by its first
 * bytes, as it did every first read seen before it knew offsets.
 */
static __always_inline __u64 tcp_stream_offset(const struct rc_syscall_event *e,
					       struct sock *sk)
{
	struct tcp_sock *tp;
	__u32 rcv_nxt;

	if (!(e->flags & RC_F_TCP_SEQ))
		return TLS_STREAM_OFF_UNKNOWN;
	tp = CAST(tcp_sock, sk);
	rcv_nxt = tp->rcv_nxt;
	return tp->bytes_received - (__u32)(rcv_nxt - e->tcp_seq);
}

/* Cleartext HTTP/2: needs struct op and the helpers above. */
#include "h2c.bpf.h"

/*
 * Everything but the payload; sock_layer: see tls_walk. *h2c: tls_walk's
 * verdict on a read (enum tls_walk_h2c).
 */
static __always_inline void fill_event(struct rc_syscall_event *e,
				       struct task_struct *task,
				       const struct op *op, bool sock_layer,
				       int *h2c)
{
	__u64 base = 0, cap;

	e->kind = RC_REC_SYSCALL;
	e->size = RC_SYSCALL_EVENT_HEADER_SIZE;
	e->syscall = op->sc;
	e->flags = op->flags;
	e->tgid = task->tgid;
	e->tid = task->pid;
	e->enter_ns = op->enter_ns;
	e->exit_ns = op->exit_ns;
	e->ret = op->ret;
	e->fd = op->fd;
	e->payload_len = 0;
	if (op->sk)
		read_sock_id(op->sk, &e->sock);
	else if (op->id)
		e->sock = *op->id;
	else
		__builtin_memset(&e->sock, 0, sizeof(e->sock));
	e->tcp_seq = 0;
	e->reserved = 0;
	if (op->sk)
		read_tcp_seq(e, op);
	__builtin_memset(&e->tls, 0, sizeof(e->tls));
	/* TLS is followed on TCP only: a unix socket's first read costs no
	 * probe, and its socket no storage. */
	if (targ_tls && op->sk && op->ret > 0 && is_read(op->sc) &&
	    !(op->flags & RC_F_PEEK) && op->sk->sk_type == SOCK_STREAM &&
	    e->sock.family != AF_UNIX) {
		cap = first_buffer(op->sc, op->buf, op->iovcnt, &base);
		if (cap)
			*h2c = tls_walk(op->sk, base, cap, op->ret,
					tcp_stream_offset(e, op->sk), &e->tls,
					sock_layer);
	}
}

/*
 * Emits one record; the payload (opt-in) is built in scratch first. The
 * exit is stamped here, once the record is filled, right before it goes
 * out: what the program did for it (a TCP socket's first read classifies
 * the connection and creates its storage: microseconds) then lies before
 * the stamp, as it lies before the return a clock in the process sees.
 */
static __always_inline int emit(struct task_struct *task, struct op *op,
				bool sock_layer)
{
	struct rc_syscall_event *e;
	struct scratch_event *s;
	__u32 zero = 0, want, n;
	__u64 size, *emitted;
	int h2c = TLS_WALK_NOT_H2C;

	emitted = emitted_counter();
	const bool path = op->flags & RC_F_PEER_PATH;
	if (!path &&
	    (!targ_payload || !op->buf || op->ret <= 0 || !has_payload(op->sc))) {
		/* Without payload every record has one size: built in place. */
		e = bpf_ringbuf_reserve(&events, RC_SYSCALL_EVENT_HEADER_SIZE, 0);
		if (!e) {
			count(RC_CNT_DROPPED);
			return 0;
		}
		fill_event(e, task, op, sock_layer, &h2c);
		e->exit_ns = op->exit_ns = bpf_ktime_get_ns();
		bpf_ringbuf_submit(e, wakeup_flags(emitted));
		if (emitted)
			*emitted += 1;
		h2c_follow(task, op, sock_layer, h2c);
		return 0;
	}
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	e = &s->e;
	fill_event(e, task, op, sock_layer, &h2c);
	if (path)
		want = op->iovcnt;	/* the path's length, see on_exit */
	else
		want = op->ret < targ_payload ? (__u32)op->ret : targ_payload;
	if (want > RC_PAYLOAD_MAX)
		want = RC_PAYLOAD_MAX;
	n = copy_payload(e->payload, op->sc, op->buf, op->iovcnt, want);
	if (n > RC_PAYLOAD_MAX)
		n = RC_PAYLOAD_MAX;
	e->payload_len = n;
	e->size = RC_SYSCALL_EVENT_HEADER_SIZE + n;
	e->exit_ns = op->exit_ns = bpf_ktime_get_ns();
	/* Within the scratch value whatever the mask leaves (see PAYLOAD_MASK). */
	size = RC_SYSCALL_EVENT_HEADER_SIZE + verifier_bound(n);
	if (bpf_ringbuf_output(&events, e, size, wakeup_flags(emitted))) {
		count(RC_CNT_DROPPED);
		h2c_follow(task, op, sock_layer, h2c);	/* keeps its walk in step */
		return 0;
	}
	if (emitted)
		*emitted += 1;
	h2c_follow(task, op, sock_layer, h2c);
	return 0;
}

static __always_inline int on_exit(__u16 sc, long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct op op = { .sc = sc, .ret = ret, .fd = -1 };
	struct pending *p;

	/* Only a traced thread's enter leaves one (see on_enter). */
	p = still_traced(task, bpf_task_storage_get(&pending, task, NULL, 0));
	if (p && p->syscall != sc)
		p = NULL;	/* none, or a stale one: an exit was missed */
	if (p) {
		p->syscall = 0;	/* p stays valid: this program is its only user */
		if (sc == RC_SYS_CLOSE && !p->close_sock)
			return 0;	/* not a socket, decided at enter */
	} else if (!is_traced(task->tgid)) {
		return 0;
	} else if ((sc != RC_SYS_ACCEPT && sc != RC_SYS_ACCEPT4) || ret < 0) {
		/*
		 * Blocked since before attach. For accept the new fd says
		 * everything that matters (a backend waiting in accept is the
		 * common case), so emit with the start unknown.
		 */
		count(RC_CNT_UNPAIRED);
		return 0;
	}
	if (sc == RC_SYS_SOCKETPAIR) {
		int sv[2];

		/* p is set: only accept is emitted without its enter. */
		if (ret < 0 || !p->buf ||
		    bpf_probe_read_user(sv, sizeof(sv), (const void *)p->buf))
			return 0;
		op.sk = fd_to_sock(task, sv[0]);
		if (!op.sk)
			return 0;
		op.enter_ns = p->enter_ns;
		op.fd = sv[0];
		op.ret = sv[1];
		return emit(task, &op, false);
	}
	if (sc == RC_SYS_CLOSE) {
		if (!p->close_sock)
			return 0;
		op.id = &p->close_id;
	} else {
		op.sk = exit_sock(sc, task, ret, p, &op.flags);
		if (!op.sk)
			return 0;	/* not a socket */
	}
	/* The exit is stamped by emit: other fds cost no clock read. */
	if (p && p->ssl && (is_read(sc) || (sc >= RC_SYS_WRITE && sc <= RC_SYS_SENDMSG)))
		p->ssl_fd = p->fd;	/* the TLS call in progress uses it */
	if (p) {
		op.enter_ns = p->enter_ns;
		if (task->nvcsw != p->nvcsw)
			op.flags |= RC_F_BLOCKED;
		op.fd = p->fd;
		op.buf = p->buf;
		op.iovcnt = p->iovcnt;
		if ((sc == RC_SYS_RECVFROM || sc == RC_SYS_RECVMSG) &&
		    (p->iovcnt & MSG_PEEK))
			op.flags |= RC_F_PEEK;	/* iovcnt holds their flags */
	}
	if (sc == RC_SYS_ACCEPT || sc == RC_SYS_ACCEPT4) {
		/* The record is about the accepted socket, a new connection. */
		op.sk = ret >= 0 ? fd_to_sock(task, (int)ret) : NULL;
		tls_forget(op.sk);
	} else if (sc == RC_SYS_CONNECT) {
		tls_forget(op.sk);
		if (op.buf && op.sk && op.sk->__sk_common.skc_family == AF_UNIX &&
		    op.iovcnt > 2) {
			/* Keep sun_path: past sun_family, at most its 108 bytes. */
			op.flags |= RC_F_PEER_PATH;
			op.buf += 2;
			op.iovcnt = op.iovcnt - 2 < 108 ? op.iovcnt - 2 : 108;
		}
	}
	return emit(task, &op, false);
}

#define TRACE_SYSCALL(name, sc, buf_arg, iovcnt_arg)				\
SEC("tp/syscalls/sys_enter_" #name)						\
int enter_##name(struct trace_event_raw_sys_enter *ctx)			\
{										\
	return on_enter(sc, (int)ARG(ctx, 0), buf_arg, iovcnt_arg);		\
}										\
SEC("tp/syscalls/sys_exit_" #name)						\
int exit_##name(struct trace_event_raw_sys_exit *ctx)				\
{										\
	return on_exit(sc, ctx->ret);						\
}

RC_TRACED_SYSCALLS(TRACE_SYSCALL)

/*
 * x86-64 syscall numbers of the calls that move socket bytes: the socket
 * layer's tracepoints say which socket and how many bytes, the saved user
 * registers which call it was, its fd and its buffer.
 */
static __always_inline __u16 io_syscall(long nr, bool recv)
{
	switch (nr) {
	case 0: return recv ? RC_SYS_READ : 0;
	case 1: return recv ? 0 : RC_SYS_WRITE;
	case 19: return recv ? RC_SYS_READV : 0;
	case 20: return recv ? 0 : RC_SYS_WRITEV;
	case 40: return recv ? 0 : RC_SYS_SENDFILE;
	case 44: return recv ? 0 : RC_SYS_SENDTO;
	case 45: return recv ? RC_SYS_RECVFROM : 0;
	case 46: return recv ? 0 : RC_SYS_SENDMSG;
	case 47: return recv ? RC_SYS_RECVMSG : 0;
	case 299: return recv ? RC_SYS_RECVMMSG : 0;
	case 307: return recv ? 0 : RC_SYS_SENDMMSG;
	default: return 0;
	}
}

/* A socket's bytes moved (or an error) for a traced process: one record. */
static __always_inline int on_sock_io(struct sock *sk, int ret, int msg_flags,
				      bool recv)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct op op = { .ret = ret, .flags = RC_F_EXIT_ONLY, .sk = sk };
	struct pt_regs *regs;
	struct pending *p;

	if (!sk)
		return 0;
	p = traced_task(task, NULL);
	if (!p)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	op.sc = io_syscall(regs->orig_ax, recv);
	if (!op.sc) {
		count(RC_CNT_FOREIGN);
		return 0;
	}
	if (p->ssl)
		p->ssl_fd = (int)regs->di;	/* the TLS call in progress uses it */
	op.fd = (int)regs->di;
	op.buf = regs->si;
	op.iovcnt = regs->dx;
	if (recv && (msg_flags & MSG_PEEK))
		op.flags |= RC_F_PEEK;
	return emit(task, &op, true);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv, struct sock *sk, int ret, int flags)
{
	return on_sock_io(sk, ret, flags, true);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send, struct sock *sk, int ret, int flags)
{
	return on_sock_io(sk, ret, flags, false);
}

/*
 * Inside TLS: uprobes on OpenSSL's SSL_read, SSL_write and their _ex forms
 * in the libssl the traced processes map. The entry notes the call in the
 * thread's storage (traced threads only: the first thing checked); the
 * socket I/O the call does meanwhile names its fd (on_sock_io, on_exit);
 * the return emits the plaintext's first bytes and the HTTP/2 frame headers
 * that begin in it.
 */
#define MAX_H2_DIRECTIONS 65536	/* connection directions whose frame state is kept */

/*
 * Keyed by the SSL * (a user address, never emitted raw) with its low bit
 * set for writes; forgotten at SSL_free, LRU for the connections whose
 * SSL_free is never seen.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_H2_DIRECTIONS);
	__type(key, __u64);
	__type(value, struct h2_state);
} h2_states SEC(".maps");

static __always_inline bool is_write_op(__u16 op)
{
	return op == RC_TLS_DATA_WRITE || op == RC_TLS_DATA_WRITE_EX;
}

/* The frame state of an SSL's direction `key`, made on its first call. */
static __always_inline struct h2_state *tls_h2_state(__u64 key)
{
	struct h2_state *st, fresh = {};

	st = bpf_map_lookup_elem(&h2_states, &key);
	if (st)
		return st;
	bpf_map_update_elem(&h2_states, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&h2_states, &key);
}

/*
 * Whether an SSL's calls are left at their entry: the client spoke no
 * HTTP/2 on it (its read direction is plain: HTTP/1.x) and --payload asks
 * for no plaintext. Such a connection's requests are split from its TLS
 * records (definitions.md), which tell as much as its calls would; its
 * calls emit nothing, and under a session link (ssl_session) cost their
 * entry trap alone.
 */
static __always_inline bool tls_left_at_entry(__u64 ssl)
{
	__u64 key = ssl & ~1ULL;
	struct h2_state *st;

	if (targ_tls_data_bytes > RC_TLS_DATA_PEEK)
		return false;
	st = bpf_map_lookup_elem(&h2_states, &key);
	return st && st->mode == H2_PLAIN;
}

/* Notes a call at its entry: 1 when its return has work, else 0. */
static __always_inline int tls_enter(__u16 op, __u64 ssl, __u64 buf, __u64 count_at)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 created_ns = 0;
	struct pending *p = traced_task(task, &created_ns);

	if (!p)
		return 0;
	count(RC_CNT_TLS_CALLS);
	if (tls_left_at_entry(ssl))
		return 0;
	p->ssl = ssl;
	p->ssl_buf = buf;
	p->ssl_count = count_at;
	p->ssl_op = op;
	p->ssl_fd = -1;
	p->ssl_enter_ns = created_ns ? created_ns : bpf_ktime_get_ns();
	return 1;
}

static __always_inline int tls_exit(int ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct scratch_tls_data *s;
	struct rc_tls_data_event *e;
	struct h2_state *st;
	struct pending *p;
	__u32 zero = 0, want, n = 0;
	__u64 bytes = 0, ssl, key, *emitted;
	size_t moved;

	/* Only a traced thread's entry leaves one. */
	p = still_traced(task, bpf_task_storage_get(&pending, task, NULL, 0));
	if (!p)
		return 0;
	count(RC_CNT_TLS_RETURNS);
	if (!p->ssl)
		return 0;
	ssl = p->ssl;
	p->ssl = 0;
	if (p->ssl_op == RC_TLS_DATA_READ_EX || p->ssl_op == RC_TLS_DATA_WRITE_EX) {
		/*
		 * Positive on success (1 from SSL_read_ex; the internal
		 * functions, ssl_sites.h, may give more), the count stored
		 * where the caller asked.
		 */
		if (ret > 0 && p->ssl_count &&
		    !bpf_probe_read_user(&moved, sizeof(moved), (void *)p->ssl_count))
			bytes = moved;
	} else if (ret > 0) {
		bytes = ret;
	}
	if (!bytes)
		return 0;	/* nothing moved (want read, closed, error) */
	s = bpf_map_lookup_elem(&scratch_tls, &zero);
	if (!s)
		return 0;
	e = &s->e;
	e->kind = RC_REC_TLS_DATA;
	e->op = p->ssl_op;
	e->flags = 0;
	e->tgid = task->tgid;
	e->tid = task->pid;
	e->enter_ns = p->ssl_enter_ns;
	e->exit_ns = bpf_ktime_get_ns();
	e->ssl = hash_ptr(ssl);
	e->bytes = bytes;
	e->fd = p->ssl_fd;
	e->frame_count = 0;
	e->frames_seen = 0;
	__builtin_memset(e->reserved, 0, sizeof(e->reserved));
	key = (ssl & ~1ULL) | is_write_op(p->ssl_op);
	st = tls_h2_state(key);
	if (st)
		h2_walk(st, p->ssl_buf, bytes, e);
	/*
	 * Not HTTP/2 (or not yet told): without --payload its records split
	 * its requests (tls_left_at_entry), so its calls give none.
	 */
	if (targ_tls_data_bytes <= RC_TLS_DATA_PEEK &&
	    (!st || st->mode == H2_START || st->mode == H2_PLAIN))
		return 0;
	want = targ_tls_data_bytes;
	if (want > bytes)
		want = bytes;
	if (want > RC_PAYLOAD_MAX)
		want = RC_PAYLOAD_MAX;
	if (want && !bpf_probe_read_user(e->payload, verifier_bound(want), (void *)p->ssl_buf))
		n = want;
	e->payload_len = n;
	e->size = RC_TLS_DATA_EVENT_HEADER_SIZE + n;
	emitted = emitted_counter();
	if (bpf_ringbuf_output(&events, e, RC_TLS_DATA_EVENT_HEADER_SIZE + verifier_bound(n),
			       wakeup_flags(emitted))) {
		count(RC_CNT_DROPPED);
		return 0;
	}
	if (emitted)
		*emitted += 1;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
	return tls_enter(RC_TLS_DATA_READ, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_enter, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	return tls_enter(RC_TLS_DATA_READ_EX, (__u64)ssl, (__u64)buf, (__u64)readbytes);
}

SEC("uprobe")
int BPF_KPROBE(ssl_write_enter, void *ssl, const void *buf, int num)
{
	return tls_enter(RC_TLS_DATA_WRITE, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_enter, void *ssl, const void *buf, size_t num, size_t *written)
{
	return tls_enter(RC_TLS_DATA_WRITE_EX, (__u64)ssl, (__u64)buf, (__u64)written);
}

/*
 * One return program serves all four: the entry noted which call it was.
 * They all return an int: the upper half of the register is not theirs.
 */
SEC("uretprobe")
int BPF_KRETPROBE(ssl_exit, long ret)
{
	return tls_exit((int)ret);
}

/* A freed SSL's address may come back for another connection. */
static __always_inline int tls_free(__u64 ssl)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 key = ssl & ~1ULL;

	if (!bpf_task_storage_get(&pending, task, NULL, 0) && !is_traced(task->tgid))
		return 0;
	bpf_map_delete_elem(&h2_states, &key);
	key |= 1;
	bpf_map_delete_elem(&h2_states, &key);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_free_enter, void *ssl)
{
	return tls_free((__u64)ssl);
}

/*
 * A call at a site of a multi or session link, whose cookie says what the
 * site is: an enum rc_tls_data_op or RC_TLS_SITE_FREE. 1 when the call's
 * return has work.
 */
static __always_inline int tls_enter_site(void *ctx, __u64 ssl, __u64 buf,
					  __u64 count_at)
{
	__u64 op = bpf_get_attach_cookie(ctx);

	if (op == RC_TLS_SITE_FREE)
		return tls_free(ssl);
	if (op < RC_TLS_DATA_READ || op > RC_TLS_DATA_WRITE_EX)
		return 0;
	if (op != RC_TLS_DATA_READ_EX && op != RC_TLS_DATA_WRITE_EX)
		count_at = 0;
	return tls_enter(op, ssl, buf, count_at);
}

/*
 * The same probes as two uprobe_multi links per process and library (one
 * for the entries, one for the returns; collector/tracer.cc). User space
 * loads these two with the uprobe_multi attach type when the kernel has it
 * (6.6+): detaching a multi link waits for the kernel once for all its
 * sites, where a perf uprobe waits once per site.
 */
SEC("uprobe")
int BPF_KPROBE(ssl_enter_multi, void *ssl, void *buf, __u64 num, __u64 count_at)
{
	tls_enter_site(ctx, (__u64)ssl, (__u64)buf, count_at);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_exit_multi, long ret)
{
	return tls_exit((int)ret);
}

extern bool bpf_session_is_return(void) __ksym __weak;

/*
 * The same probes as one uprobe session link per process and library
 * (6.12+), where the kernel has it: this program runs at each call's entry
 * and, when the entry returned 0, at its return. An entry that returns 1
 * has no return: the kernel does not take the return address, and the call
 * costs its entry trap alone (SSL_free, a thread not traced, a call on an
 * HTTP/1.x connection without --payload: tls_left_at_entry).
 */
SEC("uprobe")
int BPF_KPROBE(ssl_session, void *ssl, void *buf, __u64 num, __u64 count_at)
{
	if (bpf_session_is_return())
		return tls_exit((int)PT_REGS_RC(ctx));
	return tls_enter_site(ctx, (__u64)ssl, (__u64)buf, count_at) ? 0 : 1;
}

static __always_inline void emit_process(__u16 op, struct task_struct *task,
					 __u32 parent_tgid)
{
	struct rc_process_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(RC_CNT_DROPPED);
		return;
	}
	e->kind = RC_REC_PROCESS;
	e->size = sizeof(*e);
	e->op = op;
	e->reserved = 0;
	e->tgid = BPF_CORE_READ(task, tgid);
	e->parent_tgid = parent_tgid;
	e->ts_ns = bpf_ktime_get_ns();
	e->start_ns = BPF_CORE_READ(task, start_time);
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	/* Process changes are rare and matter: wake the consumer now. */
	bpf_ringbuf_submit(e, 0);
	count(RC_CNT_EMITTED);
}

/* A new process (not a thread) of a traced one is traced from birth. */
SEC("raw_tp/sched_process_fork")
int on_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	__u32 cpid = BPF_CORE_READ(child, pid);
	__u8 *how;

	/* The fork runs in the parent: it may join by its cgroup here. */
	if (cpid != ctgid || !is_traced_now(parent))
		return 0;
	/* Traced for the same reason as its parent. */
	how = bpf_map_lookup_elem(&traced, &ptgid);
	if (!how)
		return 0;	/* the parent left meanwhile */
	bpf_map_update_elem(&traced, &ctgid, how, BPF_ANY);
	emit_process(RC_PROC_FORK, child, ptgid);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int on_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	__u32 tgid = BPF_CORE_READ(task, tgid);

	if (!is_traced(tgid)) {
		join_by_cgroup(task);	/* tells with its own exec record */
		return 0;
	}
	emit_process(RC_PROC_EXEC, task, BPF_CORE_READ(task, real_parent, tgid));
	return 0;
}

/* The last thread of a traced process is gone: stop tracing its tgid. */
SEC("raw_tp/sched_process_exit")
int on_exit_process(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = BPF_CORE_READ(task, tgid);

	if (!is_traced(tgid))
		return 0;
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;	/* other threads of the process live on */
	bpf_map_delete_elem(&traced, &tgid);
	emit_process(RC_PROC_EXIT, task, BPF_CORE_READ(task, real_parent, tgid));
	return 0;
}

/*
 * The v2 cgroup `cg` is a traced cgroup or lies below one: its ancestors at
 * the levels that hold traced cgroups, read from the cgroup itself (in a
 * move, the current task is the one writing cgroup.procs, not the one
 * moved).
 */
static __always_inline bool cgroup_traced(struct cgroup *cg)
{
	__u64 levels = cgroup_levels;

	for (int i = 0; i < MAX_CGROUP_LEVELS && cg; i++) {
		int level = BPF_CORE_READ(cg, level);
		__u64 id;

		if (level >= 0 && level < MAX_CGROUP_LEVELS &&
		    (levels & (1ULL << level))) {
			id = BPF_CORE_READ(cg, kn, id);
			if (bpf_map_lookup_elem(&traced_cgroups, &id))
				return true;
		}
		/* self is the first member: its parent css is the parent cgroup. */
		cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent);
	}
	return false;
}

/*
 * A process was moved to another cgroup (cgroup.procs; `task` is its leader,
 * or a thread moved alone through cgroup.threads). Judged on its leader's v2
 * cgroup after the move, so a move in a v1 hierarchy changes nothing: one
 * traced for its cgroup that is now outside every traced cgroup is traced no
 * more (told with a leave record; its threads drop their storage at their
 * next call), and an untraced one now inside a traced cgroup is traced from
 * now on (told as an exec, as join_by_cgroup does). A -p PID's tree stays
 * traced wherever it goes.
 */
SEC("raw_tp/cgroup_attach_task")
int on_cgroup_attach(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[2];
	struct task_struct *leader;
	struct cgroup *cg;
	__u32 tgid;
	__u8 *how, by_cgroup = RC_TRACED_BY_CGROUP;

	if (!targ_cgroups)
		return 0;
	tgid = BPF_CORE_READ(task, tgid);
	if (tgid == targ_self_tgid)
		return 0;
	how = bpf_map_lookup_elem(&traced, &tgid);
	if (how && *how == RC_TRACED_BY_PID)
		return 0;
	leader = BPF_CORE_READ(task, group_leader);
	cg = BPF_CORE_READ(leader, cgroups, dfl_cgrp);
	if (cgroup_traced(cg)) {
		if (!how && bpf_map_update_elem(&traced, &tgid, &by_cgroup,
						BPF_NOEXIST) == 0)
			emit_process(RC_PROC_EXEC, leader,
				     BPF_CORE_READ(leader, real_parent, tgid));
		return 0;
	}
	if (!how || bpf_map_delete_elem(&traced, &tgid) != 0)
		return 0;
	__sync_fetch_and_add(&leave_epoch, 1);
	emit_process(RC_PROC_LEAVE, leader, BPF_CORE_READ(leader, real_parent, tgid));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
