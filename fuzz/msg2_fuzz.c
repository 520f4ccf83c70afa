/*
 * libFuzzer target: the listener's side of the secchat/3 handshake.
 *
 * The listener is the secchat/3 session vector's (tests/data/
 * secchat3-session.txt): its greeting1, with the vector's w and y.  The
 * input is what a (possibly hostile) connector sent: it is read as
 * read_message reads it, through hs_parse, taking HELLO or RESUME.  A
 * whole HELLO goes to listener_answer, which checks pA and cA and writes
 * its CONFIRM or REFUSAL to one end of a socketpair; the other end is
 * drained and closed.
 *
 * Invariants (abort()):
 *   - hs_parse asks for more bytes each time, never beyond HS_MAX, and
 *     reports a whole message only at its kind's fixed size;
 *   - listener_answer returns HS_OK, HS_MALFORMED or HS_WRONG (never
 *     HS_IO: the socket is there);
 *   - HS_MALFORMED exactly when share_plausible refuses pA;
 *   - HS_OK only for the vector's own HELLO (any other would be a forged
 *     cA);
 *   - no crash, no leak, no sanitizer error.
 */
#define SECCHAT_NO_MAIN
#include "../secchat.c"
#include "common.h"

#include <openssl/err.h>

static struct pake pk;		/* the listener's, the vector's w */
static struct greeted in;	/* y and g fixed; h per input */

/* listener_answer on h, over a socketpair. */
static enum hs_result
answer(const uint8_t *h)
{
	struct keyset ks;
	uint8_t buf[256];
	enum hs_result res;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	memcpy(&in.h, h, sizeof(in.h));
	memset(&ks, 0, sizeof(ks));
	res = listener_answer(sv[0], &pk, &in, now_ms() + 5000, &ks);
	close(sv[0]);
	while (read(sv[1], buf, sizeof(buf)) > 0)
		;
	close(sv[1]);
	OPENSSL_cleanse(&ks, sizeof(ks));
	return res;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	pake_init(&pk, vec_w);
	in.y = scalar_from_bytes(vec_y, sizeof(vec_y));
	memcpy(&in.g, vec_greeting1, sizeof(in.g));
	if (answer(vec_hello) != HS_OK)
		fuzz_fail("msg2_fuzz: listener_answer refuses the vector's "
		    "HELLO; the harness is wrong");
	ERR_clear_error();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum hs_result res;
	int plausible;

	if (hs_whole("msg2_fuzz", data, size, KIND_BIT(KIND_HELLO) |
	    KIND_BIT(KIND_RESUME)) == -1 || data[HDR_LEN - 1] != KIND_HELLO)
		return 0;
	res = answer(data);
	if (res != HS_OK && res != HS_MALFORMED && res != HS_WRONG)
		fuzz_fail("msg2_fuzz: listener_answer returned %d", res);
	plausible = share_plausible(&pk,
	    ((const struct hello *)data)->pA);
	if ((res == HS_MALFORMED) != !plausible)
		fuzz_fail("msg2_fuzz: listener_answer says %s for a pA "
		    "share_plausible %s", res == HS_MALFORMED ? "malformed" :
		    "well-formed", plausible ? "accepts" : "refuses");
	if (res == HS_OK && memcmp(data, vec_hello, sizeof(vec_hello)) != 0)
		fuzz_fail("msg2_fuzz: listener_answer accepted a HELLO that "
		    "is not the vector's");
	ERR_clear_error();
	return 0;
}
