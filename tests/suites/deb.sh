# shellcheck shell=bash
# The Debian package and the bash completion (a suite of test.sh):
# they run from the top of the tree and use its T ($T/w, a fresh
# scratch directory per test), SECCHAT, expect and has_line.  Each returns
# non-zero on failure after saying why.  deps.sh test installs what they
# need (dpkg-dev, debhelper, lintian, bash-completion).

t_deb() {	# make deb: lintian finds nothing, the files, the binary runs
	local deb changes ver f rc
	: > "$T/w/stamp"
	# Not the make flags of a make check around us (jobserver, -s, ...).
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s deb > "$T/w/deb.log" 2>&1 ||
	    { echo "make deb failed:"; tail -n 20 "$T/w/deb.log"; return 1; }
	deb=$(ls dist/secchat_*.deb 2>/dev/null)
	changes=$(ls dist/secchat_*.changes 2>/dev/null)
	[ -f "$deb" ] && [ -f "$changes" ] ||
	    { echo "not one .deb and one .changes in dist:"; ls -A dist; return 1; }
	# dpkg-buildpackage writes beside the tree it builds: not beside ours.
	# (Only its names: a tree cloned into /tmp has the suites' own
	# temporary directories, secchat-test.*, beside it.)
	f=$(find .. -maxdepth 1 \( -name 'secchat_*' -o -name 'secchat-dbgsym_*' \) \
	    -newer "$T/w/stamp")
	expect "files left beside the tree" "$f" "" &&
	    expect "build leftovers" "$(find dist/build debian \
		-newer "$T/w/stamp" 2>/dev/null)" "" || return 1

	# The .changes brings the .deb, the -dbgsym .deb and the .buildinfo.
	lintian -i --fail-on error,warning "$changes" > "$T/w/lintian.out" \
	    2> "$T/w/lintian.err"
	rc=$?
	expect "lintian status" "$rc" 0 &&
	    expect "lintian errors and warnings" \
		"$(grep -c '^[EW]: ' "$T/w/lintian.out")" 0 ||
	    { cat "$T/w/lintian.out" "$T/w/lintian.err"; return 1; }

	dpkg-deb -c "$deb" > "$T/w/contents" || return 1
	awk '{ print $1, $6 }' "$T/w/contents" > "$T/w/files"
	has_line "$T/w/files" "-rwxr-xr-x ./usr/bin/secchat" &&
	    has_line "$T/w/files" "-rw-r--r-- ./usr/share/man/man1/secchat.1.gz" &&
	    has_line "$T/w/files" "-rw-r--r-- ./usr/share/bash-completion/completions/secchat" &&
	    has_line "$T/w/files" "-rw-r--r-- ./usr/share/doc/secchat/copyright" ||
	    { cat "$T/w/contents"; return 1; }

	# The packaged program, run once from the unpacked package.
	dpkg-deb -x "$deb" "$T/w/root" || return 1
	"$T/w/root/usr/bin/secchat" -h > "$T/w/h.out" 2> "$T/w/h.err"
	expect "packaged secchat -h status" "$?" 0 || return 1
	case $(head -n 1 "$T/w/h.out") in
	"usage: secchat "*) ;;
	*) echo "packaged secchat -h, first line: $(head -n 1 "$T/w/h.out")"
	   return 1 ;;
	esac
	cmp -s "$T/w/root/usr/share/bash-completion/completions/secchat" \
	    completion/secchat.bash ||
	    { echo "packaged completion differs from completion/secchat.bash"; return 1; }
	# The package's version (debian/changelog) is the program's.
	ver=$(dpkg-deb -f "$deb" Version)
	expect "secchat -V of package $ver" \
	    "$("$T/w/root/usr/bin/secchat" -V)" "secchat ${ver%-*}" || return 1
	# Debian's own check of the hardening, where devscripts is installed
	# (Debian 12's crt files lack the CET notes: no control flow check).
	if command -v hardening-check > /dev/null; then
		hardening-check --nocfprotection "$T/w/root/usr/bin/secchat" ||
		    return 1
	fi
	return 0
}

# comp_setup MODE: $T/w/comp.bash, a bash script that loads the completion
# (MODE bash-completion: through bash-completion's loader, from a staged
# make install; plain: by sourcing completion/secchat.bash without
# bash-completion) and then, for "comp NAME WORD...", completes the last
# WORD of the command line "WORD..." into $T/w/NAME, one candidate a line.
comp_setup() {
	cat > "$T/w/comp.bash" << EOF
set -u
W=$T/w
unset COMP_KNOWN_HOSTS_WITH_HOSTFILE HOSTFILE
if [ "$1" = bash-completion ]; then
	. /usr/share/bash-completion/bash_completion || exit 1
	# Found by name, as for a typed "secchat": the staged install's copy.
	XDG_DATA_DIRS=\$W/stage/usr/share __load_completion secchat || exit 1
else
	. completion/secchat.bash || exit 1
fi
complete -p secchat > "\$W/complete-p" || exit 1
comp() {
	local name=\$1
	shift
	COMP_WORDS=("\$@")
	COMP_CWORD=\$((\$# - 1))
	COMP_LINE="\$*"
	COMP_POINT=\${#COMP_LINE}
	COMPREPLY=()
	_secchat secchat "\${COMP_WORDS[COMP_CWORD]}" \\
	    "\${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "\${COMPREPLY[@]}" | LC_ALL=C sort -u | sed '/^\$/d' \\
	    > "\$W/\$name"
}
EOF
}

words() {	# words NAME: the lines of $T/w/NAME on one line
	tr '\n' ' ' < "$T/w/$1" | sed 's/ $//'
}

# comp_check MODE: the completions in that mode.
comp_check() {
	local mode=$1
	comp_setup "$mode"
	: > "$T/w/passfile" && : > "$T/w/passwords.txt" && : > "$T/w/other"
	bash --norc --noprofile -c ". '$T/w/comp.bash' &&
	    comp opts secchat - &&
	    comp lopts secchat -l -q - &&
	    comp pfile secchat -l -p '$T/w/pass' &&
	    comp qpfile secchat -qp '$T/w/pass' &&
	    comp cmds secchat -e '' &&
	    comp ca secchat -l -k -e ca &&
	    comp quoted secchat -e \"'ca\" &&
	    comp host secchat -b localh &&
	    comp nhost secchat -n localh localh &&
	    comp port secchat localhost '' &&
	    comp iter secchat -i '' &&
	    comp after secchat -l 8080 -" > "$T/w/bash.out" 2>&1 ||
	    { echo "$mode: the completion did not load or run:"
	      cat "$T/w/bash.out"; return 1; }
	[ ! -s "$T/w/bash.out" ] ||
	    { echo "$mode: output from the completion:"; cat "$T/w/bash.out"
	      return 1; }
	has_line "$T/w/complete-p" "complete -F _secchat secchat" || return 1

	# "secchat -": exactly secchat -h's options, short and long.
	{ $SECCHAT -h | sed -n 's/^  \(-[0-9A-Za-z]\) .*/\1/p'
	  $SECCHAT -h | grep -o -- '--[a-z][a-z-]*'; } | LC_ALL=C sort -u \
	    > "$T/w/help-opts"
	expect "$mode: secchat - (vs secchat -h)" "$(words opts)" \
	    "$(words help-opts)" &&
	    has_line "$T/w/opts" "-l" && has_line "$T/w/opts" "-p" &&
	    expect "$mode: options after others" "$(words lopts)" \
		"$(words opts)" &&
	    expect "$mode: options after the port" "$(words after)" \
		"$(words opts)" || return 1

	# -p: files; -e: commands; the first argument: a host; then nothing.
	expect "$mode: -p file" "$(words pfile)" \
	    "$T/w/passfile $T/w/passwords.txt" &&
	    expect "$mode: -qp file" "$(words qpfile)" "$(words pfile)" &&
	    has_line "$T/w/cmds" "cat" && has_line "$T/w/cmds" "sh" &&
	    has_line "$T/w/ca" "cat" && has_line "$T/w/quoted" "'cat" &&
	    expect "$mode: -e ca, all commands" \
		"$(grep -vc '^ca' "$T/w/ca")" 0 &&
	    has_line "$T/w/host" "localhost" &&
	    has_line "$T/w/nhost" "localhost" &&
	    expect "$mode: port" "$(cat "$T/w/port")" "" &&
	    expect "$mode: -i's number" "$(cat "$T/w/iter")" "" || return 1
	[ "$(wc -l < "$T/w/cmds")" -ge 20 ] ||
	    { echo "$mode: few commands for -e:"; cat "$T/w/cmds"; return 1; }
}

t_completion() {	# bash completion: options, -p's file, -e's command, host
	local stage=$T/w/stage
	make -s install DESTDIR="$stage" PREFIX=/usr > /dev/null || return 1
	cmp -s completion/secchat.bash \
	    "$stage/usr/share/bash-completion/completions/secchat" ||
	    { echo "make install: no completion"; find "$stage"; return 1; }
	if [ -f /usr/share/bash-completion/bash_completion ]; then
		comp_check bash-completion || return 1
	else
		echo "no bash-completion: only the plain setup"
	fi
	comp_check plain || return 1
	make -s uninstall DESTDIR="$stage" PREFIX=/usr > /dev/null &&
	    [ ! -e "$stage/usr/share/bash-completion/completions/secchat" ] ||
	    { echo "make uninstall left the completion"; return 1; }
}

run "make deb: lintian clean, dpkg-deb -c, the packaged secchat runs" t_deb
run "bash completion: options, -p's file, -e's command, the host" t_completion
