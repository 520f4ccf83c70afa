# shellcheck shell=bash
# The manual, the build and installation.

t_manpage_lint() {
	local out
	out=$(mandoc -Tlint -Wwarning secchat.1 2>&1)
	[ -z "$out" ] || { echo "$out"; return 1; }
}
run "mandoc -Tlint finds nothing in secchat.1" t_manpage_lint

t_manpage_options() {	# the man page and the synopsis: exactly -h's options
	local usage man synopsis
	usage=$($SECCHAT -h | sed -n 's/^  -\([0-9A-Za-z]\) .*/\1/p' | sort -u |
	    tr -d '\n')
	synopsis=$({ $SECCHAT -h | sed -n '/^ *-/q;p' | grep -o -- '-[0-9A-Za-z]*' |
	    tr -d '\n-'; } | fold -w1 | sort -u | tr -d '\n')
	man=$(sed -n 's/^\.It Fl \([0-9A-Za-z]\).*/\1/p' secchat.1 | sort -u |
	    tr -d '\n')
	expect "options (man vs -h)" "$man" "$usage" &&
	    expect "options (synopsis vs -h)" "$synopsis" "$usage" &&
	    [ ${#usage} -ge 14 ]
}
run "secchat.1 documents exactly the options of -h" t_manpage_options

t_install() {
	local stage=$T/w/stage
	make -s install DESTDIR="$stage" PREFIX=/usr/local > /dev/null || return 1
	[ -x "$stage/usr/local/bin/secchat" ] &&
	    [ -f "$stage/usr/local/share/man/man1/secchat.1" ] &&
	    cmp -s secchat.1 "$stage/usr/local/share/man/man1/secchat.1" ||
	    { echo "staged layout wrong"; find "$stage"; return 1; }
	make -s uninstall DESTDIR="$stage" PREFIX=/usr/local > /dev/null &&
	    [ ! -e "$stage/usr/local/bin/secchat" ] &&
	    [ ! -e "$stage/usr/local/share/man/man1/secchat.1" ]
}
run "make install and uninstall, staged with DESTDIR" t_install

t_make_names_package() {	# no pkg-config/libssl-dev: make says what to install
	mkdir "$T/w/bin"
	local t
	for t in make sh cc; do ln -s "$(command -v $t)" "$T/w/bin/$t"; done
	PATH=$T/w/bin make -B secchat > "$T/w/make.out" 2>&1
	expect "make status" "$?" 2 &&
	    grep -q 'apt-get install pkg-config libssl-dev' "$T/w/make.out" &&
	    [ -x secchat ]
}
run "without libssl-dev, make names the package" t_make_names_package

t_deps() {	# tmux missing: installed as root, else the apt-get line
	local b=$T/w/bin t
	mkdir "$b"
	for t in sh cc pkg-config python3 valgrind mandoc nc ps cut; do
		ln -s "$(command -v $t)" "$b/$t"
	done
	printf '#!/bin/sh\necho "$@" >> %s\n' "$T/w/apt" > "$b/apt-get"
	printf '#!/bin/sh\necho 1000\n' > "$b/id"
	chmod +x "$b/apt-get" "$b/id"
	PATH=$b ./deps.sh test 2> "$T/w/user.err"
	expect "as a user" "$?" 1 &&
	    has_line "$T/w/user.err" "secchat: missing packages: tmux; as root, run: apt-get install -y --no-install-recommends tmux" &&
	    [ ! -e "$T/w/apt" ] || return 1
	printf '#!/bin/sh\necho 0\n' > "$b/id"
	PATH=$b ./deps.sh test 2> "$T/w/root.err"
	expect "as root" "$?" 0 &&
	    has_line "$T/w/root.err" "secchat: installing tmux (apt-get install -y --no-install-recommends tmux)" &&
	    expect "apt-get calls" "$(cat "$T/w/apt")" "update -qq
install -y --no-install-recommends tmux" || return 1
	PATH=$b:$PATH ./deps.sh test 2> "$T/w/none.err"
	expect "nothing missing" "$?" 0 && [ ! -s "$T/w/none.err" ]
}
run "make check on a fresh machine: deps.sh installs or names what is missing" t_deps

t_demo() {	# make demo: exits 0, shows both sides, leaves nothing behind
	# A private TMPDIR: other suites' demos may run meanwhile.
	mkdir "$T/w/tmp"
	TMPDIR=$T/w/tmp ./examples/demo.sh > "$T/w/demo.out" 2>&1 ||
	    { cat "$T/w/demo.out"; return 1; }
	expect "demo dirs left" "$(ls -A "$T/w/tmp" | wc -l)" 0 &&
	    grep -q '^== both sides exited 0; every line arrived intact.$' "$T/w/demo.out" &&
	    grep -q '^secchat: rekeyed sending key (epoch 1)$' "$T/w/demo.out" &&
	    grep -q '^< 00' "$T/w/demo.out" && grep -qx 'Bye.' "$T/w/demo.out"
}
run "make demo" t_demo

t_hardened() {	# the default build: PIE, full RELRO, no executable stack
	local bin=./secchat	# the asan build is not hardened: check the real one
	expect "ELF type" "$(readelf -h "$bin" | sed -n 's/^ *Type: *\([A-Z]*\).*/\1/p')" DYN &&
	    readelf -d "$bin" | grep -Eq '\(FLAGS\) +BIND_NOW' &&
	    readelf -d "$bin" | grep -Eq '\(FLAGS_1\) +Flags: NOW PIE' &&
	    readelf -lW "$bin" | grep -q ' GNU_RELRO ' &&
	    expect "stack flags" "$(readelf -lW "$bin" | awk '$1 == "GNU_STACK" { print $7 }')" RW &&
	    readelf --dyn-syms -W "$bin" | grep -q ' __stack_chk_fail@' &&
	    readelf --dyn-syms -W "$bin" | grep -q ' __vsnprintf_chk@'
}
run "hardened build: PIE, BIND_NOW, RELRO, stack protector, FORTIFY" t_hardened

# tests/layers.sh checks secchat.c against the map at its top: sections
# call only downward, no forward declaration the map does not list, no
# function over 60 lines (issue 16).
t_layers() { sh tests/layers.sh secchat.c; }
run "secchat.c: layers, forward declarations and function lengths as the map says" t_layers
