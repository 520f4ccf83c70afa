/*
 * libFuzzer target: a password file's or a typed line's bytes made a
 * password (password_parse, code_digits, chomp), as a password and as a
 * -g code.
 *
 * The input, at most MAX_PASSFILE bytes as read_passfile allows, is
 * copied into a buffer of exactly its size, so that ASan sees any write
 * past it.  Invariants, checked with abort():
 *   PW_OK: 0 < length <= input length; a password is the input less one
 *   trailing "\n" or "\r\n"; a code is CODE_DIGITS digits, the input's
 *   digits in order; the bytes after it are wiped;
 *   otherwise: length 0 and every byte wiped.
 */

#define SECCHAT_NO_MAIN
#include "../secchat.c"
#include "common.h"

static void
check_wiped(const char *p, size_t from, size_t to)
{
	for (; from < to; from++)
		if (p[from] != 0)
			fuzz_fail("byte %zu not wiped", from);
}

static void
check_one(const uint8_t *data, size_t size, int code)
{
	char *pass = malloc(size ? size : 1);
	size_t len = size, i, n;
	enum pw_result r;

	if (pass == NULL)
		abort();
	memcpy(pass, data, size);
	r = password_parse(pass, &len, code);
	if (r != PW_OK) {
		if (len != 0)
			fuzz_fail("failure with length %zu", len);
		check_wiped(pass, 0, size);
	} else if (len == 0 || len > size) {
		fuzz_fail("length %zu of %zu", len, size);
	} else if (!code) {
		if (len != chomp((const char *)data, size) ||
		    memcmp(pass, data, len) != 0)
			fuzz_fail("password is not the input less its newline");
	} else {
		if (len != CODE_DIGITS)
			fuzz_fail("code of %zu digits", len);
		for (i = 0, n = 0; i < size && n < len; i++)
			if (data[i] >= '0' && data[i] <= '9' &&
			    pass[n++] != (char)data[i])
				fuzz_fail("digit %zu is not the input's", n - 1);
	}
	if (r == PW_OK)
		check_wiped(pass, len, size);
	free(pass);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_PASSFILE)
		return 0;
	check_one(data, size, 0);
	check_one(data, size, 1);
	return 0;
}
