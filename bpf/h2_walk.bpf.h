/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The HTTP/2 frame walker of reqcost.bpf.c: follows the 9-byte frame headers
 * (length, type, flags, stream id) through the bytes one direction of a
 * connection moves, call after call, with a small state per direction, and
 * notes in an rc_tls_data_event the headers that bound requests. One walker
 * for both sources of those bytes: the TLS library's plaintext (uprobes on
 * SSL_read/SSL_write, the state keyed by the SSL *) and the socket syscalls
 * of a cleartext HTTP/2 connection (h2c.bpf.h, keyed by the socket).
 *
 * Included once, by reqcost.bpf.c, after vmlinux.h, the libbpf headers and
 * reqcost.h: it defines maps, so no other program may include it.
 */
#ifndef REQCOST_H2_WALK_BPF_H
#define REQCOST_H2_WALK_BPF_H

#define H2_HEADER 9
#define H2_PREFACE 24		/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define H2_WALK_MAX 32		/* frame headers followed in one run of bytes */

enum h2_mode {
	H2_START = 0,		/* nothing seen yet: the first bytes decide */
	H2_PLAIN = 1,		/* its first bytes were no HTTP/2 preface */
	H2_FRAMES = 2,		/* HTTP/2: frame boundaries followed */
	H2_LOST = 3,		/* was, boundaries lost */
};

struct h2_state {
	__u32 skip;		/* bytes of the current frame (or preface) still to come */
	__u8 mode;		/* enum h2_mode */
	__u8 have;		/* bytes of a header split over calls, in hdr */
	__u8 hdr[H2_HEADER];
};

/* Records are built here: too large for the stack. */
struct scratch_tls_data {
	struct rc_tls_data_event e;
	__u8 slack[2 * RC_PAYLOAD_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch_tls_data);
} scratch_tls SEC(".maps");

/*
 * How a direction's first bytes start HTTP/2: 1 the client preface, 2 a
 * SETTINGS frame on stream 0 (what a server sends first), 0 not at all.
 */
static __always_inline int h2_start(const __u8 *h)
{
	__u32 len = ((__u32)h[0] << 16) | ((__u32)h[1] << 8) | h[2];

	if (h[0] == 'P' && h[1] == 'R' && h[2] == 'I' && h[3] == ' ' &&
	    h[4] == '*' && h[5] == ' ' && h[6] == 'H' && h[7] == 'T' && h[8] == 'T')
		return 1;
	if (h[3] == 4 && !(h[4] & ~1) && !h[5] && !h[6] && !h[7] && !h[8] &&
	    len % 6 == 0 && len <= 16384)
		return 2;
	return 0;
}

/*
 * Counts one frame header and keeps it in the record when it bounds a
 * request (see rc_tls_data_event); returns its payload length.
 */
static __always_inline __u32 h2_keep(struct rc_tls_data_event *e, const __u8 *h)
{
	__u32 len = ((__u32)h[0] << 16) | ((__u32)h[1] << 8) | h[2];
	__u8 i = e->frame_count, type = h[3];
	struct rc_h2_frame *f;

	e->frames_seen++;
	if (!(type == 1 || type == 3 || type == 5 || type == 7 || type == 9 ||
	      ((type == 0 || type == 1) && (h[4] & 1))))
		return len;
	if (i >= RC_H2_FRAMES_MAX) {
		e->flags |= RC_TLS_DATA_MORE;
		return len;
	}
	f = &e->frames[i & (RC_H2_FRAMES_MAX - 1)];
	f->length = len;
	f->type = h[3];
	f->flags = h[4];
	f->reserved = 0;
	f->stream_id = ((__u32)(h[5] & 0x7f) << 24) | ((__u32)h[6] << 16) |
		       ((__u32)h[7] << 8) | h[8];
	e->frame_count = i + 1;
	return len;
}

/*
 * Follows the HTTP/2 frames through `n` bytes at `base` that one direction
 * moved next, with that direction's state `st`: notes every frame header
 * that begins in them and carries the rest of the last frame over to the
 * next bytes. A direction in H2_START is decided by its first 9 bytes
 * (fewer: the next bytes decide); one whose first bytes are no HTTP/2
 * preface is plain and never walked again. The same scheme as tls_walk,
 * with 9-byte headers. A global function: the verifier checks it once, not
 * at each caller (the TLS return probe, and each buffer of an h2c call).
 * Returns 0.
 */
__attribute__((noinline))
int h2_walk(struct h2_state *st, __u64 base, __u64 n,
	    struct rc_tls_data_event *e)
{
	__u32 off = 0, len;
	__u8 h[H2_HEADER];
	int start;

	if (!st || !e)
		return 0;
	if (st->mode == H2_START) {
		if (n < H2_HEADER || bpf_probe_read_user(h, H2_HEADER, (void *)base))
			return 0;	/* too short to tell: the next bytes decide */
		start = h2_start(h);
		st->mode = start ? H2_FRAMES : H2_PLAIN;
		st->skip = start == 1 ? H2_PREFACE : 0;
		if (!start)
			return 0;
		if (start == 1)
			e->flags |= RC_TLS_DATA_PREFACE;
	}
	if (st->mode == H2_PLAIN)
		return 0;
	e->flags |= RC_TLS_DATA_H2;
	if (st->mode == H2_LOST) {
		e->flags |= RC_TLS_DATA_LOST;
		return 0;
	}
	if (st->have) {
		/* A header split over calls: complete it, a byte at a time. */
		__u32 need = H2_HEADER - st->have;

#pragma unroll
		for (int i = 0; i < H2_HEADER - 1; i++) {
			__u8 at = st->have;

			if (i >= need || i >= n || at >= H2_HEADER)
				break;
			if (bpf_probe_read_user(&st->hdr[at], 1, (void *)(base + i)))
				goto lost;
			st->have = at + 1;
		}
		if (st->have < H2_HEADER)
			return 0;
		st->have = 0;
		off = need + h2_keep(e, st->hdr);
	} else {
		off = st->skip;
	}
	for (int i = 0; i < H2_WALK_MAX; i++) {
		if (off >= n)
			break;
		if (n - off < H2_HEADER) {
			/* The header goes on in the next bytes. */
#pragma unroll
			for (int j = 0; j < H2_HEADER - 1; j++) {
				if (j >= n - off)
					break;
				if (bpf_probe_read_user(&st->hdr[j], 1, (void *)(base + off + j)))
					goto lost;
			}
			st->have = n - off;
			off = n;
			break;
		}
		if (bpf_probe_read_user(h, H2_HEADER, (void *)(base + off)))
			goto lost;
		len = h2_keep(e, h);
		if (len > (1 << 24) - 1)
			goto lost;
		off += H2_HEADER + len;
	}
	if (off < n)
		goto lost;	/* more frames than followed */
	st->skip = off - n;
	return 0;
lost:
	st->mode = H2_LOST;
	e->flags |= RC_TLS_DATA_LOST;
	return 0;
}

/*
 * Follows `n` bytes the direction moved that cannot be read (sendfile's,
 * from a file to the socket): they must lie inside the current frame's
 * payload, else the boundaries are lost.
 */
static __always_inline void h2_skip(struct h2_state *st, __u64 n,
				    struct rc_tls_data_event *e)
{
	if (st->mode == H2_PLAIN)
		return;
	e->flags |= RC_TLS_DATA_H2;
	if (st->mode == H2_FRAMES && !st->have && st->skip >= n) {
		st->skip -= n;
		return;
	}
	st->mode = H2_LOST;
	e->flags |= RC_TLS_DATA_LOST;
}

#endif /* REQCOST_H2_WALK_BPF_H */
