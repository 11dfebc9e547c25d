/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Cleartext HTTP/2 (h2c) in reqcost.bpf.c: on a client connection whose
 * first read was the HTTP/2 client preface (tls_walk's TLS_H2C), or a
 * later read began with it after an HTTP/1.1 request's `Upgrade: h2c`
 * (TLS_WALK_H2C_UPGRADE: see tls_walk for which reads), the frame
 * headers are followed through the bytes its read and write syscalls move,
 * with the walker the TLS library's plaintext uses (h2_walk.bpf.h), and
 * each such syscall gets, after its own record, an rc_tls_data_event of op
 * RC_TLS_DATA_SYS_READ / _WRITE: user space splits the streams from those
 * exactly as from the TLS library's calls.
 *
 * What it costs a connection that is not h2c: its reads nothing (tls_walk
 * already looks up the socket's mode); its TCP writes nothing until some
 * traced process has read an HTTP/2 preface (h2c_seen), then one lookup of
 * the same mode; unix sockets nothing.
 *
 * Included once, by reqcost.bpf.c, after h2_walk.bpf.h, tls_walk.bpf.h,
 * struct op and the payload and ring-buffer helpers.
 */
#ifndef REQCOST_H2C_BPF_H
#define REQCOST_H2C_BPF_H

#define MAX_H2C_CONNS 65536	/* h2c connections whose frame state is kept */
#define H2C_SEGMENTS_MAX 64	/* buffers (iovecs) of one call followed */
/*
 * A call's record is sent on before a buffer is walked once it holds this
 * many frames, and a new one goes on (same call): a server write that
 * answers many streams at once (nginx's writev of several responses) needs
 * more than one record's RC_H2_FRAMES_MAX, and each buffer holds a frame or
 * two.
 */
#define H2C_FLUSH_AT (RC_H2_FRAMES_MAX / 2)

/* Both directions of an h2c connection. */
struct h2c_conn {
	struct h2_state dir[2];	/* 0: what the server reads, 1: what it writes */
};

/*
 * By struct sock address (kernel only). Made afresh at the preface read,
 * so an address the kernel reused never inherits a state: its socket's
 * mode (tls_walk's state, gone with the socket) says first whether it is
 * h2c at all. LRU for the connections that end.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_H2C_CONNS);
	__type(key, __u64);
	__type(value, struct h2c_conn);
} h2c_conns SEC(".maps");

/*
 * Set at the first h2c preface read since attach. Until then a TCP write
 * skips the lookup of its socket's mode: in the accuracy test that lookup
 * on every write (after the server's work, likely cold) moved the server phase
 * by about 4 µs (docs/performance.md, "h2c").
 */
__u32 h2c_seen = 0;

/* One call's bytes, as bpf_loop walks them buffer by buffer. */
struct h2c_walk {
	struct h2_state *st;
	struct rc_tls_data_event *e;
	__u64 base;		/* the one buffer, or the iovec array */
	__u64 iovcnt;		/* 0: base is the one buffer */
	__u64 left;		/* bytes of the call not walked yet */
	__u64 sent;		/* bytes of the call in records already sent */
	__u64 total;		/* the call's bytes */
};

/* Sends a data record (built in scratch, `n` payload bytes). */
static __always_inline void h2c_output(struct rc_tls_data_event *e, __u32 n)
{
	__u64 *emitted = emitted_counter();

	e->payload_len = n;
	e->size = RC_TLS_DATA_EVENT_HEADER_SIZE + n;
	if (bpf_ringbuf_output(&events, e, RC_TLS_DATA_EVENT_HEADER_SIZE + verifier_bound(n),
			       wakeup_flags(emitted))) {
		count(RC_CNT_DROPPED);
		return;
	}
	if (emitted)
		*emitted += 1;
}

/* bpf_loop's callback: walks buffer i of the call; 1 stops the loop. */
static long h2c_segment(__u64 i, void *ctx)
{
	struct h2c_walk *w = ctx;
	struct iovec v;
	__u64 base, n;

	if (!w->left)
		return 1;
	if (!w->iovcnt) {
		base = w->base;
		n = w->left;
	} else {
		if (i >= w->iovcnt ||
		    bpf_probe_read_user(&v, sizeof(v),
					(void *)(w->base + i * sizeof(v))))
			return 1;
		base = (__u64)v.iov_base;
		n = v.iov_len < w->left ? v.iov_len : w->left;
	}
	if (!n)
		return 0;
	if (w->e->frame_count >= H2C_FLUSH_AT && !(w->e->flags & RC_TLS_DATA_LOST)) {
		/* The frames so far, for the bytes walked so far; no payload. */
		w->e->bytes = w->total - w->left - w->sent;
		w->sent += w->e->bytes;
		h2c_output(w->e, 0);
		w->e->flags &= RC_TLS_DATA_H2;
		w->e->frame_count = 0;
		w->e->frames_seen = 0;
	}
	h2_walk(w->st, base, n, w->e);
	if (w->st->mode == H2_START) {
		/* Undecided on fewer than 9 bytes: the next buffer's would be
		 * read at the wrong place. */
		w->st->mode = H2_LOST;
		w->e->flags |= RC_TLS_DATA_H2 | RC_TLS_DATA_LOST;
	}
	w->left -= n;
	return 0;
}

/*
 * Follows the frames through the bytes of one call (the one buffer at
 * op->buf, its iovecs, or, for sendfile, bytes that cannot be read). Bytes
 * past H2C_SEGMENTS_MAX buffers lose the boundaries.
 */
static __always_inline void h2c_walk_call(const struct op *op,
					  struct h2_state *st,
					  struct rc_tls_data_event *e)
{
	struct h2c_walk w = { .st = st, .e = e, .left = op->ret, .total = op->ret };
	struct user_msghdr msg;

	switch (op->sc) {
	case RC_SYS_SENDFILE:
		h2_skip(st, op->ret, e);
		return;
	case RC_SYS_READ:
	case RC_SYS_RECVFROM:
	case RC_SYS_WRITE:
	case RC_SYS_SENDTO:
		w.base = op->buf;
		break;
	case RC_SYS_READV:
	case RC_SYS_WRITEV:
		w.base = op->buf;
		w.iovcnt = op->iovcnt;
		break;
	case RC_SYS_RECVMSG:
	case RC_SYS_SENDMSG:
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)op->buf))
			goto lost;
		w.base = (__u64)msg.msg_iov;
		w.iovcnt = msg.msg_iovlen;
		break;
	default:
		goto lost;	/* recvmmsg, sendmmsg: not followed */
	}
	if (!w.base || (w.iovcnt == 0 && op->sc != RC_SYS_READ &&
			op->sc != RC_SYS_RECVFROM && op->sc != RC_SYS_WRITE &&
			op->sc != RC_SYS_SENDTO))
		goto lost;
	bpf_loop(H2C_SEGMENTS_MAX, h2c_segment, &w, 0);
	e->bytes = w.total - w.sent;	/* what the last record covers */
	if (!w.left || st->mode == H2_PLAIN || st->mode == H2_LOST)
		return;
lost:
	st->mode = H2_LOST;
	e->flags |= RC_TLS_DATA_H2 | RC_TLS_DATA_LOST;
}

/*
 * After the record of a read or write syscall that moved bytes on a TCP
 * socket: when the socket is h2c, the frame headers that begin in those
 * bytes, as an rc_tls_data_event. `verdict`: tls_walk's on a read (enum
 * tls_walk_h2c); a write looks the socket's mode up itself.
 */
static __always_inline void h2c_follow(struct task_struct *task,
				       const struct op *op, bool sock_layer,
				       int verdict)
{
	struct scratch_tls_data *s;
	struct rc_tls_data_event *e;
	struct h2c_conn *c, fresh = {};
	__u32 zero = 0, want, n = 0;
	__u64 key;
	bool read = is_read(op->sc);
	struct sock *sk = op->sk;

	if (!targ_tls || !op->sk || op->ret <= 0)
		return;
	if (read) {
		if (verdict == TLS_WALK_NOT_H2C)
			return;
	} else {
		/*
		 * Read through the helper: in the syscall-time programs the
		 * compiler may hand the verifier a register it cannot type.
		 */
		if (!h2c_seen || op->sc < RC_SYS_WRITE || op->sc > RC_SYS_SENDFILE ||
		    BPF_CORE_READ(sk, __sk_common.skc_family) == AF_UNIX ||
		    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM ||
		    tls_mode_of(op->sk, sock_layer) != TLS_H2C)
			return;
	}
	ptr_value(&key, op->sk);
	if (verdict == TLS_WALK_H2C_PREFACE || verdict == TLS_WALK_H2C_UPGRADE) {
		/*
		 * After an upgrade the server's frames began in its 101's write
		 * (its SETTINGS), unseen: its writes from now on start at a
		 * frame boundary, as servers write whole frames.
		 */
		if (verdict == TLS_WALK_H2C_UPGRADE)
			fresh.dir[1].mode = H2_FRAMES;
		bpf_map_update_elem(&h2c_conns, &key, &fresh, BPF_ANY);
		if (!h2c_seen)
			h2c_seen = 1;
	}
	c = bpf_map_lookup_elem(&h2c_conns, &key);
	s = bpf_map_lookup_elem(&scratch_tls, &zero);
	if (!s)
		return;
	e = &s->e;
	e->kind = RC_REC_TLS_DATA;
	e->op = read ? RC_TLS_DATA_SYS_READ : RC_TLS_DATA_SYS_WRITE;
	e->flags = 0;
	e->tgid = task->tgid;
	e->tid = task->pid;
	/* Inside the syscall's span, so that user space finds it the carrier. */
	e->enter_ns = op->enter_ns ? op->enter_ns : op->exit_ns;
	e->exit_ns = op->exit_ns;
	/* Through the record: a number there, not a pointer (see ptr_value). */
	e->ssl = hash_ptr(ptr_value(&e->ssl, op->sk));
	e->bytes = op->ret;
	e->fd = op->fd;
	e->frame_count = 0;
	e->frames_seen = 0;
	__builtin_memset(e->reserved, 0, sizeof(e->reserved));
	if (c)
		h2c_walk_call(op, &c->dir[read ? 0 : 1], e);
	else
		e->flags = RC_TLS_DATA_H2 | RC_TLS_DATA_LOST;	/* its state was evicted */
	want = targ_tls_data_bytes;
	if (want > op->ret)
		want = op->ret;
	if (want > RC_PAYLOAD_MAX)
		want = RC_PAYLOAD_MAX;
	/* The call's first bytes, when one record covers the call. */
	if (want && op->buf && op->sc != RC_SYS_SENDFILE && e->bytes == op->ret)
		n = copy_payload(e->payload, op->sc, op->buf, op->iovcnt, want);
	if (n > RC_PAYLOAD_MAX)
		n = RC_PAYLOAD_MAX;
	h2c_output(e, n);
}

#endif /* REQCOST_H2C_BPF_H */
