/*
 * libFuzzer target: the connector's handling of handshake message 1.
 *
 * The input is what a (possibly hostile) listener sent.  The checks are
 * the connector's own (read_message: magic and version first, then 93
 * bytes; handshake_connector: the iteration-count range), then derive_w,
 * pake_init, spake2_share and spake2_finish as party A with the session
 * vector's fixed x, and traffic_secrets when the point is accepted.  To
 * keep executions fast an in-range count is replaced by 1000 for PBKDF2
 * only; the AAD keeps the count as received.  Input bytes after the first
 * 93 are taken as message 3 and compared as the connector would.
 *
 * Invariants (abort()):
 *   - spake2_finish succeeds exactly for an uncompressed point on the
 *     curve other than w*N (checked again here with libcrypto directly);
 *   - with the vector's salt and pB, the traffic secrets are the vector's
 *     whatever the count and the confirmation MAC cA is the vector's
 *     exactly when the 28 AAD bytes are the vector's.
 */
#define SECCHAT_NO_MAIN
#include "../secchat.c"
#include "common.h"

#include <openssl/err.h>

#define FUZZ_ITER	1000
#define TT_LEN		(6 * 8 + sizeof(ID_A) - 1 + sizeof(ID_B) - 1 + \
			    3 * POINT_LEN + SCALAR_LEN)

static BIGNUM *x;		/* the vector's x, for the whole run */

struct outcome {
	int	 ok;		/* spake2_finish accepted pB */
	int	 point, is_wn;	/* pB is on the curve; pB = w*N */
	int	 cb_checked;	/* message 3 was present, */
	int	 cb_ok;		/* and it matched cB */
	uint8_t	 pA[POINT_LEN], cA[MAC_LEN];
	uint8_t	 c2s[SECRET_LEN], s2c[SECRET_LEN];
};

/*
 * Independent check that p is an uncompressed P-256 point on the curve;
 * *is_wn is set if it is w*N, the one point that makes K infinite.
 */
static int
on_curve(const struct pake *pk, const uint8_t p[POINT_LEN], int *is_wn)
{
	EC_POINT *pt;
	int ok;

	*is_wn = 0;
	if (p[0] != 0x04)
		return 0;
	if ((pt = EC_POINT_new(pk->group)) == NULL)
		abort();
	ok = EC_POINT_oct2point(pk->group, pt, p, POINT_LEN, NULL) == 1 &&
	    EC_POINT_is_on_curve(pk->group, pt, NULL) == 1;
	if (ok)
		*is_wn = EC_POINT_cmp(pk->group, pt, pk->wN, NULL) == 0;
	EC_POINT_free(pt);
	return ok;
}

/* Returns -1 where the connector refuses message 1, else 0 with *o set. */
static int
connector_msg1(const uint8_t *data, size_t size, struct outcome *o)
{
	struct msg1 m1;
	struct pake pk;
	struct handshake_keys hk;
	uint8_t w[SCALAR_LEN];
	uint32_t iterations;

	memset(o, 0, sizeof(*o));
	/* read_message: a wrong prefix, then a short message. */
	if (memcmp(data, MAGIC, size < MAGIC_LEN ? size : MAGIC_LEN) != 0 ||
	    size < sizeof(m1))
		return -1;
	memcpy(&m1, data, sizeof(m1));
	iterations = get_u32(m1.iterations);
	if (iterations < MIN_ITER || iterations > MAX_ITER)
		return -1;
	iterations = FUZZ_ITER;
	if (derive_w(VEC_PASSWORD, strlen(VEC_PASSWORD), m1.salt, iterations,
	    w) == -1)
		return -1;
	pake_init(&pk, w);
	OPENSSL_cleanse(w, sizeof(w));
	memset(&hk, 0, sizeof(hk));
	o->point = on_curve(&pk, m1.pB, &o->is_wn);
	spake2_share(&pk, 1, x, o->pA);
	if (spake2_finish(&pk, 1, x, &m1, o->pA, &hk) == 0) {
		o->ok = 1;
		if (hk.tt_len != TT_LEN) {
			fuzz_fail("msg1_fuzz: TT is %zu bytes",
			    hk.tt_len);
		}
		memcpy(o->cA, hk.cA, MAC_LEN);
		if (size >= sizeof(m1) + MAC_LEN) {
			o->cb_checked = 1;
			o->cb_ok = CRYPTO_memcmp(hk.cB, data + sizeof(m1),
			    MAC_LEN) == 0;
		}
		traffic_secrets(&hk, o->c2s, o->s2c);
	}
	pake_free(&pk);
	OPENSSL_cleanse(&hk, sizeof(hk));
	OPENSSL_cleanse(&m1, sizeof(m1));
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct outcome o;
	uint8_t both[sizeof(vec_msg1) + sizeof(vec_msg3)];

	(void)argc;
	(void)argv;
	x = scalar_from_bytes(vec_x, sizeof(vec_x));
	/* The harness must reproduce the session vector's connector. */
	memcpy(both, vec_msg1, sizeof(vec_msg1));
	memcpy(both + sizeof(vec_msg1), vec_msg3, sizeof(vec_msg3));
	if (connector_msg1(both, sizeof(both), &o) != 0 || !o.ok ||
	    memcmp(o.pA, vec_msg2 + MAGIC_LEN, POINT_LEN) != 0 ||
	    memcmp(o.cA, vec_msg2 + MAGIC_LEN + POINT_LEN, MAC_LEN) != 0 ||
	    !o.cb_checked || !o.cb_ok ||
	    memcmp(o.c2s, vec_c2s0, SECRET_LEN) != 0 ||
	    memcmp(o.s2c, vec_s2c0, SECRET_LEN) != 0) {
		fuzz_fail("msg1_fuzz: the session vector does not "
		    "reproduce; the harness is wrong");
	}
	ERR_clear_error();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct msg1 *m1 = (const struct msg1 *)data;
	struct outcome o;
	int same_keys, same_aad;

	if (connector_msg1(data, size, &o) == 0) {
		if (o.ok != (o.point && !o.is_wn)) {
			fuzz_fail("msg1_fuzz: spake2_finish %s a pB "
			    "that is %s", o.ok ? "accepted" : "refused",
			    !o.point ? "not on the curve" : o.is_wn ?
			    "w*N (K at infinity)" : "on the curve");
		}
		same_keys = memcmp(m1->salt, vec_salt, SALT_LEN) == 0 &&
		    memcmp(m1->pB, vec_msg1 + AAD_LEN, POINT_LEN) == 0;
		same_aad = memcmp(data, vec_msg1, AAD_LEN) == 0;
		/*
		 * w = 0 or K at infinity could refuse the vector's point,
		 * but not for the vector's own salt and pB.
		 */
		if (same_keys && (!o.ok ||
		    memcmp(o.c2s, vec_c2s0, SECRET_LEN) != 0 ||
		    memcmp(o.s2c, vec_s2c0, SECRET_LEN) != 0 ||
		    (memcmp(o.cA, vec_msg2 + MAGIC_LEN + POINT_LEN,
		    MAC_LEN) == 0) != same_aad)) {
			fuzz_fail("msg1_fuzz: the vector's salt and pB "
			    "give other keys");
		}
		if (o.cb_checked && o.cb_ok && !(same_keys && same_aad)) {
			fuzz_fail("msg1_fuzz: a forged message 3 "
			    "passed");
		}
	}
	OPENSSL_cleanse(&o, sizeof(o));
	ERR_clear_error();
	return 0;
}
