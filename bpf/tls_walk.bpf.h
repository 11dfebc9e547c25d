/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The TLS record walker of reqcost.bpf.c: follows the 5-byte record headers
 * (content type, version, length) through a socket's reads, so that a read
 * is classified as handshake, application data or alert without capturing
 * or decrypting any payload. It keeps one small state per stream socket.
 *
 * Included once, by reqcost.bpf.c, after vmlinux.h, the libbpf headers,
 * reqcost.h, the targ_tls and targ_syscall_times globals and ptr_value():
 * it defines maps, so no other program may include it.
 */
#ifndef REQCOST_TLS_WALK_BPF_H
#define REQCOST_TLS_WALK_BPF_H

#define MAX_TLS_SOCKETS 65536	/* stream sockets whose record state is kept */

/* Where a stream socket's reads stand in its TLS records. */
enum tls_mode {
	TLS_PLAIN = 1,		/* its first read seen was no record header */
	TLS_RECORDS = 2,	/* a TLS stream: boundaries followed */
	TLS_LOST = 3,		/* was one, boundaries lost */
	/*
	 * Its first read began with the HTTP/2 client preface: cleartext
	 * HTTP/2, whose frames the h2c walker of reqcost.bpf.c follows.
	 */
	TLS_H2C = 4,
};

struct tls_state {
	/*
	 * Bytes of the current record's body still to come; on a plain
	 * socket that is not TCP, how many of its reads after the first were
	 * looked at for an HTTP/2 preface (H2C_UPGRADE_READS).
	 */
	__u32 skip;
	__u8 mode;		/* enum tls_mode */
	__u8 have;		/* bytes of a header split over reads, in hdr */
	__u8 hdr[5];
};

/*
 * Where it is kept. At the socket layer (the default), in the socket's own
 * storage: one pointer away, and gone with the socket. The syscall
 * tracepoints (--syscall-times) cannot use socket storage: there, by struct
 * sock address, in the kernel only, forgotten at close and at accept and
 * connect (an address the kernel reuses starts afresh), and LRU for the
 * sockets whose close is never seen.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tls_state);
} tls_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_TLS_SOCKETS);
	__type(key, __u64);
	__type(value, struct tls_state);
} tls_states SEC(".maps");

/* A socket's TLS record state starts afresh (new connection, or closed). */
static __always_inline void tls_forget(struct sock *sk)
{
	__u64 key;

	if (!targ_tls || !targ_syscall_times || !sk)
		return;	/* socket storage goes with its socket */
	ptr_value(&key, sk);
	bpf_map_delete_elem(&tls_states, &key);
}

#define TLS_HEADER 5
#define TLS_MAX_RECORD (16384 + 2048)	/* the largest ciphertext a record may hold */
#define TLS_WALK_MAX 16			/* headers followed in one read */

/* A TLS record header: a known content type, version 3.x, a sane length. */
static __always_inline bool tls_header(const __u8 *h, __u16 *len)
{
	*len = ((__u16)h[3] << 8) | h[4];
	return h[0] >= 20 && h[0] <= 24 && h[1] == 3 && *len <= TLS_MAX_RECORD;
}

static __always_inline void tls_keep(struct rc_tls_records *out, const __u8 *h,
				     __u16 len)
{
	__u8 i = out->count;

	if (i >= RC_TLS_MAX) {
		out->flags |= RC_TLS_MORE;
		return;
	}
	out->type[i & (RC_TLS_MAX - 1)] = h[0];
	out->length[i & (RC_TLS_MAX - 1)] = len;
	out->count = i + 1;
}

/*
 * A socket's mode (enum tls_mode), 0 when none was decided: no state is
 * made. One lookup; `sock_layer` as in tls_walk.
 */
static __always_inline __u8 tls_mode_of(struct sock *sk, bool sock_layer)
{
	struct tls_state *st;
	__u64 key;

	if (sock_layer) {
		st = bpf_sk_storage_get(&tls_sk, sk, NULL, 0);
	} else {
		ptr_value(&key, sk);
		st = bpf_map_lookup_elem(&tls_states, &key);
	}
	return st ? st->mode : 0;
}

/* tls_walk's verdict on a read that is no TLS. */
enum tls_walk_h2c {
	TLS_WALK_NOT_H2C = 0,
	TLS_WALK_H2C = 1,		/* a read of an h2c socket */
	TLS_WALK_H2C_PREFACE = 2,	/* its first read: the preface */
	TLS_WALK_H2C_UPGRADE = 3,	/* a later read began with it: Upgrade: h2c */
};

/*
 * HTTP/2 by upgrade (RFC 7540, 3.2): an HTTP/1.1 request with `Upgrade:
 * h2c`, the server's 101, then the client's preface at the start of a
 * later read. A plain TCP socket's reads that begin within the first
 * H2C_UPGRADE_WITHIN bytes of its stream are looked at for it (one 5-byte
 * user read each), no later one; on another plain stream socket, whose
 * position in its stream is not known, its second and third reads.
 */
#define H2C_UPGRADE_WITHIN 65536
#define H2C_UPGRADE_READS 2

/* tls_walk's `stream_off` when the read's place in its stream is unknown. */
#define TLS_STREAM_OFF_UNKNOWN (~0ULL)

static __always_inline bool h2_preface_start(const __u8 *h)
{
	return h[0] == 'P' && h[1] == 'R' && h[2] == 'I' && h[3] == ' ' &&
	       h[4] == '*';
}

/*
 * Follows the TLS records through a read of `n` bytes (the first `cap` of
 * them at `base` in one buffer): notes the header of every record that
 * begins in it and carries the rest of the last record over to the next
 * read. A socket whose first read seen does not start with a record header
 * is plain and never looked at again (but for an upgrade's preface),
 * unless it began with the HTTP/2 client preface: then it is h2c, and the
 * verdict says so (enum tls_walk_h2c) at every read. Costs one 5-byte user
 * read per record header.
 *
 * `stream_off`: where the read's first byte lies in its stream (a TCP
 * socket's), else TLS_STREAM_OFF_UNKNOWN. A TCP stream is classified at
 * its first byte only, and a plain one keeps no state: a read past the
 * start with no state belongs to a plain stream (whose start was seen, or
 * came before attach: TLS is not followed there either), and is only
 * looked at for an upgrade's preface near the start. So a connection that
 * carries one HTTP/1.x request costs no storage, allocated on its first
 * read and freed at its close. Another stream socket is classified at its
 * first read seen and keeps its verdict, plain included.
 *
 * `sock_layer`: called from a socket-layer program, where the state is in
 * socket storage (a constant at every call site: the other branch is
 * compiled out).
 */
static __always_inline int tls_walk(struct sock *sk, __u64 base, __u64 cap,
				    __u64 n, __u64 stream_off,
				    struct rc_tls_records *out, bool sock_layer)
{
	struct tls_state *st, fresh = {};
	__u32 off = 0;
	__u16 len;
	__u64 key;
	__u8 h[TLS_HEADER];

	if (n > cap)
		n = cap;	/* what lies past the first buffer is not walked */
	if (sock_layer) {
		st = bpf_sk_storage_get(&tls_sk, sk, NULL, 0);
	} else {
		ptr_value(&key, sk);
		st = bpf_map_lookup_elem(&tls_states, &key);
	}
	if (!st) {
		if (n < TLS_HEADER)
			return TLS_WALK_NOT_H2C;	/* too short to tell: the next read decides */
		const bool past_start = stream_off != 0 &&
					stream_off != TLS_STREAM_OFF_UNKNOWN;

		if (past_start && stream_off >= H2C_UPGRADE_WITHIN)
			return TLS_WALK_NOT_H2C;	/* plain, too far in for an upgrade */
		fresh.mode = TLS_PLAIN;
		if (!bpf_probe_read_user(h, TLS_HEADER, (void *)base)) {
			if (!past_start && tls_header(h, &len) && h[0] == 22)
				fresh.mode = TLS_RECORDS;	/* a stream starts with a handshake */
			else if (h2_preface_start(h))
				fresh.mode = TLS_H2C;	/* the HTTP/2 client preface */
		}
		/* A plain TCP stream keeps no state (see above). */
		if (fresh.mode == TLS_PLAIN && stream_off != TLS_STREAM_OFF_UNKNOWN)
			return TLS_WALK_NOT_H2C;
		if (sock_layer) {
			st = bpf_sk_storage_get(&tls_sk, sk, &fresh,
						BPF_SK_STORAGE_GET_F_CREATE);
		} else {
			bpf_map_update_elem(&tls_states, &key, &fresh, BPF_ANY);
			st = bpf_map_lookup_elem(&tls_states, &key);
		}
		if (st)
			count(RC_CNT_STREAM_STATES);
		if (fresh.mode == TLS_H2C) {
			/* Without its state, its later reads cannot be told. */
			out->flags = RC_TLS_H2C;
			if (!st)
				return TLS_WALK_NOT_H2C;
			return past_start ? TLS_WALK_H2C_UPGRADE : TLS_WALK_H2C_PREFACE;
		}
		if (!st || fresh.mode != TLS_RECORDS)
			return TLS_WALK_NOT_H2C;
	}
	if (st->mode == TLS_PLAIN) {
		if (st->skip >= H2C_UPGRADE_READS)
			return TLS_WALK_NOT_H2C;
		st->skip++;
		if (n < TLS_HEADER || bpf_probe_read_user(h, TLS_HEADER, (void *)base) ||
		    !h2_preface_start(h))
			return TLS_WALK_NOT_H2C;
		st->mode = TLS_H2C;
		out->flags = RC_TLS_H2C;
		return TLS_WALK_H2C_UPGRADE;
	}
	if (st->mode == TLS_H2C)
		return TLS_WALK_H2C;
	out->flags = RC_TLS_ON;
	if (st->mode == TLS_LOST) {
		out->flags |= RC_TLS_LOST;
		return TLS_WALK_NOT_H2C;
	}
	if (st->have) {
		/* A header split over reads: complete it, a byte at a time. */
		__u32 need = TLS_HEADER - st->have;

#pragma unroll
		for (int i = 0; i < TLS_HEADER - 1; i++) {
			__u8 at = st->have;

			if (i >= need || i >= n || at >= TLS_HEADER)
				break;
			if (bpf_probe_read_user(&st->hdr[at], 1, (void *)(base + i)))
				goto lost;
			st->have = at + 1;
		}
		if (st->have < TLS_HEADER)
			return TLS_WALK_NOT_H2C;
		st->have = 0;
		if (!tls_header(st->hdr, &len))
			goto lost;
		tls_keep(out, st->hdr, len);
		off = need + len;
	} else {
		off = st->skip;
	}
	for (int i = 0; i < TLS_WALK_MAX; i++) {
		if (off >= n)
			break;
		if (n - off < TLS_HEADER) {
			/* The header goes on in the next read. */
#pragma unroll
			for (int j = 0; j < TLS_HEADER - 1; j++) {
				if (j >= n - off)
					break;
				if (bpf_probe_read_user(&st->hdr[j], 1, (void *)(base + off + j)))
					goto lost;
			}
			st->have = n - off;
			off = n;
			break;
		}
		if (bpf_probe_read_user(h, TLS_HEADER, (void *)(base + off)) ||
		    !tls_header(h, &len))
			goto lost;
		tls_keep(out, h, len);
		off += TLS_HEADER + len;
	}
	if (off < n)
		goto lost;	/* more records than followed */
	st->skip = off - n;
	return TLS_WALK_NOT_H2C;
lost:
	st->mode = TLS_LOST;
	out->flags |= RC_TLS_LOST;
	return TLS_WALK_NOT_H2C;
}

#endif /* REQCOST_TLS_WALK_BPF_H */
