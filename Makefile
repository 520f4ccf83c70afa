# secchat: see README.
PREFIX	?= /usr/local
BINDIR	 = $(PREFIX)/bin
MANDIR	 = $(PREFIX)/share/man/man1
CC	?= cc
CFLAGS	?= -O2
CFLAGS	+= -std=c11 -Wall -Wextra
CRYPTO_CFLAGS != pkg-config --cflags libcrypto 2>/dev/null || echo MISSING
CRYPTO_LIBS   != pkg-config --libs libcrypto 2>/dev/null || echo MISSING

all: secchat

secchat: secchat.c
	$(CC) $(CFLAGS) $(CRYPTO_CFLAGS) -o $@ secchat.c $(LDFLAGS) $(CRYPTO_LIBS)

tests/kat: tests/kat.c secchat.c
	$(CC) $(CFLAGS) -Wno-unused-function $(CRYPTO_CFLAGS) -o $@ tests/kat.c \
	    $(LDFLAGS) $(CRYPTO_LIBS)

check: secchat tests/kat
	./test.sh

clean:
	rm -f secchat tests/kat

install: secchat
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 755 secchat $(DESTDIR)$(BINDIR)/secchat
	install -m 644 secchat.1 $(DESTDIR)$(MANDIR)/secchat.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/secchat $(DESTDIR)$(MANDIR)/secchat.1

.PHONY: all check clean install uninstall
