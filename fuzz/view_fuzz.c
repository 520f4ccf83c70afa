/*
 * libFuzzer target: the peer's text on a terminal (view_render,
 * view_flush) and typed keys in the line editor (ed_key).
 *
 * The first input byte c cuts the rest into chunks of c + 1 bytes, as
 * records would; each chunk goes through view_render, as a record whose
 * ciphertext (the chunk itself) is shown where its text ends, then
 * view_flush and view_end_row.
 * The same bytes, as keys, go through ed_key (the editor draws nothing:
 * its terminal is /dev/null).
 *
 * The terminal's width is 8 to 135 columns, from the second input byte.
 *
 * Invariants, checked with abort():
 *   every input byte is consumed;
 *   the rendered text is valid UTF-8 whose only controls are \n, \r
 *   before \n, \t, and ESC as part of the view's own \033[7m, \033[27m
 *   (markers), \033[2m and \033[22m (continuation rows, annotations), and
 *   holds no character char_width refuses;
 *   no row starts with the peer's text: after a newline comes a label
 *   (a digit of its time), a continuation row's indent or marker, or the
 *   end;
 *   the editor's line is valid UTF-8 of printable characters and tabs, at
 *   most EDIT_MAX bytes, with the cursor on a character boundary within it.
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
		if (i > 0 && p[i - 1] == '\n' && p[i] != 0x1b && p[i] != ' ' &&
		    (p[i] < '0' || p[i] > '9'))
			fuzz_fail("a row starts with text at %zu", i);
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
			fuzz_fail("CR not before LF at %zu", i);
		if (p[i] == 0x1b) {
			if (n - i >= 4 && (memcmp(p + i, "\033[7m", 4) == 0 ||
			    memcmp(p + i, "\033[2m", 4) == 0))
				i += 4;
			else if (n - i >= 5 && (memcmp(p + i, "\033[27m", 5) == 0 ||
			    memcmp(p + i, "\033[22m", 5) == 0))
				i += 5;
			else
				fuzz_fail("ESC not of a marker at %zu", i);
			continue;
		}
		if ((len = utf8_decode(p + i, n - i, &cp)) <= 0)
			fuzz_fail("invalid UTF-8 shown at %zu", i);
		if (cp != '\n' && cp != '\r' && cp != '\t' && char_width(cp) < 0)
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
		    (cp != '\t' && char_width(cp) < 0))
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

	if (size < 2)
		return 0;
	chunk = (size_t)data[0] + 1;
	memset(&v, 0, sizeof(v));
	v.cols = 8 + data[1] % 128;
	data += 2, size -= 2;
	v.labels = 1;
	v.line_start = 1;
	strcpy(v.peer, "bob");
	v.label_w = 11;
	for (off = 0; off < size; off += chunk) {
		n = size - off < chunk ? size - off : chunk;
		/* Each chunk as a record, its ciphertext shown at its end. */
		view_annotate(&v, data + off, n, n);
		for (i = 0; i < n; ) {
			size_t got = view_render(&v, data + off + i, n - i,
			    out, sizeof(out), &used);

			check_shown(out, used);
			if (got == 0 && n - i > 0)
				fuzz_fail("view_render took nothing");
			i += got;
		}
	}
	used = view_flush(&v, out);
	check_shown(out, used + view_end_row(&v, out + used));

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
