/*
 * libFuzzer target: opening records (process_rx) under a fixed key.
 *
 * The receiving session is the listener of the secchat/3 session vector
 * (tests/data/secchat3-session.txt), on connection 1: keyed with its
 * conn1.c2s0, with its receive keys 0 and 1 (the vector's record1 and
 * record8 private keys) both announced, so that REKEYs naming either can
 * open.  Its own sending side never runs here: it has sealed no DATA
 * (S = 0, so every ACK is one of bytes never sent), never announces
 * another key and never uses the peer's (a second KEY from the peer is
 * always premature).  The first input byte h chooses the mode and how the
 * wire bytes are delivered:
 *
 *   h & 1 == 0	raw: the rest of the input is the byte stream;
 *   h & 1 == 1	structured: the rest is a list of record descriptions
 *		that the target seals with a matching sender, then mutates;
 *   h & 0x80	our CLOSE counts as sealed, so the peer's DONE may come;
 *   c = (h >> 1) & 63	delivery: c == 0 all at once (as far as rxb has
 *		room), else chunks of c*c bytes, with a process_rx call after
 *		each.
 *
 * A record description (structured mode) is
 *
 *   type[1] length[2] padding[1] mutation[1] [param[2]] payload [garbage]
 *
 * type is any byte (0 and 9..255 included); length is capped to 16384;
 * mutation & 3 is 0 none, 1 flip bit param % (8 * wire length) (if
 * param & 0x8000, bit (param & 0x7fff) % (8 * wire length) from the end),
 * 2 truncate to 1 + param % (wire length - 1) bytes, 3 append
 * 1 + param % 64 bytes of garbage (taken from the input, then
 * (uint8_t)param); param is present only for mutations 1 to 3.
 * mutation & 4 set: the payload is length copies of one input byte
 * (so short inputs make full-size records); else the payload is the next
 * length input bytes (capped to what is left, but for the fixed sizes
 * below).  mutation & 8 set: with type 2, a well-formed REKEY payload
 * replaces it, index = length & 3 (0 and 1 announced, 2 and 3 not),
 * E = 0 (a low-order point) if padding & 1, else the public key of a
 * one-time key made from 32 input bytes; with type 4, 6 or 7 the payload
 * is cut or padded to its type's size (32, 8, 2 bytes); with type 8 it
 * is END_HEAD + length % 201 bytes, the text made printable ASCII.  The
 * sender rekeys with the receiver's DH after each record that is, as the
 * receiver will see it, a good REKEY.  At most 1024 records or about 1 MB
 * of wire bytes are built per input.
 *
 * Invariants, checked with abort():
 *   - the bytes process_rx puts in s.b.out, the exit status and the line
 *     it ends with, the receiving state and epoch, the peer's interval,
 *     CLOSE, DONE and END, our acknowledged count and the bytes left in
 *     rxb are those of a reference decoder written here from
 *     doc/PROTOCOL.md with libcrypto directly (both modes);
 *   - structured mode: the output is exactly the payloads of the DATA
 *     records up to the first modified or invalid record (nothing from it
 *     or after it); the session fails (EXIT_AUTH) at an invalid record
 *     (section 4's checks); it never reports CLOSE, DONE or END after a
 *     modification; whatever follows a good DONE or END is ignored.
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
/*
 * Reference receiver, from doc/PROTOCOL.md sections 3, 4, 5, 7.2, 7.3 and
 * 9.2 only, for a first connection (no resume: no WAIT_ACK, no 8.5).
 * This side, as the harness sets it up: it has sealed no DATA (S = 0),
 * has announced receive keys 0 and 1 and erased none, has sent no REKEY,
 * and has sealed its CLOSE or not (our_close).
 */

#define REF_S		0	/* our DATA bytes sealed */
#define REF_NEWEST	1	/* our newest receive key announced */

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

/* Section 5.6: the four byte strings of 9 and p + 9, refused. */
static int
ref_public_equivalent(const uint8_t u[32])
{
	static const char *const refused[4] = {
	    "0900000000000000000000000000000000000000000000000000000000000000",
	    "0900000000000000000000000000000000000000000000000000000000000080",
	    "f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	    "f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	};
	char hex[65];
	int i;

	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", u[i]);
	for (i = 0; i < 4; i++)
		if (strcmp(hex, refused[i]) == 0)
			return 1;
	return 0;
}

/*
 * Section 9.2: UTF-8 (RFC 3629's well-formed sequences) with no byte
 * below 0x20, no 0x7f and no U+0080 to U+009F (0xc2 0x80 to 0xc2 0x9f).
 */
static int
ref_clean_text(const uint8_t *p, size_t n)
{
	size_t i = 0, k, tail;
	uint8_t lo, hi, b;

	while (i < n) {
		b = p[i];
		if (b < 0x80) {
			if (b < 0x20 || b == 0x7f)
				return 0;
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (b >= 0xc2 && b <= 0xdf) {
			tail = 1;
			lo = b == 0xc2 ? 0xa0 : lo;	/* not C1 */
		} else if (b >= 0xe0 && b <= 0xef) {
			tail = 2;
			lo = b == 0xe0 ? 0xa0 : lo;	/* not overlong */
			hi = b == 0xed ? 0x9f : hi;	/* not a surrogate */
		} else if (b >= 0xf0 && b <= 0xf4) {
			tail = 3;
			lo = b == 0xf0 ? 0x90 : lo;	/* not overlong */
			hi = b == 0xf4 ? 0x8f : hi;	/* not past U+10FFFF */
		} else
			return 0;
		if (n - i - 1 < tail || p[i + 1] < lo || p[i + 1] > hi)
			return 0;
		for (k = 2; k <= tail; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return 0;
		i += 1 + tail;
	}
	return 1;
}

/* The receiving states of section 4.1 (first connection), and a failure. */
enum { REF_KEY0, REF_OPEN, REF_CLOSED, REF_DONE, REF_ENDED, REF_FAIL };

/* What the reference receiver keeps of the peer's direction. */
struct ref_result {
	int	 end;			/* REF_*: the state when input ran out */
	char	 line[128];		/* at REF_FAIL: section 10's line */
	size_t	 consumed;		/* wire bytes of the records opened */
	uint64_t epoch;
	struct bytes out;		/* the DATA payloads */
	int	 closed;		/* its CLOSE opened */
	unsigned keys_in;		/* its KEYs opened */
	uint32_t oldest;		/* our oldest receive key alive */
	uint64_t acked;			/* A: the highest count it acknowledged */
	unsigned interval;		/* its PING's promise, s */
	int	 end_reason;		/* its END, at REF_ENDED */
	uint32_t end_value;
	char	 end_text[201];
};

static void ref_fail(struct ref_result *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* A fatal record: section 10's line, after "secchat: ". */
static void
ref_fail(struct ref_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->line, sizeof(r->line), fmt, ap);
	va_end(ap);
	r->end = REF_FAIL;
}

static uint64_t
ref_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

/* Step 8 for a KEY (5.1): we have sent no REKEY, so only KEY 0 may come. */
static int
ref_key(struct ref_result *r, const uint8_t *p)
{
	if (r->keys_in >= 1) {
		ref_fail(r, "malformed record: KEY announced before the last "
		    "one was used");
		return -1;
	}
	if (ref_public_equivalent(p)) {
		ref_fail(r, "malformed record: KEY with a public-equivalent "
		    "key");
		return -1;
	}
	r->keys_in++;
	if (r->end == REF_KEY0)
		r->end = REF_OPEN;
	return 0;
}

/* Step 8 for a REKEY (5.3): its DH into dh. */
static int
ref_rekey(struct ref_result *r, const uint8_t *p, uint8_t dh[32])
{
	uint32_t index = (uint32_t)ref_be(p, 4);

	if (index > REF_NEWEST)
		ref_fail(r, "malformed record: REKEY names unannounced key %u",
		    (unsigned)index);
	else if (index < r->oldest)
		ref_fail(r, "malformed record: REKEY names retired key %u",
		    (unsigned)index);
	else if (ref_public_equivalent(p + 4))
		ref_fail(r, "malformed record: REKEY with a public-equivalent "
		    "key");
	else if (ref_dh((int)index, p + 4, dh) == -1)
		ref_fail(r, "malformed record: REKEY with a low-order key");
	else {
		r->oldest = index;	/* the keys below it are erased */
		r->epoch++;
		return 0;
	}
	return -1;
}

/* Step 8 for an ACK (7.2) and a PING (7.3). */
static int
ref_ack(struct ref_result *r, const uint8_t *p)
{
	uint64_t count = ref_be(p, 8);

	if (count > REF_S)
		ref_fail(r, "malformed record: ACK of %llu bytes, only %llu "
		    "sent", (unsigned long long)count,
		    (unsigned long long)REF_S);
	else if (count <= r->acked)
		ref_fail(r, "malformed record: ACK of %llu bytes after ACK of "
		    "%llu", (unsigned long long)count,
		    (unsigned long long)r->acked);
	else {
		r->acked = count;
		return 0;
	}
	return -1;
}

static int
ref_ping(struct ref_result *r, const uint8_t *p)
{
	unsigned interval = (unsigned)ref_be(p, 2);

	if (interval < 1 || interval > 3600) {
		ref_fail(r, "malformed record: PING interval of %u s",
		    interval);
		return -1;
	}
	r->interval = interval;
	return 0;
}

/* Step 8 for an END (9.2): reason, value and text, an unknown reason too. */
static int
ref_end(struct ref_result *r, const uint8_t *p, size_t n)
{
	if (!ref_clean_text(p + 5, n - 5)) {
		ref_fail(r, "malformed record: END text is not clean UTF-8");
		return -1;
	}
	r->end_reason = p[0];
	r->end_value = (uint32_t)ref_be(p + 1, 4);
	memcpy(r->end_text, p + 5, n - 5);
	r->end_text[n - 5] = '\0';
	r->end = REF_ENDED;
	return 0;
}

/* Section 4's table: names and payload sizes, by type. */
static const char *const ref_name[9] = {
	NULL, "DATA", "REKEY", "CLOSE", "KEY", "DONE", "ACK", "PING", "END",
};
static const size_t ref_min[9] = { 0, 0, 36, 0, 32, 0, 8, 2, 5 };
static const size_t ref_max[9] = { 0, 16384, 36, 0, 32, 0, 8, 2, 205 };

/* Step 6: the state rules of 4.1 (never at DONE or ENDED: not opened). */
static int
ref_state_allows(struct ref_result *r, int type, int our_close)
{
	const char *why = NULL;

	if (r->end == REF_KEY0 && type != 4)
		why = "first record is not KEY";
	else if (r->end == REF_OPEN && type == 5)
		why = "DONE before CLOSE";
	else if (r->end == REF_CLOSED && type == 1)
		why = "DATA after CLOSE";
	else if (r->end == REF_CLOSED && type == 3)
		why = "CLOSE after CLOSE";
	else if (r->end == REF_CLOSED && type == 5 && !our_close)
		why = "DONE before our CLOSE";
	if (why == NULL)
		return 1;
	ref_fail(r, "malformed record: %s", why);
	return 0;
}

/*
 * An authenticated record: its type (0: only zero bytes) and the n-byte
 * payload p before it.  Checks 4 to 8 of section 4 in their order, then
 * what the record does; 0, or -1 with r->end = REF_FAIL.  A good REKEY
 * leaves its DH in dh, for the caller's ratchet.
 */
static int
ref_record(struct ref_result *r, int type, const uint8_t *p, size_t n,
    int our_close, uint8_t dh[32])
{
	if (type == 0)
		ref_fail(r, "malformed record: only zero bytes");
	else if (type > 8)
		ref_fail(r, "malformed record: unknown type %d", type);
	else if (!ref_state_allows(r, type, our_close))
		return -1;
	else if (n < ref_min[type] || n > ref_max[type])
		ref_fail(r, "malformed record: %s payload of %zu bytes",
		    ref_name[type], n);
	if (r->end == REF_FAIL)
		return -1;
	switch (type) {
	case 1:
		bytes_add(&r->out, p, n);
		return 0;
	case 2:
		return ref_rekey(r, p, dh);
	case 3:
		r->end = REF_CLOSED;
		r->closed = 1;
		return 0;
	case 4:
		return ref_key(r, p);
	case 5:
		r->end = REF_DONE;
		return 0;
	case 6:
		return ref_ack(r, p);
	case 7:
		return ref_ping(r, p);
	}
	return ref_end(r, p, n);
}

/* The peer's direction is over: what follows is never opened (4.1). */
static int
ref_over(const struct ref_result *r)
{
	return r->end == REF_DONE || r->end == REF_ENDED;
}

static void
ref_begin(struct ref_result *r)
{
	memset(r, 0, sizeof(*r));
	r->end = REF_KEY0;
	r->interval = 15;	/* until a PING says otherwise (7.3) */
}

/* Open one record (2 + clen bytes at w) under key, iv and seq. */
static int
ref_open(EVP_CIPHER_CTX *ctx, const uint8_t key[32], const uint8_t iv[12],
    uint64_t seq, const uint8_t *w, size_t clen, uint8_t *plain)
{
	uint8_t nonce[12];
	size_t inner = clen - 16;
	int i, outl;

	memcpy(nonce, iv, 12);
	for (i = 0; i < 8; i++)
		nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
	return EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key,
	    nonce) == 1 &&
	    EVP_DecryptUpdate(ctx, NULL, &outl, w, 2) == 1 &&
	    EVP_DecryptUpdate(ctx, plain, &outl, w + 2, (int)inner) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
	    (void *)(w + 2 + inner)) == 1 &&
	    EVP_DecryptFinal_ex(ctx, plain + inner, &outl) == 1 ? 0 : -1;
}

static void
ref_decode(const uint8_t *w, size_t n, int our_close, struct ref_result *r)
{
	static uint8_t plain[16656];
	uint8_t secret[32], key[32], iv[12], dh[32], salt[32];
	uint64_t seq = 0;
	size_t pos = 0, clen, inner;
	EVP_CIPHER_CTX *ctx;
	int type;
	unsigned int hl = 32;

	ref_begin(r);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		abort();
	memcpy(secret, vec_c2s0, 32);
	ref_expand(secret, "key", key, 32);
	ref_expand(secret, "iv", iv, 12);
	while (!ref_over(r) && n - pos >= 2) {
		clen = (size_t)w[pos] << 8 | w[pos + 1];
		if (clen < 17 || clen > 16656) {
			ref_fail(r, "malformed record: bad length %zu", clen);
			break;
		}
		if (n - pos < 2 + clen)
			break;
		if (seq >= (uint64_t)1 << 24) {
			ref_fail(r, "malformed record: too many records under "
			    "one key");
			break;
		}
		if (ref_open(ctx, key, iv, seq, w + pos, clen, plain) == -1) {
			ref_fail(r, "record failed authentication");
			break;
		}
		seq++;
		inner = clen - 16;
		while (inner > 0 && plain[inner - 1] == 0)
			inner--;
		type = inner == 0 ? 0 : plain[--inner];
		if (ref_record(r, type, plain, inner, our_close, dh) == -1)
			break;
		if (type == 2) {	/* S' = HMAC(Expand(S, "rekey"), DH) */
			ref_expand(secret, "rekey", salt, 32);
			if (HMAC(EVP_sha256(), salt, 32, dh, 32, secret, &hl)
			    == NULL)
				abort();
			ref_expand(secret, "key", key, 32);
			ref_expand(secret, "iv", iv, 12);
			seq = 0;
		}
		pos += 2 + clen;
		r->consumed = pos;
	}
	/* Bytes after DONE or END, whole records or not, are ignored. */
	if (ref_over(r))
		r->consumed = n;
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(dh, sizeof(dh));
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

/* With mutation & 8: the payload size of type, or 0 to leave len be. */
static size_t
fixed_len(int type, size_t len)
{
	switch (type) {
	case TYPE_KEY:
		return X25519_LEN;
	case TYPE_ACK:
		return ACK_LEN;
	case TYPE_PING:
		return PING_LEN;
	case TYPE_END:
		return END_HEAD + len % (END_TEXT_MAX + 1);
	}
	return 0;
}

/* The payload of one description (all but a well-formed REKEY's). */
static size_t
payload_from(struct input *in, int type, size_t len, int mutation,
    uint8_t *payload)
{
	size_t fixed = mutation & 8 ? fixed_len(type, len) : 0, i;
	uint8_t fill;

	len = fixed != 0 ? fixed : len > MAX_PAYLOAD ? MAX_PAYLOAD : len;
	if (mutation & 4) {
		fill = 0;
		(void)take(in, &fill, 1);
		memset(payload, fill, len);
	} else {
		if (len > in->left && fixed == 0)
			len = in->left;
		memset(payload, 0, len);
		(void)take(in, payload, len < in->left ? len : in->left);
	}
	if (fixed != 0 && type == TYPE_END)	/* a clean text, mostly */
		for (i = END_HEAD; i < len; i++)
			payload[i] = 0x20 + payload[i] % 95;
	return len;
}

/*
 * The prediction for one sealed record, up to the first bad one: the
 * receiver's view of it (the last non-zero byte of the inner plaintext
 * is the type) through the reference's checks.  The sender rekeys as the
 * peer would after a good REKEY.
 */
static void
predict(struct model *m, struct ref_result *ms, struct direction *tx,
    int type, const uint8_t *payload, size_t len, int kind, int our_close,
    int *bad)
{
	uint8_t dh[X25519_LEN];
	size_t inner_len = len + 1;
	int eff_type;

	if (*bad || ref_over(ms))
		return;		/* nothing after DONE or END is opened */
	if (type == 0) {
		inner_len = len;
		while (inner_len > 0 && payload[inner_len - 1] == 0)
			inner_len--;
	}
	eff_type = inner_len == 0 ? 0 : inner_len == len + 1 ? type :
	    payload[inner_len - 1];
	if (inner_len > 0)
		inner_len--;	/* now the payload's length */
	if (kind == 1 || kind == 2) {
		*bad = 1;
		m->expect = EXPECT_FAIL_OR_WAIT;
		return;
	}
	if (ref_record(ms, eff_type, payload, inner_len, our_close, dh)
	    == -1) {
		*bad = 1;
		m->expect = EXPECT_FAIL;
		return;
	}
	if (eff_type == TYPE_REKEY)
		dh_ratchet(tx, dh);
	OPENSSL_cleanse(dh, sizeof(dh));
	m->state = ms->end;
	/* Garbage after a record: fatal or a wait, unless DONE or END. */
	if (kind == 3 && !ref_over(ms)) {
		*bad = 1;
		m->expect = EXPECT_FAIL_OR_WAIT;
	}
}

/* The mutation of one sealed record (n bytes at rec), on the wire only. */
static void
mutate(struct model *m, struct input *in, uint8_t *rec, size_t n, int kind,
    unsigned int param)
{
	size_t bit, glen, i;
	uint8_t g;

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

static void
build(struct input *in, int our_close, struct model *m)
{
	static uint8_t payload[MAX_PAYLOAD], rec[LEN_LEN + MAX_RECORD];
	uint8_t hdr[5], prm[2];
	struct direction tx;
	struct ref_result ms;	/* the receiver's state, as predicted */
	size_t len, pad, n;
	int nrec, bad = 0, kind, type;
	unsigned int param;

	ref_begin(&ms);
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
		} else
			len = payload_from(in, type, len, hdr[4], payload);

		n = seal_record(&tx, type, payload, len, pad, rec);
		if (n != LEN_LEN + len + 1 + pad + TAG_LEN)
			FAIL("seal_record: wrong length");
		predict(m, &ms, &tx, type, payload, len, kind, our_close, &bad);
		mutate(m, in, rec, n, kind, param);
	}
	direction_free(&tx);
	m->out = ms.out;	/* its DATA, up to the first bad record */
	OPENSSL_cleanse(payload, sizeof(payload));
}

/* The session's receiving state, as a REF_* value. */
static int
rx_ref_state(const struct conn *c)
{
	switch (c->rx_state) {
	case RX_KEY0:
		return REF_KEY0;
	case RX_WAIT_ACK:	/* only on a resumed connection: never here */
		abort();
	case RX_OPEN:
		return REF_OPEN;
	case RX_CLOSED:
		return REF_CLOSED;
	case RX_DONE:
		return REF_DONE;
	case RX_ENDED:
		break;
	}
	return REF_ENDED;
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

/*
 * process_rx on what rxb holds, draining stdout as read_net's caller
 * would, again while it opens more: the REKEY rate of 5.3 is flow
 * control, which the harness lifts (a real session opens the rest a
 * second later).
 */
static enum status
rx(struct bytes *got)
{
	enum status status;
	size_t pos;

	do {
		pos = s.b.rxb.pos;
		s.c.rekey_budget = REKEY_BURST * 1000;
		note_use();
		status = process_rx(&s.c, &s.b, &s.st, &s.rep);
		note_use();
		bytes_add(got, s.b.out.data + s.b.out.pos,
		    buf_pending(&s.b.out));
		s.b.out.pos = s.b.out.len;
	} while (status == GO_ON && s.b.rxb.pos != pos &&
	    rx_record_waiting(&s.b.rxb));
	return status;
}

/* What secchat.c did, against the reference receiver. */
static void
check_reference(const struct ref_result *ref, const struct bytes *got,
    enum status status, size_t wire_len)
{
	if (got->len != ref->out.len || (got->len > 0 &&
	    memcmp(got->p, ref->out.p, got->len) != 0))
		FAIL("output is not the reference's");
	if ((status != GO_ON) != (ref->end == REF_FAIL))
		FAIL("process_rx %s where the reference receiver %s (%s)",
		    status != GO_ON ? "failed" : "did not fail",
		    status != GO_ON ? "does not" : "does",
		    status != GO_ON ? s.rep.last : ref->line);
	if (status != GO_ON) {
		if (strcmp(s.rep.last, ref->line) != 0)
			FAIL("process_rx said \"%s\", the reference \"%s\"",
			    s.rep.last, ref->line);
		return;
	}
	if (rx_ref_state(&s.c) != ref->end)
		FAIL("receiving state %d, reference: %d", rx_ref_state(&s.c),
		    ref->end);
	if (buf_pending(&s.b.rxb) != wire_len - ref->consumed)
		FAIL("bytes left in rxb: %zu, reference: %zu",
		    buf_pending(&s.b.rxb), wire_len - ref->consumed);
	/* At DONE and END the receiving keys, epoch and all, are wiped. */
	if (ref_over(ref) ? s.c.rx.ctx != NULL : s.c.rx.epoch != ref->epoch)
		FAIL("receive epoch or keys are not the reference's");
	if (s.c.peer_interval != ref->interval || s.st.acked != ref->acked ||
	    s.st.peer_closed != ref->closed ||
	    s.st.peer_done != (ref->end == REF_DONE))
		FAIL("interval, ACK, CLOSE or DONE not the reference's");
	if (ref->end == REF_ENDED && (s.c.peer_end.reason != ref->end_reason ||
	    s.c.peer_end.value != ref->end_value ||
	    strcmp(s.c.peer_end.text, ref->end_text) != 0))
		FAIL("the peer's END is not the reference's");
}

/* What secchat.c did, against the prediction from what was sealed. */
static void
check_model(const struct model *m, const struct bytes *got,
    enum status status)
{
	if (got->len != m->out.len || (got->len > 0 &&
	    memcmp(got->p, m->out.p, got->len) != 0))
		FAIL("output is not the DATA sealed before the first bad "
		    "record");
	switch (m->expect) {
	case EXPECT_STATE:
		if (status != GO_ON || rx_ref_state(&s.c) != m->state)
			FAIL("expected: state %d, no failure", m->state);
		break;
	case EXPECT_FAIL:
		if (status == GO_ON)
			FAIL("expected: a failure");
		break;
	case EXPECT_FAIL_OR_WAIT:
		if (status == GO_ON && rx_ref_state(&s.c) != m->state)
			FAIL("a state change after a modification");
		break;
	}
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
	enum status status = GO_ON;
	int structured, our_close;

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
	s.rep.last[0] = '\0';
	direction_init(&s.c.rx, vec_c2s0, 0);
	/* The listener announced keys 0 and 1; our CLOSE went, or not. */
	recv_keys_add(&s.c.rk, key_from(vec_rl0));
	recv_keys_add(&s.c.rk, key_from(vec_rl1));
	if (our_close)
		s.c.tx_state = TX_CLOSED;
	/* Deliver the stream as read_net would. */
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
		if ((status = rx(&got)) != GO_ON)
			break;
	}

	if (status != GO_ON && status != EXIT_AUTH)
		FAIL("process_rx returned %d", status);
	if (s.b.out.len > s.b.out.cap || s.b.rxb.pos > s.b.rxb.len ||
	    s.b.rxb.len > s.b.rxb.cap)
		FAIL("buffer indices out of range");
	ref_decode(wire, wire_len, our_close, &ref);
	check_reference(&ref, &got, status, wire_len);
	if (structured)
		check_model(&m, &got, status);

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
