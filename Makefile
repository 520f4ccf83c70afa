# secchat: see README.  GNU make.
PREFIX	?= /usr/local
BINDIR	 = $(PREFIX)/bin
MANDIR	 = $(PREFIX)/share/man/man1
COMPDIR	 = $(PREFIX)/share/bash-completion/completions
CC	?= cc
CFLAGS	?= -O2
WARN	 = -std=c11 -Wall -Wextra
# Hardening, on by default and before the user's CFLAGS/LDFLAGS so that
# these can still override it; flags the compiler lacks are left out.
cc_has	 = $(shell $(CC) -Werror $(1) -E -x c /dev/null >/dev/null 2>&1 && \
	   echo $(1))
HARDEN	:= -fPIE -fstack-protector-strong -U_FORTIFY_SOURCE \
	   -D_FORTIFY_SOURCE=2 $(call cc_has,-fstack-clash-protection) \
	   $(call cc_has,-fcf-protection)
HARDEN_LD = -pie -Wl,-z,relro,-z,now,-z,noexecstack
# libcrypto, and utf8proc for the chat editor's grapheme clusters.
CRYPTO_CFLAGS := $(shell pkg-config --cflags libcrypto libutf8proc 2>/dev/null)
CRYPTO_LIBS   := $(shell pkg-config --libs libcrypto libutf8proc 2>/dev/null)
SAN	 = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	   -fno-sanitize-recover=undefined
FUZZ_SECONDS ?= 60
NEEDS	 = secchat needs pkg-config, libssl-dev (OpenSSL 3 libcrypto) and \
	   libutf8proc-dev: apt-get install pkg-config libssl-dev libutf8proc-dev

all: secchat

libcrypto-check:
	@pkg-config --exists 'libcrypto >= 3.0' libutf8proc 2>/dev/null || \
	    { echo "$(NEEDS)" >&2; exit 1; }

secchat: secchat.c | libcrypto-check
	$(CC) $(WARN) $(HARDEN) $(CFLAGS) $(CRYPTO_CFLAGS) -o $@ secchat.c \
	    $(HARDEN_LD) $(LDFLAGS) $(CRYPTO_LIBS)

# The same program with test hooks (SECCHAT_TEST_HOOK), for test.sh only.
tests/secchat-hooks: secchat.c | libcrypto-check
	$(CC) $(WARN) $(HARDEN) $(CFLAGS) $(CRYPTO_CFLAGS) \
	    -DSECCHAT_TEST_HOOKS -o $@ secchat.c $(HARDEN_LD) $(LDFLAGS) \
	    $(CRYPTO_LIBS)

tests/kat: tests/kat.c secchat.c | libcrypto-check
	$(CC) $(WARN) -Wno-unused-function $(CFLAGS) $(CRYPTO_CFLAGS) -o $@ \
	    tests/kat.c $(LDFLAGS) $(CRYPTO_LIBS)

# connect(2) from $$SECCHAT_TEST_SOURCE, for the crowd tests; never installed.
tests/srcaddr.so: tests/srcaddr.c
	$(CC) $(WARN) $(CFLAGS) -shared -fPIC -o $@ tests/srcaddr.c -ldl

# A test build that leaks each traffic secret to $$SECCHAT_TEST_LEAK, for
# the compromise test; never installed.
tests/secchat-leak: secchat.c | libcrypto-check
	$(CC) $(WARN) -DSECCHAT_TEST_LEAK $(CFLAGS) $(CRYPTO_CFLAGS) -o $@ \
	    secchat.c $(LDFLAGS) $(CRYPTO_LIBS)

# A debugging build, with the test hooks: only a -DSECCHAT_DEBUG build
# heeds SECCHAT_NO_SANDBOX (valgrind cannot run under the filters).
tests/secchat-debug: secchat.c | libcrypto-check
	$(CC) $(WARN) -g -O1 -DSECCHAT_DEBUG -DSECCHAT_TEST_HOOKS \
	    $(CRYPTO_CFLAGS) -o $@ secchat.c $(CRYPTO_LIBS)

asan/secchat: secchat.c | libcrypto-check
	@mkdir -p asan
	$(CC) $(WARN) $(SAN) -DSECCHAT_DEBUG $(CRYPTO_CFLAGS) -o $@ secchat.c \
	    $(CRYPTO_LIBS)

tests/kat-asan: tests/kat.c secchat.c | libcrypto-check
	$(CC) $(WARN) -Wno-unused-function $(SAN) $(CRYPTO_CFLAGS) -o $@ \
	    tests/kat.c $(CRYPTO_LIBS)

# The whole suite, then again on a sanitizer build.  That build has no
# sandbox (LeakSanitizer's exit-time scan clones a tracer thread, ptraces
# the process and reads /proc/self/maps, all of which the sandbox kills);
# the sandbox tests run on tests/secchat-hooks either way.  demo, check,
# check-asan and fuzz first install what is missing (deps.sh: apt-get as
# root or through sudo, else the line to run).
check:
	@./deps.sh test
	@$(MAKE) --no-print-directory secchat tests/kat tests/secchat-hooks \
	    tests/secchat-leak tests/secchat-debug tests/srcaddr.so
	./test.sh

# The full-length runs, minutes of wall time at the defaults
# (tests/suites/soak.sh); make check has their scaled twins.
soak:
	@./deps.sh test
	@$(MAKE) --no-print-directory secchat tests/secchat-hooks
	./test.sh soak

check-asan:
	@./deps.sh test
	@$(MAKE) --no-print-directory secchat tests/secchat-hooks asan/secchat \
	    tests/kat-asan \
	    tests/secchat-leak tests/secchat-debug tests/srcaddr.so
	SECCHAT=./asan/secchat KAT=tests/kat-asan VALGRIND=none \
	    RSS_LIMIT_KB=1048576 ./test.sh

fuzz:
	@./deps.sh fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run.sh

# Deep fuzzing, not for CI: each target until FUZZ_LONG_RUNS executions or
# an hour, whichever comes first (the three run at once).
FUZZ_LONG_RUNS ?= 10000000
fuzz-long:
	FUZZ_SECONDS=3600 FUZZ_FLAGS="-runs=$(FUZZ_LONG_RUNS) $(FUZZ_FLAGS)" \
	    ./fuzz/run.sh

bench: secchat
	./bench/bench.sh

demo:
	@./deps.sh build
	@$(MAKE) --no-print-directory secchat
	./examples/demo.sh

# The Debian package, built by dpkg-buildpackage -b in a copy of the tree
# under dist/build, so that the files it writes beside the tree (the .deb
# files, .buildinfo, .changes) land in dist/, not in the parent directory.
deb:
	@./deps.sh deb
	rm -rf dist
	mkdir -p dist/build/secchat
	tar -c --exclude=./.git --exclude=./dist . | tar -x -C dist/build/secchat
	cd dist/build/secchat && dpkg-buildpackage -b -us -uc
	mv dist/build/*.deb dist/build/*.buildinfo dist/build/*.changes dist/
	rm -rf dist/build
	@echo "secchat: built $$(ls dist/secchat_*.deb)"

clean:
	rm -f secchat asan/secchat tests/kat tests/kat-asan tests/secchat-hooks \
	    tests/secchat-leak tests/secchat-debug tests/srcaddr.so fuzz/*_fuzz
	rm -rf dist

install: secchat
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(COMPDIR)
	install -m 755 secchat $(DESTDIR)$(BINDIR)/secchat
	install -m 644 secchat.1 $(DESTDIR)$(MANDIR)/secchat.1
	install -m 644 completion/secchat.bash $(DESTDIR)$(COMPDIR)/secchat

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/secchat $(DESTDIR)$(MANDIR)/secchat.1 \
	    $(DESTDIR)$(COMPDIR)/secchat

.PHONY: all libcrypto-check check soak check-asan fuzz fuzz-long bench demo deb \
	clean install uninstall
