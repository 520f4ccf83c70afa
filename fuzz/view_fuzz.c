/*
 * libFuzzer target: the peer's text on a terminal (view_render,
 * view_flush) and typed keys in the line editor (ed_key).
 *
 * The first input byte c cuts the rest into chunks of c + 1 bytes, as
 * records would; each chunk goes through view_render, then view_flush.
 * The same bytes, as keys, go through ed_key (the editor draws nothing:
 * its terminal is /dev/null).
 *
 * Invariants, checked with abort():
 *   every input byte is consumed;
 *   the rendered text is valid UTF-8 whose only controls are \n, \t and
 *   ESC as part of the markers' own \033[7m and \033[27m, and holds no
 *   character char_width refuses;
 *   the editor's line is valid UTF-8 of printable characters, at most
 *   EDIT_MAX bytes, with the cursor on a character boundary within it.
 */

#define SECCHAT_NO_MAIN
#include "../secchat.c"
#include "common.h"

static void
check_shown(const char *out, size_t n)
{
	const uint8_t *p = (const uint8_t *)out;
	uint32_t cp;
	size_t i = 0;
	int len;

	while (i < n) {
		if (p[i] == 0x1b) {
			if (n - i >= 4 && memcmp(p + i, "\033[7m", 4) == 0)
				i += 4;
			else if (n - i >= 5 && memcmp(p + i, "\033[27m", 5) == 0)
				i += 5;
			else
				fuzz_fail("ESC not of a marker at %zu", i);
			continue;
		}
		if ((len = utf8_decode(p + i, n - i, &cp)) <= 0)
			fuzz_fail("invalid UTF-8 shown at %zu", i);
		if (cp != '\n' && cp != '\t' && char_width(cp) < 0)
			fuzz_fail("U+%04X shown at %zu", (unsigned)cp, i);
		i += len;
	}
}

static void
check_line(const struct editor *e)
{
	uint32_t cp;
	size_t i = 0;
	int len, at_cur = e->cur == 0;

	if (e->len > EDIT_MAX || e->cur > e->len)
		fuzz_fail("line %zu bytes, cursor %zu", e->len, e->cur);
	while (i < e->len) {
		if ((len = utf8_decode(e->line + i, e->len - i, &cp)) <= 0 ||
		    char_width(cp) < 0)
			fuzz_fail("bad character in the line at %zu", i);
		i += len;
		at_cur |= i == e->cur;
	}
	if (!at_cur)
		fuzz_fail("cursor %zu inside a character", e->cur);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
		fuzz_fail("no C.UTF-8 locale");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[16384];
	struct view v;
	struct editor e;
	struct termios t;
	size_t chunk, off, used, n, i;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] + 1;
	data++, size--;
	memset(&v, 0, sizeof(v));
	v.labels = 1;
	v.line_start = 1;
	strcpy(v.peer, "bob");
	for (off = 0; off < size; off += chunk) {
		n = size - off < chunk ? size - off : chunk;
		for (i = 0; i < n; ) {
			size_t got = view_render(&v, data + off + i, n - i,
			    out, sizeof(out), &used);

			check_shown(out, used);
			if (got == 0 && n - i > 0)
				fuzz_fail("view_render took nothing");
			i += got;
		}
	}
	check_shown(out, view_flush(&v, out));

	memset(&t, 0, sizeof(t));
	ed_init(&e, -1, &t);
	for (i = 0; i < size; i++) {
		if (ed_key(&e, data[i]) == ED_LINE)
			ed_done(&e);
		check_line(&e);
	}
	ed_free(&e);
	return 0;
}
