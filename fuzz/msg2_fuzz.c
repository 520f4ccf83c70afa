/*
 * libFuzzer target: the listener's handling of handshake message 2.
 *
 * The listener is the session vector's: password "correct horse battery
 * staple", salt 000102..0f, 1000 iterations, fixed y, and message 1 built
 * as handshake_listener builds it.  The input is message 2: the prefix is
 * checked as read_message does, then listener_verify runs on the first 105
 * bytes, and traffic_secrets follows a success.
 *
 * Invariants (abort()):
 *   - listener_verify returns 0, HS_BAD_POINT or HS_BAD_MAC;
 *   - HS_BAD_POINT exactly when pA is not an uncompressed point on the
 *     curve (K at infinity aside, which needs pA = w*M: seeded);
 *   - 0 only for the vector's own message 2, and then the secrets and cB
 *     are the vector's (a different pA changes TT, so any other accepted
 *     cA would be a forgery).
 */
#define SECCHAT_NO_MAIN
#include "../secchat.c"
#include "common.h"

#include <openssl/err.h>

static struct pake pk;		/* the listener's, for the whole run */
static BIGNUM *y;
static struct msg1 m1;
static EC_POINT *wM;		/* w*M: the one pA that makes K infinite */

static int
is_point(const uint8_t p[POINT_LEN], int *is_wm)
{
	EC_POINT *pt;
	int ok;

	*is_wm = 0;
	if (p[0] != 0x04)
		return 0;
	if ((pt = EC_POINT_new(pk.group)) == NULL)
		abort();
	ok = EC_POINT_oct2point(pk.group, pt, p, POINT_LEN, NULL) == 1 &&
	    EC_POINT_is_on_curve(pk.group, pt, NULL) == 1;
	if (ok)
		*is_wm = EC_POINT_cmp(pk.group, pt, wM, NULL) == 0;
	EC_POINT_free(pt);
	return ok;
}

/* -1: refused before listener_verify; else its result, secrets on 0. */
static int
listener_msg2(const uint8_t *data, size_t size, uint8_t c2s[SECRET_LEN],
    uint8_t s2c[SECRET_LEN], uint8_t cB[MAC_LEN])
{
	struct msg2 m2;
	struct handshake_keys hk;
	int r;

	if (memcmp(data, MAGIC, size < MAGIC_LEN ? size : MAGIC_LEN) != 0 ||
	    size < sizeof(m2))
		return -1;
	memcpy(&m2, data, sizeof(m2));
	memset(&hk, 0, sizeof(hk));
	r = listener_verify(&pk, y, &m1, &m2, &hk);
	if (r == 0) {
		memcpy(cB, hk.cB, MAC_LEN);
		traffic_secrets(&hk, c2s, s2c);
	}
	OPENSSL_cleanse(&hk, sizeof(hk));
	return r;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t w[SCALAR_LEN], c2s[SECRET_LEN], s2c[SECRET_LEN], cB[MAC_LEN];
	EC_POINT *m;

	(void)argc;
	(void)argv;
	if (derive_w(VEC_PASSWORD, strlen(VEC_PASSWORD), vec_salt,
	    VEC_ITERATIONS, w) != 0 || memcmp(w, vec_w, SCALAR_LEN) != 0) {
		fuzz_fail("msg2_fuzz: derive_w does not give the "
		    "vector's w");
	}
	pake_init(&pk, w);
	OPENSSL_cleanse(w, sizeof(w));
	y = scalar_from_bytes(vec_y, sizeof(vec_y));
	/* As handshake_listener builds it. */
	memcpy(m1.magic, MAGIC, MAGIC_LEN);
	put_u32(m1.iterations, VEC_ITERATIONS);
	memcpy(m1.salt, vec_salt, SALT_LEN);
	spake2_share(&pk, 0, y, m1.pB);
	if (memcmp(&m1, vec_msg1, sizeof(m1)) != 0) {
		fuzz_fail("msg2_fuzz: message 1 is not the vector's");
	}
	if ((m = decode_point(pk.group, spake2_m, sizeof(spake2_m), pk.bn))
	    == NULL)
		abort();
	wM = point_mul(&pk, m, pk.w);
	EC_POINT_free(m);
	if (listener_msg2(vec_msg2, sizeof(vec_msg2), c2s, s2c, cB) != 0 ||
	    memcmp(c2s, vec_c2s0, SECRET_LEN) != 0 ||
	    memcmp(s2c, vec_s2c0, SECRET_LEN) != 0 ||
	    memcmp(cB, vec_msg3, MAC_LEN) != 0) {
		fuzz_fail("msg2_fuzz: listener_verify refuses the "
		    "vector's message 2; the harness is wrong");
	}
	ERR_clear_error();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct msg2 *m2 = (const struct msg2 *)data;
	uint8_t c2s[SECRET_LEN], s2c[SECRET_LEN], cB[MAC_LEN];
	int r, point, is_wm;

	r = listener_msg2(data, size, c2s, s2c, cB);
	if (r == -1)
		goto done;
	if (r != 0 && r != HS_BAD_POINT && r != HS_BAD_MAC) {
		fuzz_fail("msg2_fuzz: listener_verify returned %d", r);
	}
	point = is_point(m2->pA, &is_wm);
	if ((r == HS_BAD_POINT) != (!point || is_wm)) {
		fuzz_fail("msg2_fuzz: listener_verify says %s for a "
		    "pA that is %s", r == HS_BAD_POINT ? "bad point" :
		    "good point", !point ? "not on the curve" : is_wm ?
		    "w*M (K at infinity)" : "on the curve");
	}
	if (r == 0 && (memcmp(data, vec_msg2, sizeof(vec_msg2)) != 0 ||
	    memcmp(c2s, vec_c2s0, SECRET_LEN) != 0 ||
	    memcmp(s2c, vec_s2c0, SECRET_LEN) != 0 ||
	    memcmp(cB, vec_msg3, MAC_LEN) != 0)) {
		fuzz_fail("msg2_fuzz: listener_verify accepted a "
		    "message 2 that is not the vector's");
	}
 done:
	OPENSSL_cleanse(c2s, sizeof(c2s));
	OPENSSL_cleanse(s2c, sizeof(s2c));
	ERR_clear_error();
	return 0;
}
