/*
 * Writes the seed corpora fuzz/corpus/{msg1,msg2,records}/ from the
 * session vector.  The seeds are committed; rerun this only when the
 * vector or a target's input format changes:
 *
 *	cc -std=c11 -Wall -Wextra -Wno-unused-function \
 *	    $(pkg-config --cflags libcrypto) -o /tmp/mkcorpus \
 *	    fuzz/mkcorpus.c $(pkg-config --libs libcrypto) &&
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

/* The vector's connector key 0 (public) and its first one-time key. */
#define VEC_RC0_PUB	"\x93\x51\xcb\xc5\x41\x74\x49\xf6\x13\x48\xa1\x35\xc1\x9b\x34\x74\xe1\x53\x33\xdc\x23\xe1\xae\xaf\xa6\x87\x20\x51\x2b\xfe\x86\x5e"
#define VEC_E0		"\x7a\x00\xe0\x70\xb0\xd0\x06\x01\xbf\x1c\x14\x2e\x83\xae\x2d\x1d\x94\x5e\x93\x3b\xa3\x74\x81\x56\xa5\xfd\xb5\x6b\x1d\x47\xb0\x70"

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
	s_rec(s, 4, VEC_RC0_PUB, X25519_LEN, 0, 0, 0);
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

static void
records(void)
{
	static struct seed s;
	uint8_t raw[1 + sizeof(vec_c2s_wire)];

	/* Raw: the vector's c2s stream, at once and byte by byte. */
	raw[0] = 0x00;
	memcpy(raw + 1, vec_c2s_wire, sizeof(vec_c2s_wire));
	put("records", "raw-vector", raw, sizeof(raw));
	raw[0] = 1 << 1;
	put("records", "raw-vector-bytewise", raw, sizeof(raw));
	/* Raw: the stream cut in the middle of a record, and a bad length. */
	raw[0] = 5 << 1;
	put("records", "raw-vector-cut", raw, 60);
	raw[0] = 0x00;
	raw[1 + 51] = 0x00;
	raw[1 + 52] = 0x10;		/* second record's length: 16 */
	put("records", "raw-bad-length", raw, sizeof(raw));

	/* Structured: the vector's records, which must seal identically. */
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 1, "hello\n", 6, 0, 0, 0);
	s_rec(&s, 1, "hello\n", 6, 57, 0, 0);
	s_rekey(&s, 0, VEC_E0);
	s_rec(&s, 1, "ok\n", 3, 60, 0, 0);
	put("records", "st-vector", s.p, s.n);
	/* ... then CLOSE and DONE, our CLOSE sent. */
	s_rec(&s, 3, "", 0, 0, 0, 0);
	s_rec(&s, 5, "", 0, 0, 0, 0);
	s.p[0] |= 0x80;
	put("records", "st-vector-done", s.p, s.n);

	/* Full-size records (synthetic payload), in 7-byte chunks. */
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 1, "A", MAX_PAYLOAD, 255, 4, 0);
	s_rec(&s, 1, "B", MAX_PAYLOAD, 0, 4, 0);
	s_rekey(&s, 1, VEC_E0);
	s_rec(&s, 1, "C", 1000, 7, 4, 0);
	s_rec(&s, 3, "", 0, 0, 0, 0);
	s.p[0] = 7 << 1 | 1;
	put("records", "st-full-size", s.p, s.n);

	/* Type 0: the last non-zero byte of the payload is the type. */
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 0, "hi\n\001", 4, 3, 0, 0);
	s_rec(&s, 0, "x\000\003", 3, 0, 0, 0);
	put("records", "st-type0", s.p, s.n);

	/* Receive keys: both announced keys, then a retired one. */
	s_start(&s, 0);
	s_key0(&s);
	s_rekey(&s, 0, VEC_E0);
	s_rec(&s, 1, "under key 0\n", 12, 0, 0, 0);
	s_rekey(&s, 1, VEC_E0);
	s_rec(&s, 1, "under key 1\n", 12, 0, 0, 0);
	s_rekey(&s, 0, VEC_E0);
	put("records", "st-rekey-retired", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rekey(&s, 2, VEC_E0);
	put("records", "st-rekey-unannounced", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rekey(&s, 0, NULL);
	put("records", "st-rekey-low-order", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 2, "\000\000\000\000", 4, 0, 0, 0);
	put("records", "st-rekey-truncated", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 4, VEC_RC0_PUB, X25519_LEN, 0, 0, 0);
	put("records", "st-key-early", s.p, s.n);

	/* Invalid types, payloads and orders. */
	s_start(&s, 0);
	s_rec(&s, 1, "one\n", 4, 0, 0, 0);
	put("records", "st-no-key0", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 255, "", 0, 0, 0, 0);
	put("records", "st-type255", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 0, "\000\000", 2, 9, 0, 0);
	put("records", "st-all-zero", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 3, "p", 1, 0, 0, 0);
	put("records", "st-close-payload", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 3, "", 0, 0, 0, 0);
	s_rec(&s, 1, "late\n", 5, 0, 0, 0);
	put("records", "st-after-close", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 3, "", 0, 0, 0, 0);
	s_rec(&s, 5, "", 0, 0, 0, 0);
	put("records", "st-done-before-our-close", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 3, "", 0, 0, 0, 0);
	s_rec(&s, 5, "", 0, 0, 0, 0);
	s_rec(&s, 4, VEC_RC0_PUB, X25519_LEN, 0, 0, 0);
	s.p[0] |= 0x80;
	put("records", "st-after-done", s.p, s.n);

	/* Mutations: flip (length field, body, tag), truncate, garbage. */
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 1, "a\n", 2, 0, 0, 0);
	s_rec(&s, 1, "b\n", 2, 0, 1, 9);
	s_rec(&s, 1, "c\n", 2, 0, 0, 0);
	put("records", "st-flip-length", s.p, s.n);
	s_start(&s, 3);
	s_key0(&s);
	s_rec(&s, 1, "a\n", 2, 0, 0, 0);
	s_rec(&s, 1, "b\n", 2, 0, 1, 0x8000);
	put("records", "st-flip-tag", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 1, "a\n", 2, 0, 0, 0);
	s_rec(&s, 1, "b\n", 2, 0, 2, 10);
	s_rec(&s, 3, "", 0, 0, 0, 0);
	put("records", "st-truncate", s.p, s.n);
	s_start(&s, 1);
	s_key0(&s);
	s_rec(&s, 1, "a\n", 2, 0, 3, 2);
	s_rec(&s, 3, "", 0, 0, 0, 0);
	put("records", "st-garbage", s.p, s.n);
	s_start(&s, 0);
	s_key0(&s);
	s_rec(&s, 3, "", 0, 0, 0, 0);
	s_rec(&s, 5, "", 0, 0, 3, 2);
	s.p[0] |= 0x80;
	put("records", "st-garbage-after-done", s.p, s.n);
}

int
main(int argc, char *argv[])
{
	struct pake pk;
	struct msg1 m1;
	struct msg2 m2;
	uint8_t buf[256];
	BIGNUM *one;

	if (argc != 2)
		errx(2, "usage: mkcorpus DIR");
	dir = argv[1];
	(void)mkdir(dir, 0777);
	pake_init(&pk, vec_w);
	one = scalar_from_bytes((const uint8_t *)"\001", 1);

	/* msg1: the vector's, alone and followed by message 3. */
	put("msg1", "vector", vec_msg1, sizeof(vec_msg1));
	memcpy(buf, vec_msg1, sizeof(vec_msg1));
	memcpy(buf + sizeof(vec_msg1), vec_msg3, sizeof(vec_msg3));
	put("msg1", "vector-msg3", buf, sizeof(vec_msg1) + sizeof(vec_msg3));
	/* pB = w*N: K is the point at infinity. */
	memcpy(&m1, vec_msg1, sizeof(m1));
	mul_point(&pk, spake2_n, sizeof(spake2_n), pk.w, m1.pB);
	put("msg1", "pB-wN", &m1, sizeof(m1));
	/* pB = G, a valid point unrelated to w. */
	mul_point(&pk, NULL, 0, one, m1.pB);
	put("msg1", "pB-G", &m1, sizeof(m1));
	/* pB compressed (0x02/0x03 form) in the 65-byte slot. */
	memcpy(&m1, vec_msg1, sizeof(m1));
	m1.pB[0] = 0x02 | (m1.pB[64] & 1);
	put("msg1", "pB-compressed", &m1, sizeof(m1));
	/* Iteration counts at and beyond the bounds. */
	memcpy(&m1, vec_msg1, sizeof(m1));
	put_u32(m1.iterations, MIN_ITER - 1);
	put("msg1", "iter-999", &m1, sizeof(m1));
	put_u32(m1.iterations, MAX_ITER);
	put("msg1", "iter-max", &m1, sizeof(m1));
	put_u32(m1.iterations, MAX_ITER + 1);
	put("msg1", "iter-max+1", &m1, sizeof(m1));
	/* Not secchat/2 (secchat/1's version byte, HTTP). */
	put("msg1", "http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	memcpy(&m1, vec_msg1, sizeof(m1));
	m1.magic[7] = 0x01;
	put("msg1", "version-1", &m1, sizeof(m1));
	put("msg1", "magic-only", MAGIC, MAGIC_LEN);

	/* msg2: the vector's; pA = w*M (K infinite); pA = G; off-curve. */
	put("msg2", "vector", vec_msg2, sizeof(vec_msg2));
	memcpy(&m2, vec_msg2, sizeof(m2));
	mul_point(&pk, spake2_m, sizeof(spake2_m), pk.w, m2.pA);
	put("msg2", "pA-wM", &m2, sizeof(m2));
	mul_point(&pk, NULL, 0, one, m2.pA);
	put("msg2", "pA-G", &m2, sizeof(m2));
	memcpy(&m2, vec_msg2, sizeof(m2));
	m2.pA[64] ^= 1;
	put("msg2", "pA-off-curve", &m2, sizeof(m2));
	memcpy(&m2, vec_msg2, sizeof(m2));
	m2.cA[31] ^= 0x80;
	put("msg2", "cA-wrong", &m2, sizeof(m2));
	memcpy(&m2, vec_msg2, sizeof(m2));
	m2.magic[7] = 0x01;
	put("msg2", "version-1", &m2, sizeof(m2));

	records();
	BN_free(one);
	pake_free(&pk);
	return 0;
}
