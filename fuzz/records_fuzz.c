/*
 * libFuzzer target: opening records (process_rx) under a fixed key.
 *
 * The receiving session is the listener of the session vector: keyed
 * with its c2s0, with its receive keys 0 and 1 (the vector's private
 * keys) both announced, so that REKEYs naming either can open.  Its own
 * sending side never runs here, so it never announces another key and
 * never uses the peer's: a second KEY from the peer is always premature.
 * The first input byte h chooses the mode and how the wire bytes are
 * delivered:
 *
 *   h & 1 == 0	raw: the rest of the input is the byte stream;
 *   h & 1 == 1	structured: the rest is a list of record descriptions
 *		that the target seals with a matching sender, then mutates;
 *   h & 0x80	our CLOSE counts as sent, so the peer's DONE may come;
 *   c = (h >> 1) & 63	delivery: c == 0 all at once (as far as rxb has
 *		room), else chunks of c*c bytes, with a process_rx call after
 *		each.
 *
 * A record description (structured mode) is
 *
 *   type[1] length[2] padding[1] mutation[1] [param[2]] payload [garbage]
 *
 * type is any byte (0 and 6..255 included); length is capped to 16384;
 * mutation & 3 is 0 none, 1 flip bit param % (8 * wire length) (if
 * param & 0x8000, bit (param & 0x7fff) % (8 * wire length) from the end),
 * 2 truncate to 1 + param % (wire length - 1) bytes, 3 append
 * 1 + param % 64 bytes of garbage (taken from the input, then
 * (uint8_t)param); param is present only for mutations 1 to 3.
 * mutation & 4 set: the payload is length copies of one input byte
 * (so short inputs make full-size records); else the payload is the next
 * length input bytes (capped to what is left).  mutation & 8 set with
 * type 2: a well-formed REKEY payload replaces it, index = length & 3
 * (0 and 1 announced, 2 and 3 not), E = 0 (a low-order point) if
 * padding & 1, else the public key of a one-time key made from 32 input
 * bytes; with type 4: the payload is cut or padded to 32 bytes.  The
 * sender rekeys with the receiver's DH after each record that is, as the
 * receiver will see it, a good REKEY.  At most 1024 records or about 1 MB
 * of wire bytes are built per input.
 *
 * Invariants, checked with abort():
 *   - the bytes process_rx puts in s.b.out, the exit status, the receiving
 *     state and epoch and the bytes left in rxb are those of a reference
 *     decoder written here from doc/PROTOCOL.md with libcrypto directly
 *     (both modes);
 *   - structured mode: the output is exactly the payloads of the DATA
 *     records up to the first modified or invalid record (nothing from it
 *     or after it); the session fails (EXIT_AUTH) at an invalid record
 *     (section 8's list); it never reports CLOSE or DONE after a
 *     modification.
 */
#define SECCHAT_NO_MAIN
#include "../secchat.c"
#include "common.h"

#include <openssl/err.h>

#define MAX_RECORDS	1024		/* per input, to keep runs short */
#define MAX_WIRE	(1 << 20)
#define FAIL(...)	fuzz_fail("records_fuzz: " __VA_ARGS__)

static const struct options fuzz_opt = {
	.family = AF_UNSPEC, .qflag = 1, .vflag = 0, .timeout = -1,
};

struct bytes {
	uint8_t	*p;
	size_t	 len, cap;
};

static void
bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			abort();
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* ---------------------------------------------------------------------- */
/* Reference receiver, from doc/PROTOCOL.md sections 3 and 4 only. */

/* HKDF-Expand(prk, label, n) for n <= 32: one HMAC block. */
static void
ref_expand(const uint8_t prk[32], const char *label, uint8_t *out, size_t n)
{
	uint8_t msg[64], t[32];
	unsigned int tl = sizeof(t);
	size_t l = strlen(label);

	memcpy(msg, label, l);
	msg[l] = 0x01;
	if (HMAC(EVP_sha256(), prk, 32, msg, l + 1, t, &tl) == NULL)
		abort();
	memcpy(out, t, n);
}

/* The listener's receive keys 0 and 1, as the reference holds them. */
static EVP_PKEY *ref_keys[2];

/* X25519(ref_keys[index], e) into dh; -1 if it is all zero or fails. */
static int
ref_dh(int index, const uint8_t e[32], uint8_t dh[32])
{
	static const uint8_t zero[32];
	EVP_PKEY *pub;
	EVP_PKEY_CTX *ctx;
	size_t len = 32;
	int ok;

	if ((pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, e, 32))
	    == NULL || (ctx = EVP_PKEY_CTX_new(ref_keys[index], NULL)) == NULL)
		abort();
	ok = EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer(ctx, pub) == 1 &&
	    EVP_PKEY_derive(ctx, dh, &len) == 1 && len == 32 &&
	    memcmp(dh, zero, 32) != 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pub);
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* The receiving states of doc/PROTOCOL.md section 4.1, and a failure. */
enum { REF_KEY0, REF_OPEN, REF_CLOSED, REF_DONE, REF_FAIL };

struct ref_result {
	int	 end;			/* REF_*: the state when input ran out */
	size_t	 consumed;	/* wire bytes of the records opened */
	uint64_t epoch;
	struct bytes out;
};

/*
 * Is a record of type with an n-byte payload good in the state of r
 * (sections 4.1 and 5; our CLOSE sent or not)?  A good REKEY also yields
 * its DH and steps *oldest.
 */
static int
ref_good(struct ref_result *r, int type, const uint8_t *p, size_t n,
    int our_close, int *keys_in, int *oldest, uint8_t dh[32])
{
	uint32_t index;

	if (r->end == REF_DONE || r->end == REF_FAIL)
		return 0;
	if (type < 1 || type > 5 || (r->end == REF_KEY0 && type != 4) ||
	    (r->end == REF_OPEN && type == 5) ||
	    (r->end == REF_CLOSED && (type == 1 || type == 3 ||
	    (type == 5 && !our_close))))
		return 0;
	switch (type) {
	case 1:
		return n <= 16384;
	case 3:
	case 5:
		return n == 0;
	case 4:		/* a second KEY: we never used the first */
		return n == 32 && (*keys_in)++ == 0;
	}
	if (n != 36)
		return 0;
	index = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
	if (index > 1 || (int)index < *oldest || ref_dh(index, p + 4, dh))
		return 0;
	*oldest = index;
	return 1;
}

static void
ref_decode(const uint8_t *w, size_t n, int our_close, struct ref_result *r)
{
	static uint8_t plain[16656];
	uint8_t secret[32], key[32], iv[12], nonce[12], dh[32], salt[32];
	uint64_t seq = 0;
	size_t pos = 0, clen, inner;
	EVP_CIPHER_CTX *ctx;
	int i, outl, type, ok, keys_in = 0, oldest = 0;
	unsigned int hl = 32;

	memset(r, 0, sizeof(*r));
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		abort();
	memcpy(secret, vec_c2s0, 32);
	ref_expand(secret, "key", key, 32);
	ref_expand(secret, "iv", iv, 12);
	for (;;) {
		if (r->end == REF_DONE) {
			if (pos < n)	/* not a byte after DONE */
				r->end = REF_FAIL;
			break;
		}
		if (n - pos < 2)
			break;
		clen = (size_t)w[pos] << 8 | w[pos + 1];
		if (clen < 17 || clen > 16656) {
			r->end = REF_FAIL;
			break;
		}
		if (n - pos < 2 + clen)
			break;
		memcpy(nonce, iv, 12);
		for (i = 0; i < 8; i++)
			nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
		inner = clen - 16;
		ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key,
		    nonce) == 1 &&
		    EVP_DecryptUpdate(ctx, NULL, &outl, w + pos, 2) == 1 &&
		    EVP_DecryptUpdate(ctx, plain, &outl, w + pos + 2,
		    inner) == 1 &&
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
		    (void *)(w + pos + 2 + inner)) == 1 &&
		    EVP_DecryptFinal_ex(ctx, plain + inner, &outl) == 1;
		if (!ok) {
			r->end = REF_FAIL;
			break;
		}
		seq++;
		while (inner > 0 && plain[inner - 1] == 0)
			inner--;
		if (inner == 0) {
			r->end = REF_FAIL;
			break;
		}
		type = plain[--inner];
		if (!ref_good(r, type, plain, inner, our_close, &keys_in,
		    &oldest, dh)) {
			r->end = REF_FAIL;
			break;
		}
		if (type == 1)
			bytes_add(&r->out, plain, inner);
		else if (type == 2) {	/* S' = HMAC(Expand(S, "rekey"), DH) */
			ref_expand(secret, "rekey", salt, 32);
			if (HMAC(EVP_sha256(), salt, 32, dh, 32, secret, &hl)
			    == NULL)
				abort();
			ref_expand(secret, "key", key, 32);
			ref_expand(secret, "iv", iv, 12);
			seq = 0;
			r->epoch++;
		} else if (type == 3)
			r->end = REF_CLOSED;
		else if (type == 4 && r->end == REF_KEY0)
			r->end = REF_OPEN;
		else if (type == 5)
			r->end = REF_DONE;
		pos += 2 + clen;
		r->consumed = pos;
	}
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(plain, sizeof(plain));
}

/* ---------------------------------------------------------------------- */
/* Structured mode: seal, mutate, and predict. */

enum { EXPECT_STATE, EXPECT_FAIL, EXPECT_FAIL_OR_WAIT };

struct model {
	struct bytes wire;	/* what goes on the wire */
	struct bytes out;	/* the DATA that must come out */
	int	 expect;	/* EXPECT_* */
	int	 state;		/* REF_*: the state after the last good record */
};

struct input {
	const uint8_t *p;
	size_t	 left;
};

static int
take(struct input *in, void *out, size_t n)
{
	if (in->left < n)
		return -1;
	memcpy(out, in->p, n);
	in->p += n;
	in->left -= n;
	return 0;
}

/* A well-formed REKEY payload: index, and E = 0 or a one-time key's. */
static void
rekey_payload_from(struct input *in, unsigned index, int low_order,
    uint8_t p[REKEY_LEN])
{
	uint8_t e[X25519_LEN];
	EVP_PKEY *key;

	memset(p, 0, REKEY_LEN);
	put_u32(p, index);
	if (low_order)
		return;
	memset(e, 0x5c, sizeof(e));
	(void)take(in, e, sizeof(e));
	if ((key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, e,
	    X25519_LEN)) == NULL)
		abort();
	x25519_public(key, p + INDEX_LEN);
	EVP_PKEY_free(key);
}

static void
build(struct input *in, int our_close, struct model *m)
{
	static uint8_t payload[MAX_PAYLOAD], rec[LEN_LEN + MAX_RECORD];
	uint8_t hdr[5], prm[2], fill, g, dh[X25519_LEN];
	struct direction tx;
	struct ref_result ms;	/* the receiver's state, as predicted */
	size_t len, pad, n, inner_len, i, glen, bit;
	int nrec, bad = 0, kind, type, eff_type, good, keys_in = 0, oldest = 0;
	unsigned int param;

	memset(&ms, 0, sizeof(ms));
	direction_init(&tx, vec_c2s0, 1);
	m->expect = EXPECT_STATE;
	m->state = REF_KEY0;
	for (nrec = 0; nrec < MAX_RECORDS && m->wire.len < MAX_WIRE &&
	    take(in, hdr, 5) == 0; nrec++) {
		type = hdr[0];
		len = (size_t)hdr[1] << 8 | hdr[2];
		pad = hdr[3];
		kind = hdr[4] & 3;
		param = 0;
		if (kind != 0) {
			if (take(in, prm, 2) == -1)
				break;
			param = (unsigned int)prm[0] << 8 | prm[1];
		}
		if (type == TYPE_REKEY && (hdr[4] & 8)) {
			rekey_payload_from(in, len & 3, pad & 1, payload);
			len = REKEY_LEN;
		} else {
			if (len > MAX_PAYLOAD)
				len = MAX_PAYLOAD;
			if (type == TYPE_KEY && (hdr[4] & 8))
				len = X25519_LEN;
			if (hdr[4] & 4) {
				fill = 0;
				(void)take(in, &fill, 1);
				memset(payload, fill, len);
			} else {
				if (len > in->left && len != X25519_LEN)
					len = in->left;
				memset(payload, 0, len);
				(void)take(in, payload, len < in->left ? len :
				    in->left);
			}
		}

		n = seal_record(&tx, type, payload, len, pad, rec);
		if (n != LEN_LEN + len + 1 + pad + TAG_LEN)
			FAIL("seal_record: wrong length");

		/* The receiver's view: the last non-zero byte is the type. */
		inner_len = len + 1;
		if (type == 0) {
			inner_len = len;
			while (inner_len > 0 && payload[inner_len - 1] == 0)
				inner_len--;
		}
		eff_type = inner_len == 0 ? -1 : inner_len == len + 1 ? type :
		    payload[inner_len - 1];
		if (inner_len > 0)
			inner_len--;	/* now the payload's length */

		/* The prediction, up to the first bad record. */
		if (!bad) {
			good = ref_good(&ms, eff_type, payload, inner_len,
			    our_close, &keys_in, &oldest, dh);
			if (kind == 1 || kind == 2) {
				bad = 1;
				m->expect = EXPECT_FAIL_OR_WAIT;
			} else if (!good) {
				bad = 1;
				m->expect = EXPECT_FAIL;
			} else {
				if (eff_type == TYPE_DATA)
					bytes_add(&m->out, payload, inner_len);
				else if (eff_type == TYPE_REKEY)
					dh_ratchet(&tx, dh);	/* as the peer would */
				ms.end = eff_type == TYPE_CLOSE ? REF_CLOSED :
				    eff_type == TYPE_DONE ? REF_DONE :
				    eff_type == TYPE_KEY && ms.end == REF_KEY0 ?
				    REF_OPEN : ms.end;
				m->state = ms.end;
				if (kind == 3) {	/* garbage: never after DONE */
					bad = 1;
					m->expect = ms.end == REF_DONE ?
					    EXPECT_FAIL : EXPECT_FAIL_OR_WAIT;
				}
			}
		}

		/* The mutation, on the wire only. */
		switch (kind) {
		case 1:
			/* Bit 15 set: count from the end, to reach the tag. */
			bit = param & 0x8000 ? 8 * n - 1 - (param & 0x7fff) %
			    (8 * n) : param % (8 * n);
			rec[bit / 8] ^= 1 << (bit % 8);
			break;
		case 2:
			n = 1 + param % (n - 1);
			break;
		}
		bytes_add(&m->wire, rec, n);
		if (kind == 3) {
			glen = 1 + param % 64;
			for (i = 0; i < glen; i++) {
				if (take(in, &g, 1) == -1)
					g = (uint8_t)param;
				bytes_add(&m->wire, &g, 1);
			}
		}
	}
	direction_free(&tx);
	OPENSSL_cleanse(payload, sizeof(payload));
	OPENSSL_cleanse(dh, sizeof(dh));
}

/* The session's receiving state, as a REF_* value. */
static int
rx_ref_state(const struct conn *c)
{
	switch (c->rx_state) {
	case RX_KEY0:
		return REF_KEY0;
	case RX_OPEN:
		return REF_OPEN;
	case RX_CLOSED:
		return REF_CLOSED;
	case RX_DONE:
		break;
	}
	return REF_DONE;
}

static EVP_PKEY *
key_from(const uint8_t priv[X25519_LEN])
{
	EVP_PKEY *key;

	if ((key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv,
	    X25519_LEN)) == NULL)
		abort();
	return key;
}

/* ---------------------------------------------------------------------- */

/*
 * One session for the whole run, reset for each input as a -k listener
 * resets it for each connection: allocating and freeing its 1.5 MB of
 * buffers for every input made the target 13 times slower.  What an input
 * used of rxb and out is overwritten with a fixed pattern afterwards, so
 * that each input starts from the same bytes and a crash reproduces alone.
 */
static struct session s;
static size_t rxb_used, out_used;

static void
free_session(void)
{
	session_free(&s);
}

static void
scrub(struct buf *b, size_t *used)
{
	memset(b->data, 0xa5, *used < b->cap ? *used : b->cap);
	*used = 0;
}

static void
note_use(void)
{
	if (s.b.rxb.len > rxb_used)
		rxb_used = s.b.rxb.len;
	/* open_record writes up to MAX_INNER bytes past out.len. */
	if (s.b.out.len + MAX_INNER > out_used)
		out_used = s.b.out.len + MAX_INNER;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ref_keys[0] = key_from(vec_rl0);
	ref_keys[1] = key_from(vec_rl1);
	session_alloc(&s, &fuzz_opt);
	/* Whatever the fuzzer's own descriptors are: no terminal here. */
	s.stdin_tty = s.chat.edit = s.hex_tty = 0;
	rxb_used = s.b.rxb.cap;
	out_used = s.b.out.cap;
	scrub(&s.b.rxb, &rxb_used);
	scrub(&s.b.out, &out_used);
	if (atexit(free_session) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m;
	struct ref_result ref;
	struct input in;
	struct bytes got = { 0 };
	const uint8_t *wire;
	size_t wire_len, fed = 0, chunk, room, n;
	int status = GO_ON, structured, our_close;

	if (size < 1)
		return 0;
	structured = data[0] & 1;
	our_close = (data[0] & 0x80) != 0;
	chunk = (size_t)(data[0] >> 1 & 63) * (data[0] >> 1 & 63);
	if (chunk == 0)
		chunk = SIZE_MAX;
	memset(&m, 0, sizeof(m));
	if (structured) {
		in.p = data + 1;
		in.left = size - 1;
		build(&in, our_close, &m);
		wire = m.wire.p;
		wire_len = m.wire.len;
	} else {
		wire = data + 1;
		wire_len = size - 1;
	}

	conn_begin(&s, -1);
	direction_init(&s.c.rx, vec_c2s0, 0);
	/* The listener announced keys 0 and 1; our CLOSE went, or not. */
	recv_keys_add(&s.c.rk, key_from(vec_rl0));
	recv_keys_add(&s.c.rk, key_from(vec_rl1));
	if (our_close)
		s.c.tx_state = TX_CLOSED;
	/* Deliver the stream as read_net would, draining stdout each time. */
	while (fed < wire_len) {
		room = buf_room(&s.b.rxb, LEN_LEN + MAX_RECORD);
		n = wire_len - fed;
		if (n > chunk)
			n = chunk;
		if (n > room)
			n = room;
		if (n == 0)
			FAIL("rxb full, process_rx stuck");
		memcpy(s.b.rxb.data + s.b.rxb.len, wire + fed, n);
		s.b.rxb.len += n;
		fed += n;
		note_use();
		status = process_rx(&s.c, &s.b, &s.rep);
		note_use();
		bytes_add(&got, s.b.out.data + s.b.out.pos, buf_pending(&s.b.out));
		s.b.out.pos = s.b.out.len;
		if (status != GO_ON)
			break;
	}

	if (status != GO_ON && status != EXIT_AUTH)
		FAIL("process_rx returned %d", status);
	if (s.b.out.len > s.b.out.cap || s.b.rxb.pos > s.b.rxb.len ||
	    s.b.rxb.len > s.b.rxb.cap)
		FAIL("buffer indices out of range");

	/* Against the reference receiver. */
	ref_decode(wire, wire_len, our_close, &ref);
	if (got.len != ref.out.len || (got.len > 0 &&
	    memcmp(got.p, ref.out.p, got.len) != 0))
		FAIL("output is not the reference's");
	if ((status != GO_ON) != (ref.end == REF_FAIL))
		FAIL("process_rx %s where the reference "
		    "receiver %s", status != GO_ON ? "failed" : "did not fail",
		    status != GO_ON ? "does not" : "does");
	if (status == GO_ON && rx_ref_state(&s.c) != ref.end)
		FAIL("receiving state %d, reference: %d", rx_ref_state(&s.c),
		    ref.end);
	if (status == GO_ON && buf_pending(&s.b.rxb) != wire_len - ref.consumed)
		FAIL("bytes left in rxb: %zu, reference: %zu",
		    buf_pending(&s.b.rxb), wire_len - ref.consumed);
	/* At DONE the receiving keys, epoch and all, are already wiped. */
	if (status == GO_ON && ref.end != REF_DONE && s.c.rx.epoch != ref.epoch)
		FAIL("receive epoch is not the reference's");
	if (status == GO_ON && ref.end == REF_DONE && s.c.rx.ctx != NULL)
		FAIL("the receiving cipher outlives DONE");

	/* Against the prediction from what was sealed. */
	if (structured) {
		if (got.len != m.out.len || (got.len > 0 &&
		    memcmp(got.p, m.out.p, got.len) != 0))
			FAIL("output is not the DATA sealed before "
			    "the first bad record");
		switch (m.expect) {
		case EXPECT_STATE:
			if (status != GO_ON || rx_ref_state(&s.c) != m.state)
				FAIL("expected: state %d, no failure", m.state);
			break;
		case EXPECT_FAIL:
			if (status == GO_ON)
				FAIL("expected: a failure");
			break;
		case EXPECT_FAIL_OR_WAIT:
			if (status == GO_ON && rx_ref_state(&s.c) != m.state)
				FAIL("a state change after a modification");
			break;
		}
	}

	conn_end(&s);
	scrub(&s.b.rxb, &rxb_used);
	scrub(&s.b.out, &out_used);
	free(m.wire.p);
	free(m.out.p);
	free(got.p);
	free(ref.out.p);
	ERR_clear_error();
	return 0;
}
