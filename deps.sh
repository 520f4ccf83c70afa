#!/bin/sh
# deps.sh build|test|fuzz|deb: make sure the Debian/Ubuntu packages that
# make demo (build), make check (test), make fuzz (fuzz) or make deb (deb)
# need are there.
# What is missing is installed with apt-get, as root or through sudo, after
# one line saying what; without either, the exact apt-get line is printed
# and the status is 1.  Nothing missing: silent.
set -u

missing=

need() {	# need PACKAGE TEST...: PACKAGE is missing unless TEST succeeds
	pkg=$1
	shift
	case " $missing " in *" $pkg "*) return ;; esac
	"$@" > /dev/null 2>&1 || missing="$missing $pkg"
}

have() { command -v "$1"; }

build_deps() {
	need build-essential have cc
	need pkg-config have pkg-config
	need libssl-dev pkg-config --exists 'libcrypto >= 3.0'
	need libutf8proc-dev pkg-config --exists libutf8proc
}

# make deb: dpkg-buildpackage insists on the Build-Depends and on the
# build-essential package itself, not just a compiler.  Debian's tools are
# looked for by their fixed paths (t_deps runs with a PATH without them).
deb_deps() {
	build_deps
	need build-essential test -f /var/lib/dpkg/info/build-essential.list
	need dpkg-dev test -x /usr/bin/dpkg-buildpackage
	need debhelper test -x /usr/bin/dh
}

test_deps() {
	build_deps
	deb_deps	# t_deb: make deb, lintian
	need lintian test -x /usr/bin/lintian
	# t_completion
	need bash-completion test -f /usr/share/bash-completion/bash_completion
	need python3 have python3
	# tests/peer.py runs on Debian's python3, whatever PATH says.
	need python3-cryptography /usr/bin/python3 -c 'import cryptography'
	need tmux have tmux
	need valgrind have valgrind
	need mandoc have mandoc
	need netcat-openbsd have nc
	need procps have ps
}

# libFuzzer comes with clang's runtime, a package named after its version.
fuzz_deps() {
	build_deps
	need clang have clang
	if have clang > /dev/null; then
		v=$(clang -dumpversion | cut -d. -f1)
		need "libclang-rt-$v-dev" sh -c 'echo "int LLVMFuzzerTestOneInput(const char *p, long n) { return 0; }" |
		    clang -x c -fsanitize=fuzzer -o /dev/null -'
	fi
}

case ${1:-} in
build) build_deps ;;
test) test_deps ;;
fuzz) fuzz_deps ;;
deb) deb_deps ;;
*) echo "usage: deps.sh build|test|fuzz|deb" >&2; exit 2 ;;
esac
[ -z "$missing" ] && exit 0

missing=${missing# }
line="apt-get install -y --no-install-recommends $missing"
if [ "$(id -u)" = 0 ]; then
	sudo=
elif have sudo > /dev/null; then
	sudo="sudo "
else
	echo "secchat: missing packages: $missing; as root, run: $line" >&2
	exit 1
fi
if ! have apt-get > /dev/null; then
	echo "secchat: missing packages: $missing (Debian names); install them" >&2
	exit 1
fi
echo "secchat: installing $missing (${sudo}$line)" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet.
${sudo}apt-get update -qq > /dev/null &&
    ${sudo}$line > /dev/null || {
	echo "secchat: apt-get failed; run: ${sudo}$line" >&2
	exit 1
}
# clang's runtime is named after the clang just installed: look again.
case " $missing " in *" clang "*) exec "$0" "$1" ;; esac
