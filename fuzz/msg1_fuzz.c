/*
 * libFuzzer target: the connector's side of the secchat/3 handshake.
 *
 * The input is what a (possibly hostile) listener sent first.  It is read
 * as read_message reads it, through hs_parse, taking the kinds the
 * connector takes first: GREETING or REFUSAL.  A whole REFUSAL gets its
 * line from refusal_line (password and code greeting alike); a whole
 * GREETING gets connector_greeting's checks (NO_NEW, CODE, the iteration
 * range, share_valid on pB), and then, as connector_hello does, the
 * connector's share and spake2_finish with the session vector's w and x
 * (set up once: no PBKDF2 per input).
 *
 * Invariants (abort()):
 *   - hs_parse asks for more bytes each time, never beyond HS_MAX, and
 *     reports a whole message only at its kind's fixed size;
 *   - refusal_line's line is NUL-terminated printable text;
 *   - spake2_finish refuses no pB that share_valid accepted, but w*N;
 *   - no crash, no leak, no sanitizer error.
 */
#define SECCHAT_NO_MAIN
#include "../secchat.c"
#include "common.h"

#include <openssl/err.h>

static struct pake pk;		/* the connector's, the vector's w */
static BIGNUM *x;		/* the vector's x */

static void
check_line(const char *line, size_t cap)
{
	size_t i;

	for (i = 0; i < cap && line[i] != '\0'; i++)
		if (line[i] < 0x20 || line[i] > 0x7e)
			fuzz_fail("msg1_fuzz: refusal_line byte %zu is "
			    "0x%02x", i, (unsigned char)line[i]);
	if (i == cap)
		fuzz_fail("msg1_fuzz: refusal_line left no NUL");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	pake_init(&pk, vec_w);
	x = scalar_from_bytes(vec_x, sizeof(vec_x));
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct greeting g;
	struct hello h;
	struct handshake_keys hk;
	char line[NOTE_MAX];
	uint32_t iterations;
	int code;

	if (hs_whole("msg1_fuzz", data, size, KIND_BIT(KIND_GREETING) |
	    KIND_BIT(KIND_REFUSAL)) == -1)
		return 0;
	if (data[HDR_LEN - 1] == KIND_REFUSAL) {
		for (code = 0; code <= 1; code++) {
			memset(line, 0xff, sizeof(line));
			(void)refusal_line(line, sizeof(line), "bob.example",
			    data, code, REFUSE_GREETING);
			check_line(line, sizeof(line));
		}
		return 0;
	}
	memcpy(&g, data, sizeof(g));
	if (g.flags & FLAG_NO_NEW)
		return 0;
	iterations = get_u32(g.iterations);
	if (iterations < MIN_ITER || iterations > MAX_ITER)
		return 0;
	if (!share_valid(g.pB))
		return 0;
	/* connector_hello, without the network. */
	memset(&h, 0, sizeof(h));
	memset(&hk, 0, sizeof(hk));
	hs_header(h.hdr, KIND_HELLO);
	spake2_share(&pk, 1, x, h.pA);
	if (spake2_finish(&pk, 1, x, &g, &h, &hk) == -1) {
		uint8_t wN[POINT_LEN];

		encode_point(pk.group, pk.wN, wN, pk.bn);
		if (memcmp(wN, g.pB, POINT_LEN) != 0)
			fuzz_fail("msg1_fuzz: spake2_finish refused a pB "
			    "that share_valid accepted");
	}
	OPENSSL_cleanse(&hk, sizeof(hk));
	ERR_clear_error();
	return 0;
}
