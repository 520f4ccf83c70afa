#!/bin/sh
# layers.sh [-c] FILE: check that secchat.c keeps the structure its map
# (the comment at its top) describes; print each offence as FILE:LINE: why,
# exit 1 if there is any.  -c prints the census instead (for closing
# notes): functions, median and longest length, forward declarations, and
# functions that mention struct session.
#
# The rules:
#   sections start with a header "/* §N Title" at column 0, numbered 1, 2,
#   ... in order, and the map lists each as " *   §N ...";
#   nothing between §1 and the section whose title names the engine
#   mentions struct session: the layers below the engine never see it;
#   a function calls functions of its own section and of the sections
#   that the map's last column names for it ("5,9,14", or "-");
#   a forward declaration (a static prototype at file scope) is one the
#   map's "Forward declarations (K):" paragraph names, and there are K;
#   a function is at most MAX lines, from its return type to its "}".
MAX=60
census=0
[ "${1:-}" = -c ] && { census=1; shift; }
[ $# -eq 1 ] || { echo "usage: layers.sh [-c] FILE" >&2; exit 2; }
awk -v max=$MAX -v census=$census -v file="$1" '
function offence(line, why) { if (census) return; printf "%s:%d: %s\n", file, line, why; bad++ }
# The map: every line before the first section header.
!sections && /^\/\* §[0-9]+ / { sections = 1 }
!sections {
	if (match($0, /^ \*  +§[0-9]+ /)) {
		n = substr($0, RSTART, RLENGTH); sub(/^ \*  +§/, "", n)
		mapped[n + 0] = 1
		k = split($NF, c, ",")
		for (i = 1; i <= k; i++)
			if (c[i] ~ /^[0-9]+$/)
				may[n + 0, c[i] + 0] = 1
	}
	if ($0 ~ /Forward declarations \([0-9]+\)/) {
		fwd_para = 1; s = $0; sub(/.*Forward declarations \(/, "", s)
		fwd_said = s + 0
	} else if (fwd_para && $0 ~ /^ \*\/?$/)
		fwd_para = 0
	if (fwd_para) fwd_text = fwd_text " " $0
}
/^\/\* §[0-9]+ / {
	n = $2; sub(/^§/, "", n); n += 0
	if (n != cur + 1)
		offence(NR, "section §" n " after §" cur)
	if (!(n in mapped))
		offence(NR, "section §" n " is not in the map")
	cur = n
	if (engine == 0 && tolower($0) ~ /engine/) engine = n
}
/^[A-Za-z_][A-Za-z0-9_]*\(/ {
	fname = $0; sub(/\(.*/, "", fname); fstart = NR - 1; mentions = 0
	if (sections) home[fname] = cur
}
# Calls: the name of a known function before "(", outside its own definition.
sections && !/^[A-Za-z_][A-Za-z0-9_]*\(/ {
	line = $0; sub(/\/\*.*/, "", line)
	while (match(line, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
		callee = substr(line, RSTART, RLENGTH)
		sub(/[ \t]*\($/, "", callee)
		line = substr(line, RSTART + RLENGTH)
		if ((callee in home) && home[callee] != cur &&
		    !((cur, home[callee]) in may))
			offence(NR, "§" cur " calls " callee " of §" \
			    home[callee] ", which the map does not give it")
	}
}
sections && engine == 0 && /struct session/ {
	offence(NR, "struct session below the engine: " $0)
}
/struct session/ { mentions = 1 }
# A file-scope prototype: "static ... name(...)...;" before any "{".
depth == 0 && /^static / && !/=/ { decl = $0; decl_line = NR; in_decl = 1 }
in_decl && decl_line != NR { decl = decl " " $0 }
in_decl && /[;{]/ {
	in_decl = 0
	if (decl ~ /\(/ && decl !~ /\{/ && decl ~ /;[ \t]*$/) {
		name = decl; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
		fwd++
		if (index(fwd_text, " " name ":") == 0 &&
		    index(fwd_text, " " name " ") == 0 &&
		    index(fwd_text, " " name ",") == 0)
			offence(decl_line, "forward declaration of " name \
			    " not named in the map")
	}
}
/^\{/ { depth = 1; body = fname; bstart = fstart }
/^\}/ && depth {
	depth = 0; len = NR - bstart + 1; nf++; lens[nf] = len
	if (len > longest) { longest = len; longest_name = body }
	if (len > max)
		offence(bstart, body " is " len " lines (at most " max ")")
	if (mentions) sessionfns++
}
END {
	if (engine == 0)
		offence(NR, "no section names the engine")
	if (fwd_said != fwd)
		offence(NR, "the map says " (fwd_said + 0) " forward declarations; " \
		    "there are " fwd)
	if (census) {
		# median: sort the lengths (insertion sort; a few hundred)
		for (i = 2; i <= nf; i++) {
			v = lens[i]
			for (j = i - 1; j >= 1 && lens[j] > v; j--)
				lens[j + 1] = lens[j]
			lens[j + 1] = v
		}
		printf "functions %d, median %d lines, longest %s %d, " \
		    "forward declarations %d, functions mentioning " \
		    "struct session %d\n", nf, lens[int((nf + 1) / 2)],
		    longest_name, longest, fwd, sessionfns
		exit 0
	}
	exit bad > 0
}' "$1"
