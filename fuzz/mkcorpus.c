/*
 * Writes the seed corpora fuzz/corpus/{msg1,msg2,records}/ from the
 * secchat/3 session vector.  The seeds are committed; rerun this only when
 * the vector or a target's input format changes, into empty directories
 * (it only adds files):
 *
 *	rm -rf fuzz/corpus/msg1 fuzz/corpus/msg2 fuzz/corpus/records &&
 *	cc -std=c11 -Wall -Wextra -Wno-unused-function \
 *	    $(pkg-config --cflags libcrypto libutf8proc) -o /tmp/mkcorpus \
 *	    fuzz/mkcorpus.c $(pkg-config --libs libcrypto libutf8proc) &&
 *	    /tmp/mkcorpus fuzz/corpus
 */
#define SECCHAT_NO_MAIN
#include "../secchat.c"
#include "common.h"

static const char *dir;

static void
put(const char *sub, const char *name, const void *p, size_t n)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	(void)mkdir(path, 0777);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	if ((f = fopen(path, "wb")) == NULL ||
	    (n > 0 && fwrite(p, n, 1, f) != 1) || fclose(f) != 0)
		err(1, "%s", path);
}

/* out = s*base (base NULL: G), encoded. */
static void
mul_point(const struct pake *pk, const uint8_t *base, size_t base_len,
    const BIGNUM *s, uint8_t out[POINT_LEN])
{
	EC_POINT *b = NULL, *r;

	if (base != NULL && (b = decode_point(pk->group, base, base_len,
	    pk->bn)) == NULL)
		errx(1, "bad base point");
	r = point_mul(pk, b, s);
	encode_point(pk->group, r, out, pk->bn);
	EC_POINT_free(r);
	EC_POINT_free(b);
}

/* ---------------------------------------------------------------------- */
/* Structured record seeds (see records_fuzz.c for the format). */

struct seed {
	uint8_t	 p[65536];
	size_t	 n;
};

static void
s_byte(struct seed *s, unsigned v)
{
	s->p[s->n++] = (uint8_t)v;
}

/* type, payload (len bytes), padding, mutation kind and param. */
static void
s_rec(struct seed *s, int type, const char *payload, size_t len, int pad,
    int kind, unsigned param)
{
	s_byte(s, type);
	s_byte(s, len >> 8);
	s_byte(s, len & 0xff);
	s_byte(s, pad);
	s_byte(s, kind);
	if (kind & 3) {
		s_byte(s, param >> 8);
		s_byte(s, param & 0xff);
	}
	if (kind & 4)
		s_byte(s, payload[0]);
	else {
		memcpy(s->p + s->n, payload, len);
		s->n += len;
	}
	if ((kind & 3) == 3) {			/* the garbage bytes */
		memset(s->p + s->n, 0xaa, 1 + param % 64);
		s->n += 1 + param % 64;
	}
}

static void
s_start(struct seed *s, unsigned chunk_root)
{
	s->n = 0;
	s_byte(s, chunk_root << 1 | 1);
}

/* The connector's KEY 0 of the vector: each stream's first record. */
static void
s_key0(struct seed *s)
{
	s_rec(s, 4, (const char *)vec_rc0_pub, X25519_LEN, 0, 0, 0);
}

/* A well-formed REKEY naming index, E from one-time key e (NULL: E = 0). */
static void
s_rekey(struct seed *s, unsigned index, const char *e)
{
	s_byte(s, 2);
	s_byte(s, 0);
	s_byte(s, index);
	s_byte(s, e == NULL);		/* padding & 1: E = 0 */
	s_byte(s, 8);
	if (e != NULL) {
		memcpy(s->p + s->n, e, X25519_LEN);
		s->n += X25519_LEN;
	}
}


/* An END: reason, value and text (n bytes). */
static void
s_end(struct seed *s, unsigned reason, uint32_t value, const char *text,
    size_t n)
{
	char p[END_HEAD + 256];

	p[0] = (char)reason;
	put_u32((uint8_t *)p + 1, value);
	memcpy(p + END_HEAD, text, n);
	s_rec(s, 8, p, END_HEAD + n, 0, 0, 0);
}

/* Raw: the vector's c2s stream, its good start, cut, and a bad length. */
static void
records_raw(void)
{
	uint8_t raw[1 + sizeof(vec_c2s_wire)];

	/* Whole, it fails at the ACK: this side has sent nothing (S = 0). */
	raw[0] = 0x00;
	memcpy(raw + 1, vec_c2s_wire, sizeof(vec_c2s_wire));
	put("records", "raw-vector", raw, sizeof(raw));
	raw[0] = 1 << 1;
	put("records", "raw-vector-bytewise", raw, sizeof(raw));
	raw[0] = 0x00;
	put("records", "raw-vector-good", raw, 1 + VEC_C2S_GOOD);
	raw[0] = 5 << 1;
	put("records", "raw-vector-cut", raw, 60);
	raw[0] = 0x00;
	raw[1 + 51] = 0x00;
	raw[1 + 52] = 0x10;		/* second record's length: 16 */
	put("records", "raw-bad-length", raw, sizeof(raw));
}

/* Structured: the vector's c2s records but the ACK, then three ends. */
static void
records_vector(struct seed *s)
{
	size_t n;

	s_start(s, 0);
	s_key0(s);
	s_rec(s, 7, "\000\036", 2, 0, 0, 0);		/* PING 30 */
	s_rec(s, 1, "hello\n", 6, 0, 0, 0);
	s_rekey(s, 0, (const char *)vec_e0);
	s_rec(s, 1, "more from alice\n", 16, 47, 0, 0);
	s_rec(s, 1, "lost on the way\n", 16, 0, 0, 0);
	put("records", "st-vector", s->p, s->n);
	n = s->n;
	s_rec(s, 3, "", 0, 0, 0, 0);
	s_rec(s, 5, "", 0, 0, 0, 0);
	s->p[0] |= 0x80;
	put("records", "st-vector-done", s->p, s->n);
	s->p[0] &= 0x7f;
	s->n = n;
	s_end(s, 2, 15, "SIGTERM", 7);
	put("records", "st-vector-end", s->p, s->n);
	s->n = n;
	s_rec(s, 3, "", 0, 0, 0, 0);
	s_end(s, 8, 0, "malformed record: DATA after CLOSE", 34);
	put("records", "st-vector-close-end", s->p, s->n);
}

/* Full-size records, receive keys and the KEY rules (5.1, 5.3, 5.6). */
static void
records_keys(struct seed *s)
{
	static const char nine[X25519_LEN] = "\011";
	char rekey[REKEY_LEN] = { 0 };

	s_start(s, 0);
	s_key0(s);
	s_rec(s, 1, "A", MAX_PAYLOAD, 255, 4, 0);
	s_rec(s, 1, "B", MAX_PAYLOAD, 0, 4, 0);
	s_rekey(s, 1, (const char *)vec_e0);
	s_rec(s, 1, "C", 1000, 7, 4, 0);
	s_rec(s, 3, "", 0, 0, 0, 0);
	s->p[0] = 7 << 1 | 1;
	put("records", "st-full-size", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rekey(s, 0, (const char *)vec_e0);
	s_rec(s, 1, "under key 0\n", 12, 0, 0, 0);
	s_rekey(s, 1, (const char *)vec_e0);
	s_rec(s, 1, "under key 1\n", 12, 0, 0, 0);
	s_rekey(s, 0, (const char *)vec_e0);
	put("records", "st-rekey-retired", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rekey(s, 2, (const char *)vec_e0);
	put("records", "st-rekey-unannounced", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rekey(s, 0, NULL);
	put("records", "st-rekey-low-order", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	memcpy(rekey + INDEX_LEN, nine, X25519_LEN);
	s_rec(s, 2, rekey, REKEY_LEN, 0, 0, 0);
	put("records", "st-rekey-public", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 2, "\000\000\000\000", 4, 0, 0, 0);
	put("records", "st-rekey-truncated", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_key0(s);
	put("records", "st-key-early", s->p, s->n);
	s_start(s, 0);
	s_rec(s, 4, nine, X25519_LEN, 0, 0, 0);
	put("records", "st-key-public", s->p, s->n);
}

/* Types, payloads and the grammar of 4.1; bytes after DONE ignored. */
static void
records_order(struct seed *s)
{
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 0, "hi\n\001", 4, 3, 0, 0);
	s_rec(s, 0, "x\000\003", 3, 0, 0, 0);
	put("records", "st-type0", s->p, s->n);
	s_start(s, 0);
	s_rec(s, 1, "one\n", 4, 0, 0, 0);
	put("records", "st-no-key0", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 255, "", 0, 0, 0, 0);
	put("records", "st-type255", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 9, "", 0, 0, 0, 0);
	put("records", "st-type9", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 0, "\000\000", 2, 9, 0, 0);
	put("records", "st-all-zero", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 3, "p", 1, 0, 0, 0);
	put("records", "st-close-payload", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 5, "", 0, 0, 0, 0);
	put("records", "st-done-before-close", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 3, "", 0, 0, 0, 0);
	s_rec(s, 1, "late\n", 5, 0, 0, 0);
	put("records", "st-after-close", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 3, "", 0, 0, 0, 0);
	s_rec(s, 5, "", 0, 0, 0, 0);
	put("records", "st-done-before-our-close", s->p, s->n);
	s_rec(s, 4, (const char *)vec_rc0_pub, X25519_LEN, 0, 0, 0);
	s_rec(s, 1, "ignored\n", 8, 0, 0, 0);
	s->p[0] |= 0x80;
	put("records", "st-after-done", s->p, s->n);
}

/* ACK (7.2: this side's S is 0), PING (7.3). */
static void
records_ack_ping(struct seed *s)
{
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 6, "\000\000\000\000\000\000\000\011", ACK_LEN, 0, 0, 0);
	put("records", "st-ack", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 6, "\000\000\000\000\000\000\000\000", ACK_LEN, 0, 0, 0);
	put("records", "st-ack-zero", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 6, "\000\000\000\000", 4, 0, 0, 0);
	put("records", "st-ack-short", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 7, "\016\020", PING_LEN, 0, 0, 0);	/* 3600 */
	s_rec(s, 3, "", 0, 0, 0, 0);
	s_rec(s, 7, "\000\001", PING_LEN, 3, 0, 0);
	put("records", "st-ping", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 7, "\000\000", PING_LEN, 0, 0, 0);
	put("records", "st-ping-0", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 7, "\016\021", PING_LEN, 0, 0, 0);	/* 3601 */
	put("records", "st-ping-3601", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 7, "\000\036\000", 3, 0, 0, 0);
	put("records", "st-ping-long", s->p, s->n);
}

/* END (9.2): its sizes, its text, where it may come, what follows it. */
static void
records_end(struct seed *s)
{
	static const struct {
		const char *name, *text;
	} texts[] = {
		{ "st-end-utf8", "caf\303\251 \342\202\254 \360\237\230\200" },
		{ "st-end-c1", "a\302\205b" },
		{ "st-end-tab", "a\tb" },
		{ "st-end-del", "a\177" },
		{ "st-end-overlong", "\300\257" },
		{ "st-end-surrogate", "\355\240\200" },
		{ "st-end-beyond", "\364\220\200\200" },
		{ "st-end-cut", "\342\202" },
	};
	char text[END_TEXT_MAX + 1];
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		s_start(s, 0);
		s_key0(s);
		s_end(s, 9, 0, texts[i].text, strlen(texts[i].text));
		put("records", texts[i].name, s->p, s->n);
	}
	memset(text, 'x', sizeof(text));
	s_start(s, 0);
	s_key0(s);
	s_end(s, 7, 30, text, END_TEXT_MAX);
	put("records", "st-end-longest", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_end(s, 9, 0, text, END_TEXT_MAX + 1);
	put("records", "st-end-too-long", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 8, "\001\000\000\000", 4, 0, 0, 0);
	put("records", "st-end-short", s->p, s->n);
	s_start(s, 0);
	s_end(s, 1, 0, "", 0);
	put("records", "st-end-first", s->p, s->n);
	s_start(s, 3);
	s_key0(s);
	s_rec(s, 1, "a\n", 2, 0, 0, 0);
	s_end(s, 200, 7, "", 0);
	s_rec(s, 1, "ignored\n", 8, 0, 3, 5);
	s_rec(s, 255, "", 0, 0, 0, 0);
	put("records", "st-after-end", s->p, s->n);
}

/* Mutations: flip (length field, body, tag), truncate, garbage. */
static void
records_mutations(struct seed *s)
{
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 1, "a\n", 2, 0, 0, 0);
	s_rec(s, 1, "b\n", 2, 0, 1, 9);
	s_rec(s, 1, "c\n", 2, 0, 0, 0);
	put("records", "st-flip-length", s->p, s->n);
	s_start(s, 3);
	s_key0(s);
	s_rec(s, 1, "a\n", 2, 0, 0, 0);
	s_rec(s, 1, "b\n", 2, 0, 1, 0x8000);
	put("records", "st-flip-tag", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 1, "a\n", 2, 0, 0, 0);
	s_rec(s, 1, "b\n", 2, 0, 2, 10);
	s_rec(s, 3, "", 0, 0, 0, 0);
	put("records", "st-truncate", s->p, s->n);
	s_start(s, 1);
	s_key0(s);
	s_rec(s, 1, "a\n", 2, 0, 3, 2);
	s_rec(s, 3, "", 0, 0, 0, 0);
	put("records", "st-garbage", s->p, s->n);
	s_start(s, 0);
	s_key0(s);
	s_rec(s, 3, "", 0, 0, 0, 0);
	s_rec(s, 5, "", 0, 0, 3, 2);
	s->p[0] |= 0x80;
	put("records", "st-garbage-after-done", s->p, s->n);
}

static void
records(void)
{
	static struct seed s;

	records_raw();
	records_vector(&s);
	records_keys(&s);
	records_order(&s);
	records_ack_ping(&s);
	records_end(&s);
	records_mutations(&s);
}

/* msg1: what a listener sends first, GREETING or REFUSAL (2.1, 2.5). */
static void
msg1(struct pake *pk, const BIGNUM *one)
{
	static const uint8_t seconds[] = { 0, 8, 1, 30, 0, 0, 0, 0, 0, 0 };
	struct greeting g;
	struct refusal rf;
	char name[32];
	unsigned reason;

	put("msg1", "vector", vec_greeting1, sizeof(vec_greeting1));
	memcpy(&g, vec_greeting1, sizeof(g));
	g.flags = FLAG_CODE;
	put("msg1", "greeting-code", &g, sizeof(g));
	g.flags = FLAG_NO_NEW;
	memset(g.pB, 0, POINT_LEN);
	put("msg1", "greeting-no-new", &g, sizeof(g));
	/* pB = w*N: K is the point at infinity; pB = G; pB compressed. */
	memcpy(&g, vec_greeting1, sizeof(g));
	mul_point(pk, spake2_n, sizeof(spake2_n), pk->w, g.pB);
	put("msg1", "pB-wN", &g, sizeof(g));
	mul_point(pk, NULL, 0, one, g.pB);
	put("msg1", "pB-G", &g, sizeof(g));
	memcpy(&g, vec_greeting1, sizeof(g));
	g.pB[0] = 0x02 | (g.pB[64] & 1);
	put("msg1", "pB-compressed", &g, sizeof(g));
	/* Iteration counts at and beyond the bounds. */
	memcpy(&g, vec_greeting1, sizeof(g));
	put_u32(g.iterations, MIN_ITER - 1);
	put("msg1", "iter-999", &g, sizeof(g));
	put_u32(g.iterations, MAX_ITER);
	put("msg1", "iter-max", &g, sizeof(g));
	put_u32(g.iterations, MAX_ITER + 1);
	put("msg1", "iter-max+1", &g, sizeof(g));
	/* Not secchat/3: secchat/2's version byte, HTTP, the magic alone. */
	memcpy(&g, vec_greeting1, sizeof(g));
	g.hdr[MAGIC_LEN] = 0x02;
	put("msg1", "version-2", &g, sizeof(g));
	put("msg1", "http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	put("msg1", "magic-only", MAGIC, MAGIC_LEN);
	/* A REFUSAL of each reason, and of an unknown one. */
	for (reason = 1; reason <= 10; reason++) {
		memset(&rf, 0, sizeof(rf));
		hs_header(rf.hdr, KIND_REFUSAL);
		rf.reason = reason <= 9 ? reason : 200;
		rf.seconds[1] = seconds[reason <= 9 ? reason : 0];
		snprintf(name, sizeof(name), "refusal-%u", rf.reason);
		put("msg1", name, &rf, sizeof(rf));
	}
}

/* msg2: what a connector sends, HELLO or RESUME (2.1, 8.2). */
static void
msg2(struct pake *pk, const BIGNUM *one)
{
	struct hello h;
	uint8_t resume[93] = { 0 };

	put("msg2", "vector", vec_hello, sizeof(vec_hello));
	/* pA = w*M (K infinite); pA = G; off the curve; a wrong cA. */
	memcpy(&h, vec_hello, sizeof(h));
	mul_point(pk, spake2_m, sizeof(spake2_m), pk->w, h.pA);
	put("msg2", "pA-wM", &h, sizeof(h));
	mul_point(pk, NULL, 0, one, h.pA);
	put("msg2", "pA-G", &h, sizeof(h));
	memcpy(&h, vec_hello, sizeof(h));
	h.pA[64] ^= 1;
	put("msg2", "pA-off-curve", &h, sizeof(h));
	memcpy(&h, vec_hello, sizeof(h));
	h.cA[31] ^= 0x80;
	put("msg2", "cA-wrong", &h, sizeof(h));
	memcpy(&h, vec_hello, sizeof(h));
	h.window[0] = h.window[1] = 0;
	put("msg2", "window-0", &h, sizeof(h));
	memcpy(&h, vec_hello, sizeof(h));
	h.hdr[MAGIC_LEN] = 0x02;
	put("msg2", "version-2", &h, sizeof(h));
	hs_header(resume, KIND_RESUME);
	put("msg2", "resume", resume, sizeof(resume));
}

int
main(int argc, char *argv[])
{
	struct pake pk;
	BIGNUM *one;

	if (argc != 2)
		errx(2, "usage: mkcorpus DIR");
	dir = argv[1];
	(void)mkdir(dir, 0777);
	pake_init(&pk, vec_w);
	one = scalar_from_bytes((const uint8_t *)"\001", 1);
	msg1(&pk, one);
	msg2(&pk, one);
	records();
	BN_free(one);
	pake_free(&pk);
	return 0;
}
