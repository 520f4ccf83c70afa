/*
 * secchat: a netcat-style encrypted pipe and chat.
 *
 * Two peers that share a password run SPAKE2 (RFC 9382, P-256) to agree on
 * session keys, then exchange AES-256-GCM records.  The wire protocol,
 * secchat/3, is specified in doc/PROTOCOL.md.
 *
 * Map.  The sections, bottom-up: a section calls only the sections named
 * in its last column, all of them above it, and the compiler sees to the
 * order (there is no forward declaration).  "owns" is the state a
 * section's functions take; the structs are defined together in §2.
 * Nothing below the engine (§20) sees struct session: the handshake and
 * the records take the report and the record state, the chat installs a
 * hook in the report.  tests/layers.sh checks all of this in make check,
 * and that no function is over 60 lines.
 *
 *   §   section                owns                      calls
 *   §1  platform               (Linux, glibc)            -
 *   §2  definitions            constants, structs        -
 *   §3  sandbox                seccomp filter            -
 *   §4  test hooks             -                         -
 *   §5  small helpers          restore (tty, fd flags)   4
 *   §6  key derivation         -                         5
 *   §7  SPAKE2                 struct pake               5,6
 *   §8  records                struct direction, keys    5,6
 *   §9  buffers, blocking I/O  struct buf, written       1,5
 *   §10 connection states      struct conn               8
 *   §11 the view               struct view               5
 *   §12 the line editor        struct editor             5,9,11
 *   §13 the chat at a terminal struct chat               5,9,10,11,12
 *   §14 progress               struct report (progress)  5,9
 *   §15 the report             struct report             5,9,14
 *   §16 the handshake          struct greeting, hello..  5,6,7,8,9,15
 *   §17 sending                struct conn, stream, bufs 4,5,8,9,10,15
 *   §18 receiving              struct conn, stream, bufs 4,5,8,9,10,15,17
 *   §19 the -e command         struct command            1,5,9,10,15
 *   §20 the engine             struct session            1,5,8,9,10,13,14,15,17,18,19
 *   §21 sessions               struct session            1,3,4,5,8,9,13,14,15,19,20
 *   §22 sockets                struct accepted           1,4,5,9
 *   §23 the password           -                         5,9
 *   §24 serving one connection struct session, pake      5,7,9,15,16,21
 *   §25 serving many           struct server, pending    1,3,4,5,7,8,9,16,21,22,24
 *   §26 the two roles          struct options            1,3,4,5,7,9,13,15,16,21,22,23,24,25
 *   §27 options and main       struct options            1,4,5,13,19,23,26
 *
 * Forward declarations (0).
 *
 * Errors, one discipline a layer:
 *   setup (options, password, sockets): exit with a message (err/errx);
 *   a session (handshake, records, -e): print one line and return an
 *     exit status, so that a -k listener goes on to the next connection;
 *     a serving listener's accept path logs a line and carries on;
 *   internal failures (libcrypto refusing valid input): die at once.
 */

#define _GNU_SOURCE		/* accept4, SOCK_NONBLOCK, environ */

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <utf8proc.h>

#define PROGRAM_VERSION	"3.0"

/* ---------------------------------------------------------------------- */
/* §1 Platform: the Linux and glibc calls */
/*
 * Portability: every Linux- and glibc-specific call is in a function of
 * this section, and seccomp is §3; a port starts with these two (on
 * OpenBSD, pledge(2) would take the sandbox's place).
 */

#include <sched.h>		/* CLONE_NEW*, for the serving filter */

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

/* Rekey and idle timers: elapsed time, the machine's sleep included. */
#define OS_CLOCK	CLOCK_BOOTTIME

/* No core file, no ptrace by other processes of the user. */
static int
os_no_core_dumps(void)
{
	struct rlimit no_core = { 0, 0 };

	return prctl(PR_SET_DUMPABLE, 0) == -1 ||
	    setrlimit(RLIMIT_CORE, &no_core) == -1 ? -1 : 0;
}

/* accept(2) with the new descriptor non-blocking and close-on-exec. */
static int
os_accept(int lfd, struct sockaddr *sa, socklen_t *len)
{
	return accept4(lfd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/*
 * Keep the pages of p[0..n) out of swap, as far as RLIMIT_MEMLOCK allows;
 * beyond it they stay swappable (documented), which is no reason to stop.
 * Each page is locked when first used (MLOCK_ONFAULT), so a session that
 * never fills its retained buffer (-B) does not hold it all in memory.
 */
static void
lock_secrets(const void *p, size_t n)
{
	if (mlock2(p, n, MLOCK_ONFAULT) == -1)
		(void)mlock(p, n);
}

/* Run this same program again, from the start, with the environment now. */
static void
os_reexec(char *argv[])
{
	execv("/proc/self/exe", argv);
}

/* pipe(2) with both ends close-on-exec. */
static int
os_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

/* A pair of connected local sockets of type, both close-on-exec. */
static int
os_socketpair(int type, int fds[2])
{
	return socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds);
}

/* Bytes written into the pipe fd (either end) and not yet read from it. */
static size_t
os_unread(int fd)
{
	int n;

	if (ioctl(fd, FIONREAD, &n) == -1 || n < 0)
		abort();		/* our own pipe */
	return (size_t)n;
}

/* Send the message p[0..n) on a local socket with nfds descriptors. */
static ssize_t
os_send_fds(int sock, const void *p, size_t n, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr h;
		char	 space[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > 4)
		abort();
	memset(&u, 0, sizeof(u));
	m.msg_control = u.space;
	m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	u.h.cmsg_level = SOL_SOCKET;
	u.h.cmsg_type = SCM_RIGHTS;
	u.h.cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(&u.h), fds, nfds * sizeof(int));
	return sendmsg(sock, &m, MSG_NOSIGNAL);
}

/*
 * Receive a message into p[0..n) and up to 4 descriptors, close-on-exec,
 * into fds[0..*nfds); the message's length, or -1.
 */
static ssize_t
os_recv_fds(int sock, void *p, size_t n, int fds[4], size_t *nfds)
{
	union {
		struct cmsghdr h;
		char	 space[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = p, .iov_len = n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = u.space, .msg_controllen = sizeof(u.space) };
	struct cmsghdr *c;
	ssize_t r;

	*nfds = 0;
	if ((r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) == -1)
		return -1;
	/* All the descriptors that came are ours to close (4 fit at most). */
	for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			if (*nfds + k > 4)
				k = 4 - *nfds;
			memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
			*nfds += k;
		}
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		while (*nfds > 0)
			close(fds[--*nfds]);
		errno = EMSGSIZE;	/* a message cut short: not taken */
		return -1;
	}
	return r;
}

/* poll(2) with the signals not in mask let through only meanwhile. */
static int
os_poll_signals(struct pollfd *pfd, nfds_t n, const sigset_t *mask)
{
	return ppoll(pfd, n, NULL, mask);
}

/* socket(2), close-on-exec, and non-blocking if asked. */
static int
os_socket(const struct addrinfo *ai, int nonblock)
{
	return socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
	    (nonblock ? SOCK_NONBLOCK : 0), ai->ai_protocol);
}

/* Be sent SIGTERM when the parent dies (a serving listener's child). */
static int
os_die_with_parent(void)
{
	return prctl(PR_SET_PDEATHSIG, SIGTERM);
}

/*
 * The signals that end a session are held while its engine runs and let
 * in only while it waits in os_poll, so that the flag their handler sets
 * is always seen before the engine sleeps again.
 */
static void
os_signals_hold(sigset_t *before)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, before) == -1)
		abort();		/* valid arguments */
}

static void
os_signals_release(const sigset_t *before)
{
	if (sigprocmask(SIG_SETMASK, before, NULL) == -1)
		abort();
}

/* poll(2) with the signal mask during set to during (ppoll). */
static int
os_poll(struct pollfd *pfd, nfds_t n, int timeout_ms, const sigset_t *during)
{
	struct timespec ts = { timeout_ms / 1000, timeout_ms % 1000 * 1000000L };

	return ppoll(pfd, n, timeout_ms < 0 ? NULL : &ts, during);
}

/* Messages say "secchat: " whatever the binary is called. */
static void
os_set_progname(void)
{
	program_invocation_short_name = "secchat";
}

/* ---------------------------------------------------------------------- */
/* §2 Definitions */
/*
 * The protocol's constants and wire sizes, the limits, and the structs of
 * every layer, in the order of the sections that own them (the map).
 */

/* secchat/3 constants and wire sizes (doc/PROTOCOL.md). */
#define MAGIC		"SECCHAT"	/* every handshake message's first 7 bytes */
#define MAGIC_LEN	7
#define VERSION		3		/* byte 7 */
#define HDR_LEN		9		/* MAGIC || version || kind */
#define SALT_LEN	16
#define POINT_LEN	65		/* uncompressed SEC1 P-256 point */
#define SCALAR_LEN	32
#define W_SEED_LEN	40		/* PBKDF2 output reduced mod n */
#define MAC_LEN		32		/* HMAC-SHA-256 */
#define HALF_LEN	16		/* Ke, Ka, KcA, KcB */
#define AAD_LEN		51		/* the greeting without pB || window */
#define NONCE_LEN	16		/* the greeting's */
#define SID_LEN		16		/* the session id (resume) */
#define SECRET_LEN	32
#define KEY_LEN		32
#define IV_LEN		12
#define TAG_LEN		16
#define LEN_LEN		2		/* record length field */
#define MAX_PAYLOAD	16384
#define MAX_INNER	16640
#define MIN_RECORD	(1 + TAG_LEN)		/* 17 */
#define MAX_RECORD	(MAX_INNER + TAG_LEN)	/* 16656 */
#define SEQ_LIMIT	(1UL << 24)		/* records under one key */
#define TYPE_DATA	1
#define TYPE_REKEY	2
#define TYPE_CLOSE	3
#define TYPE_KEY	4
#define TYPE_DONE	5
#define TYPE_ACK	6
#define TYPE_PING	7
#define TYPE_END	8
#define ACK_LEN		8		/* u64 count */
#define PING_LEN	2		/* u16 interval */
#define END_HEAD	5		/* u8 reason || u32 value */
#define END_TEXT_MAX	200
#define X25519_LEN	32		/* X25519 public key, private key, DH */
#define INDEX_LEN	4		/* u32 index of a receive key */
#define REKEY_LEN	(INDEX_LEN + X25519_LEN)	/* REKEY payload */
#define MAX_KEY_INDEX	UINT32_MAX	/* the last receive key announced */

#define ID_A		"secchat/3 connector"
#define ID_B		"secchat/3 listener"
#define LABEL_C2S	"secchat/3 connector to listener"
#define LABEL_S2C	"secchat/3 listener to connector"
#define LABEL_SID	"secchat/3 session id"
#define LABEL_RS	"secchat/3 resumption"
#define LABEL_MKC	"secchat/3 resume connector"
#define LABEL_MKL	"secchat/3 resume listener"
#define LABEL_RESUME	"secchat/3 resume"
#define TT_MAX		512

/* RFC 9382 section 6: M and N for P-256, compressed SEC1. */
static const uint8_t spake2_m[33] = {
	0x02, 0x88, 0x6e, 0x2f, 0x97, 0xac, 0xe4, 0x6e, 0x55, 0xba, 0x9d,
	0xd7, 0x24, 0x25, 0x79, 0xf2, 0x99, 0x3b, 0x64, 0xe1, 0x6e, 0xf3,
	0xdc, 0xab, 0x95, 0xaf, 0xd4, 0x97, 0x33, 0x3d, 0x8f, 0xa1, 0x2f,
};
static const uint8_t spake2_n[33] = {
	0x03, 0xd8, 0xbb, 0xd6, 0xc6, 0x39, 0xc6, 0x29, 0x37, 0xb0, 0x4d,
	0x99, 0x7f, 0x38, 0xc3, 0x77, 0x07, 0x19, 0xc6, 0x29, 0xd7, 0x01,
	0x4d, 0x49, 0xa2, 0x4b, 0x4f, 0x98, 0xba, 0xa1, 0x29, 0x2b, 0x49,
};

/*
 * Handshake messages (doc/PROTOCOL.md section 2.1): a 9-byte header,
 * then a fixed size per kind, no length field.
 */
enum hs_kind { KIND_REFUSAL, KIND_GREETING, KIND_HELLO, KIND_RESUME,
    KIND_CONFIRM, KIND_RESUMED, KINDS };
#define KIND_BIT(k)	(1u << (k))
#define HS_MAX		sizeof(struct greeting)	/* the largest message */

#define FLAG_CODE	0x01		/* the secret is a one-time code */
#define FLAG_NO_NEW	0x02		/* no new session now */

struct greeting {			/* listener -> connector, at once */
	uint8_t	 hdr[HDR_LEN];
	uint8_t	 flags;
	uint8_t	 wait;			/* s the listener waits for HELLO */
	uint8_t	 window[2];		/* resume window, s; 0: none */
	uint8_t	 iterations[4];
	uint8_t	 salt[SALT_LEN];
	uint8_t	 nonce[NONCE_LEN];
	uint8_t	 pB[POINT_LEN];
};
struct hello {				/* connector -> listener */
	uint8_t	 hdr[HDR_LEN];
	uint8_t	 window[2];
	uint8_t	 pA[POINT_LEN];
	uint8_t	 cA[MAC_LEN];
};
struct confirm {			/* listener -> connector */
	uint8_t	 hdr[HDR_LEN];
	uint8_t	 cB[MAC_LEN];
};
struct refusal {			/* listener -> connector, then close */
	uint8_t	 hdr[HDR_LEN];
	uint8_t	 reason;
	uint8_t	 seconds[2];
};
struct resume {				/* connector -> listener (section 8.2) */
	uint8_t	 hdr[HDR_LEN];
	uint8_t	 sid[SID_LEN];
	uint8_t	 gen[4];		/* the generation of the secret used */
	uint8_t	 e[X25519_LEN];		/* E_C */
	uint8_t	 mac[MAC_LEN];		/* mac_C */
};
struct resumed {			/* listener -> connector */
	uint8_t	 hdr[HDR_LEN];
	uint8_t	 e[X25519_LEN];		/* E_L */
	uint8_t	 mac[MAC_LEN];		/* mac_L */
};
/* GREETING || RESUME || RESUMED: what mac_C, mac_L and th cover (8.2). */
#define TR_GREETING	0
#define TR_RESUME	sizeof(struct greeting)
#define TR_RESUMED	(TR_RESUME + sizeof(struct resume))
#define TR_LEN		(TR_RESUMED + sizeof(struct resumed))
#define HANDOVER_LEN	TR_RESUMED	/* GREETING || RESUME, to a child */
_Static_assert(sizeof(struct resume) == 93, "RESUME is 93 bytes");
_Static_assert(sizeof(struct resumed) == 73, "RESUMED is 73 bytes");
_Static_assert(sizeof(struct greeting) == 114, "GREETING is 114 bytes");
_Static_assert(sizeof(struct hello) == 108, "HELLO is 108 bytes");
_Static_assert(sizeof(struct confirm) == 41, "CONFIRM is 41 bytes");
_Static_assert(sizeof(struct refusal) == 12, "REFUSAL is 12 bytes");
_Static_assert(offsetof(struct greeting, pB) + 2 == AAD_LEN,
    "AAD: the greeting to pB, and the HELLO's window");
static const size_t kind_size[KINDS] = { sizeof(struct refusal),
    sizeof(struct greeting), sizeof(struct hello), sizeof(struct resume),
    sizeof(struct confirm), sizeof(struct resumed) };

/* A REFUSAL's reasons (section 2.5). */
enum refusal_reason { REF_PENALTY = 1, REF_BUSY, REF_GUESS_LIMIT,
    REF_NO_NEW, REF_CODE_SPENT, REF_WRONG_SECRET, REF_MALFORMED,
    REF_NO_SESSION, REF_RESUME_FAILED };

/*
 * The secrets a handshake yields (section 3): the first secret of each
 * direction, the resumption secret rs(0) and the session id.  Wiped by
 * whoever takes them.
 */
struct keyset {
	uint8_t	 c2s[SECRET_LEN], s2c[SECRET_LEN];
	uint8_t	 rs[SECRET_LEN];
	uint8_t	 sid[SID_LEN];
	unsigned window;		/* the session's: the less of the two */
};

/*
 * What a session keeps to be resumed (doc/PROTOCOL.md 8.1, 8.4): its id,
 * the generation g and its secret rs(g); a listener also rs(g - 1) until
 * the connector has shown that it holds rs(g).  window 0: never resumed.
 */
struct resumable {
	uint8_t	 sid[SID_LEN];
	uint32_t gen;
	uint8_t	 rs[SECRET_LEN];
	uint8_t	 prev[SECRET_LEN];	/* rs(gen - 1), while has_prev */
	int	 has_prev;
	unsigned window;		/* s: min of the two sides' */
};

/*
 * A session's next connection (section 8.6), as the role brings it: fd
 * and its key set, or why none came.  A hook, so that the engine needs
 * neither sockets nor listeners.
 */
struct rejoin {
	int	 fd;			/* the resumed connection; -1: none */
	struct keyset ks;		/* its key set */
	int	 old;			/* a listener's: rs(g - 1) was used */
	int	 gone;			/* NO_SESSION: the peer has no session */
	int	 status;		/* an end said by the role; -1: none */
};
typedef void rejoin_fn(void *arg, const struct resumable *rm, int64_t until,
    struct rejoin *j);

/* A connection the listener greeted, once its HELLO has come whole. */
struct greeted {
	BIGNUM	*y;			/* the greeting's scalar */
	struct greeting g;
	struct hello h;
};

/*
 * A session's status: GO_ON while it goes on, then the exit status it
 * gives the process (the manual's numbers).
 */
enum status {
	RETRY = -3,		/* a resume's connection failed: another */
	RESUMING = -2,		/* the connection is lost; the session waits */
	GO_ON = -1,
	EXIT_OK = 0,
	EXIT_FAIL = 1,		/* any failure but the next */
	EXIT_USAGE = 2,
	EXIT_AUTH = 3		/* wrong password, tampering, a peer's lie */
};

/* Defaults and limits of the command line. */
#define DEF_ITER	600000
#define MIN_ITER	1000
#define MAX_ITER	10000000
#define DEF_REKEY_MSGS	16384		/* a DH rekey costs ~0.2 ms of CPU */
#define DEF_REKEY_SECS	60
#define DEF_PAD_CHAT	64		/* -P in line mode at a terminal */
#define DEF_HS_TIMEOUT	30
#define REKEY_CHECK_MS	1000		/* clock look while a rekey timer runs */
#define MAX_PASSFILE	4096
#define CODE_DIGITS	12		/* -g */
#define CONNECT_RETRY_MS 200		/* -w: a refused connect, again */
#define DEF_INTERVAL	15		/* -a: PING after this much silence */
#define MAX_INTERVAL	3600
#define DEF_LOSS	45		/* -L: lost after this much silence */
#define MIN_LOSS	2
#define MAX_LOSS	86400
#define DEF_RETAIN_MIB	4		/* -B: unacknowledged MiB kept */
#define MAX_RETAIN_MIB	1024
#define ACK_BYTES	(256 * 1024)	/* W's growth that calls for an ACK */
#define ACK_MS		1000		/* or W above the last ACK this long */
#define QUIET_MS	20000		/* a chat says the peer is silent */
#define END_FLUSH_MS	1000		/* END's wait to reach the kernel */
#define LINE_WAIT_MS	20		/* a partial line goes after this */
#define REKEY_BURST	1000		/* the peer's REKEYs opened at once, */
#define REKEY_PER_SEC	1000		/* then this many a second at most, */
#define REKEY_WAKE	20		/* opened this many at a time */
#define DEF_WINDOW	300		/* -W: s a lost session waits */
#define MAX_WINDOW	86400
#define WIRE_WINDOW	65535		/* the most a u16 says */
#define RESUME_EVERY_MS	1000		/* a connector's attempts (8.6) */
#define REJOIN_SPAN_MS	1000		/* a listener's wait between looks at
					   the signals, while it waits */
#define DEF_SESSIONS	64		/* -m: sessions at once */
#define MAX_SESSIONS	1000

/* Listeners (doc/PROTOCOL.md section 2.7): limits and penalties. */
#define PENDING_MAX	1024		/* greeted connections held at once */
#define PENDING_MIN	256		/* ... or as the open-files limit allows */
#define PENDING_PER_SOURCE 8		/* of them from one address */
#define WAIT_REST	60		/* s a greeting waits for the HELLO */
#define WAIT_LOAD	2		/* ... with the table over half full */
#define WAIT_TYPED	10		/* below, a connector comes back with w */
#define HELLO_TRIES	3		/* its new connections for one handshake */
#define CHECKS_MAX	32		/* serving many: children checking */
#define BACKLOG_MANY	128		/* the kernel's queue of connections */
#define PEN_FREE	3		/* failed handshakes before a penalty */
#define PEN_FIRST_MS	1000		/* then refused 1 s, doubling ... */
#define PEN_CAP_MS	600000		/* ... up to 10 minutes */
#define PEN_QUIET_MS	3600000		/* an hour without one forgives */
#define FAIL_CAP	60		/* checked passwords failed a minute */
#define CODE_CHECKS	3		/* -g: checks at once, in all ... */
#define CODE_REFILL_MS	20000		/* ... and one more each 20 s */
#define LOG_BURST	3		/* lines a minute about one address */
#define LOG_GLOBAL	100		/* lines a minute about all of them */
#define SOURCES		4096		/* addresses remembered */
#define MINUTE_MS	60000
#define COMMAND_GRACE	5		/* s for an -e command to exit */
#define COMMAND_EOF_MS	200		/* its exit after its stdout's end */
_Static_assert(SOURCES > PENDING_MAX + MAX_SESSIONS + 2 * CHECKS_MAX,
    "a source per pending connection and per child");

/* I/O buffer sizes: memory stays constant whatever flows through. */
#define IN_CAP		(128 * 1024)	/* stdin, plaintext */
#define TX_CAP		(256 * 1024)	/* records to the socket */
#define RX_CAP		(128 * 1024)	/* records from the socket */
#define OUT_CAP		(256 * 1024)	/* plaintext to stdout */
#define ERRQ_CAP	(128 * 1024)	/* stderr: hex lines, notes, the last line */
#define HEX_LINE_MAX	(2 * (LEN_LEN + MAX_RECORD) + 16)	/* + dir, ESCs, \n */
#define NOTE_MAX	256		/* a -v line, queued like hex lines */
#define READ_MAX	(64 * 1024)	/* per read: stays in cache, measured */
#define SEAL_IN_PLACE	4096		/* from here a copy costs more than a call */
#define MERGE_CAP	MAX_PAYLOAD	/* a line of one of many sessions */
#define MERGE_ERR_CAP	HEX_LINE_MAX	/* a line of their stderr: whole hex */
#define QUEUE_CAP	(256 * 1024)	/* their lines, to stdout or stderr */
_Static_assert(QUEUE_CAP >= MERGE_ERR_CAP + 1 + NOTE_MAX,
    "a queue holds the longest line and its peer's name");

/*
 * What one step of the engine may queue, in records and so in hex lines:
 * a sending round seals one record (KEY, REKEY, DATA, CLOSE or DONE);
 * receiving one record must leave a sending round its room, or receiving
 * would starve sending.  Each line may bring a -v note (a rekey's).
 */
#define SEND_BATCH	1
#define RECV_BATCH	(1 + SEND_BATCH)
_Static_assert(ERRQ_CAP >= RECV_BATCH * (HEX_LINE_MAX + NOTE_MAX) + NOTE_MAX,
    "the stderr queue holds a receiving batch and the failure line");
_Static_assert(TX_CAP >= SEND_BATCH * (LEN_LEN + MAX_RECORD),
    "txb holds a sending batch");
_Static_assert(OUT_CAP >= MAX_INNER && RX_CAP >= LEN_LEN + MAX_RECORD &&
    IN_CAP / 2 >= MAX_PAYLOAD, "each buffer holds a whole record's worth");

struct options {
	int	 family;		/* AF_UNSPEC, AF_INET or AF_INET6 */
	int	 lflag, kflag, bflag, gflag, qflag, vflag, xflag;
	uint32_t iterations;
	const char *passfile;
	unsigned long rekey_msgs;	/* 0: off */
	unsigned long rekey_secs;	/* 0: off */
	unsigned max_sessions;		/* -m */
	const char *command;		/* -e */
	int	 timeout;		/* -w seconds, -1: none */
	size_t	 pad;			/* -P: DATA inner length multiple; 0: default */
	const char *host, *port;
	int	 sandbox;		/* 0: SECCHAT_NO_SANDBOX, debugging */
	unsigned interval;		/* -a: keepalive, seconds */
	unsigned loss;			/* -L: silence that loses, seconds */
	size_t	 retain;		/* -B: unacknowledged bytes kept */
	unsigned window;		/* -W: resume window, s; 0: none */
	int	 renew;			/* -K: a new session if not resumed */
	int	 launcher;		/* -e: the launcher's socket (§19), or -1 */
	const char *name;		/* -n: the peer's name on the terminal */
	const char *exempt;		/* -X: spared by penalties and limits */
};

/* The curve and M, N; then the password-derived values, for the process. */
struct pake {
	EC_GROUP *group;
	BN_CTX	*bn;
	EC_POINT *M, *N;
	BIGNUM	*w;
	uint8_t	 w_bytes[SCALAR_LEN];
	EC_POINT *wM, *wN;		/* w*M, w*N */
	EC_POINT *neg_wM, *neg_wN;	/* -w*M, -w*N */
};

/* What SPAKE2 yields; tt and K are kept for the known-answer tests. */
struct handshake_keys {
	uint8_t	 K[POINT_LEN];
	uint8_t	 tt[TT_MAX];
	size_t	 tt_len;
	uint8_t	 tt_hash[SHA256_DIGEST_LENGTH];
	uint8_t	 Ke[HALF_LEN], Ka[HALF_LEN], KcA[HALF_LEN], KcB[HALF_LEN];
	uint8_t	 cA[MAC_LEN], cB[MAC_LEN];
};

/* One direction of traffic: its secret chain and its cipher. */
struct direction {
	EVP_CIPHER_CTX *ctx;
	uint8_t	 secret[SECRET_LEN];
	uint8_t	 iv[IV_LEN];
	uint8_t	 nonce[IV_LEN];		/* iv ^ seq: as secret as iv, kept with it */
	uint64_t seq;			/* records under the current secret */
	uint64_t epoch;			/* index of the current secret */
	uint64_t data_records;		/* DATA records under this secret */
	int64_t	 first_data;		/* when the first of them was sent, ms */
};

/*
 * This side's receive keys (doc/PROTOCOL.md section 5.1): the private
 * halves of keys oldest and oldest + 1 (NULL once erased or not made).
 * A key is announced only after the peer's REKEY used the newest one, and
 * key k is erased when a REKEY uses k + 1, so two slots always suffice.
 */
struct recv_keys {
	EVP_PKEY *key[2];		/* indices oldest, oldest + 1 */
	uint64_t oldest;		/* the lowest index alive */
	uint64_t announced;		/* KEYs sent; the newest is announced - 1 */
	int	 due;			/* the next KEY must be sent */
};

/* What the peer announced, for our REKEYs: its newest receive key. */
struct peer_keys {
	uint8_t	 newest[X25519_LEN];
	uint64_t count;			/* KEYs received; the newest is count - 1 */
	int	 used;			/* a REKEY of ours used the newest */
};

struct buf {
	uint8_t	*data;
	size_t	 cap, pos, len;		/* pending bytes are data[pos..len) */
	size_t	 keep;			/* bytes before pos still held */
	size_t	 used;			/* data[0..used) may hold plaintext */
};

/*
 * A connection's life, one state per direction (doc/PROTOCOL.md
 * sections 4.1, 7 and 9); each transition is made in one function, named
 * after it.
 *
 * Sending (our records to the peer):
 *
 *   TX_OPEN --input ends (EOF, ^D, the peer's CLOSE at a terminal)--> TX_DRAINING
 *   TX_DRAINING --input all sealed; CLOSE sealed--> TX_CLOSED
 *   TX_CLOSED --the peer's CLOSE in, stdout written; DONE sealed--> TX_DONE
 *   TX_DONE --DONE on the wire; shutdown(SHUT_WR)--> TX_SHUT
 *   TX_OPEN, TX_DRAINING, TX_CLOSED --END sealed--> TX_ENDED
 *   any --the socket refuses our data--> TX_FAILED (tx_errno says why)
 *
 * KEY 0 is the first record of all (recv_keys.due starts set); KEY,
 * REKEY, ACK and PING records go out in TX_OPEN, TX_DRAINING and
 * TX_CLOSED, DATA in the first two.  At TX_DONE and TX_ENDED the sending
 * keys are erased: nothing more is sealed.
 *
 * Receiving (the peer's records):
 *
 *   RX_KEY0 --KEY 0--> RX_OPEN --CLOSE--> RX_CLOSED --DONE--> RX_DONE
 *   RX_KEY0 --KEY 0, on a resumed connection--> RX_WAIT_ACK --ACK--> RX_OPEN
 *   RX_WAIT_ACK, RX_OPEN, RX_CLOSED --END--> RX_ENDED
 *
 * On a resumed connection (section 8.5) our ACK is the second record
 * (resume_ack), and no DATA nor CLOSE goes before the peer's first ACK
 * (peer_acked), which says where our stream starts again.
 *
 * At RX_DONE and RX_ENDED the receiving keys and our receive keys are
 * erased, and whatever follows on the socket is ignored.  Apart from
 * these, rx_eof says the peer's TCP stream has ended.
 *
 * The session succeeds once sending is TX_SHUT and receiving RX_DONE,
 * without waiting for the peer's FIN.  Any other end (the peer's END, an
 * end of stream, a reset, silence past the loss limit) is reported by the
 * engine from the streams' states (doc/PROTOCOL.md 9.3, 9.4).
 */
enum tx_state { TX_OPEN, TX_DRAINING, TX_CLOSED, TX_DONE, TX_SHUT, TX_ENDED,
    TX_FAILED };
enum rx_state { RX_KEY0, RX_WAIT_ACK, RX_OPEN, RX_CLOSED, RX_DONE,
    RX_ENDED };

/* END reasons (doc/PROTOCOL.md 9.2). */
enum end_reason { END_NONE, END_INTERRUPTED, END_TERMINATED,
    END_INPUT_FAILED, END_OUTPUT_FAILED, END_COMMAND_KILLED,
    END_COMMAND_UNREAD, END_TIMEOUT, END_REJECTED, END_OTHER };

/* An END record's content, ours or the peer's. */
struct end {
	int	 reason;		/* END_NONE: none */
	uint32_t value;
	char	 text[END_TEXT_MAX + 1];
};

/*
 * The record layer's state of one connection: what sealing, opening and
 * receiving change.  Set up by conn_begin, wiped as a unit by conn_end.
 */
struct conn {
	enum tx_state tx_state;
	enum rx_state rx_state;
	int	 rx_eof;		/* the peer's TCP stream has ended */
	int	 tx_errno;		/* why TX_FAILED */
	enum tx_state tx_failed_in;	/* the state TX_FAILED came from */
	int	 resumed;		/* this connection resumed the session */
	int	 resume_ack;		/* our resume point is still to seal */
	int	 peer_acked;		/* the peer's first ACK here opened */
	int	 rx_errno;		/* a read's error: the connection is lost */
	struct direction tx, rx;
	struct recv_keys rk;		/* ours, for the peer's REKEYs */
	struct peer_keys pk;		/* the peer's, for our REKEYs */
	uint64_t sent_records, sent_bytes, recv_records, recv_bytes;
	uint64_t rekeys_sent, rekeys_recv;
	int	 ping_due;		/* announce our interval after KEY 0 */
	unsigned peer_interval;		/* the peer's PING promise, seconds */
	int64_t	 last_sealed;		/* ms: our last record, for PING */
	int64_t	 last_heard;		/* ms: the peer's last byte, for loss */
	int	 quiet_said;		/* "no word from" said for this silence */
	int64_t	 rekey_budget;		/* the peer's REKEYs we may open, x1000 */
	int64_t	 rekey_budget_at;	/* ms: when it was last topped up */
	int	 rekey_held;		/* spent: wait for REKEY_WAKE of them */
	struct end peer_end;		/* its END, at RX_ENDED */
};

/*
 * A session's two byte streams (doc/PROTOCOL.md 7.1), apart from the
 * connection that carries them, so that another connection could carry
 * them on: our stream's offsets S and A, and when ACKs of the peer's
 * are due (its written count W is struct written's, written_count).  Our bytes from A to S, sealed but not
 * acknowledged, are the retained buffer: they stay in bufs.in just before
 * its pending bytes (in.keep of them) until an ACK lets them go.
 */
struct stream {
	uint64_t sealed;		/* S: our DATA bytes sealed */
	uint64_t next;			/* the next one's offset: below S only
					   while a resume seals [A, S) again */
	uint64_t acked;			/* A: of them, written by the peer */
	uint64_t ack_sent;		/* W as our last ACK said it */
	int64_t	 ack_wait;		/* ms: W went above it then; 0: not */
	size_t	 retain;		/* S - A at most (-B) */
	size_t	 kept_most;		/* S - A's highest, for -v */
	int64_t	 input_at;		/* ms: input's last bytes, for a
					   partial line (section 6) */
	int	 closed;		/* our CLOSE sealed: S is our length */
	int	 peer_closed;		/* its CLOSE opened */
	uint64_t peer_length;		/* at peer_closed, its stream's length */
	uint64_t skip;			/* the peer's bytes again after a resume
					   that we had already handed out */
	int	 peer_done;		/* its DONE opened */
};

/*
 * The peer's bytes on their way out, and how many are written for good
 * (W, doc/PROTOCOL.md section 7.1): what write(2) to stdout took; with
 * -e, less what the command has not yet read from its pipe; in a serving
 * listener's child, what the listener has written to its own stdout and
 * acknowledged.  DONE waits for W to reach the peer's whole stream.
 */
struct written {
	uint64_t payload;		/* the peer's bytes taken out of out */
	uint64_t raw;			/* bytes write(2) took: the same, or
					   more once rendered for a terminal */
	uint64_t acked;			/* of raw, what the listener wrote */
	uint64_t caught;		/* payload when acked last caught up */
	int	 acks;			/* W is what the listener acknowledges */
	int	 ack_fd;		/* its acknowledgements; -1: none, gone */
	int	 ended;			/* it was told that no more comes */
	int	 pipe_fd;		/* the command's stdin, or -1 */
	/* A serving child's: a connection its listener handed over, with
	   the GREETING and RESUME that came on it (section 8.7); -1: none. */
	int	 handed_fd;
	uint8_t	 handed[HANDOVER_LEN];
};

/* A session's buffers, allocated once (a -k listener reuses them). */
struct bufs {
	struct buf in;			/* stdin's plaintext, to be sealed */
	struct buf txb;			/* records to the socket */
	struct buf rxb;			/* records from the socket */
	struct buf out;			/* plaintext for stdout */
	struct written wr;		/* out's bytes, written (W) */
};

/*
 * What goes to stderr: hex lines, notes, the line that ends a session,
 * the -v progress line.  Lines wait in q, so that they keep their order
 * with the records they describe.  The chat installs hide, which takes
 * its line off the screen before a line is written.
 */
struct report {
	int	 fd;			/* stderr (a serving child's: a pipe) */
	struct buf q;			/* lines not yet written */
	int	 hex;			/* hex lines at all (not -q) */
	int	 all_hex;		/* -x: every byte, even on a terminal */
	int	 tty;			/* fd is a terminal: dim rows */
	int	 cols;			/* its width, read at the start and on
					   a resize, not per record */
	int	 verbose;		/* -v notes */
	int	 chat;			/* chat status lines */
	int	 shared;		/* stdout's file too: lines go first */
	int	 secs;			/* flushes wait this long in all */
	int64_t	 deadline;		/* ms, set at the first flush; 0: none */
	int	 progress;		/* the -v progress line is drawn */
	int64_t	 progress_start, progress_last;	/* ms */
	off_t	 in_size;		/* stdin's size if a file, else -1 */
	void	(*hide)(void *);	/* the chat's, or NULL */
	/* The chat's: shows a DATA record with its text; 1: no hex line. */
	int	(*row)(void *, int dir, int type, const uint8_t *plain,
		    size_t plen, const uint8_t *rec, size_t n);
	void	*hide_arg;		/* the chat, for both */
	int	 again;			/* the DATA sealed is sealed again */
	int	 live;			/* DATA as one row drawn in place */
	char	 live_row[NOTE_MAX];	/* the latest record's, to be drawn */
	int	 live_new;		/* live_row not drawn yet */
	int	 live_rows;		/* rows of the live area on the screen */
	char	 last[NOTE_MAX - 16];	/* the last line: an END's text */
};

/* The chat at a terminal (the editor and the view, below). */
#define MARK_MAX	32		/* a marker, with its video attributes */
#define NAME_MAX_W	24		/* bytes of a display name */
#define LABEL_MAX	(8 + NAME_MAX_W + 2)	/* "HH:MM NAME> " */
#define ANNOT_HEX	32		/* record bytes an annotation may show */
#define ANNOT_MAX	(2 * ANNOT_HEX + 48)	/* "   ‹82 B 0050…›", dim */
#define ANNOTS		8		/* records whose text is not yet shown */
#define WRAP_MAX	(LABEL_MAX + 16)	/* a continuation row's start */
#define TAB_W		8
/* Per character: a label, a wrap, an annotation and a wrap, a marker. */
#define RENDER_MAX	(LABEL_MAX + 2 * WRAP_MAX + ANNOT_MAX + 2 * MARK_MAX)
#define VIEW_MIN	(4 * RENDER_MAX)	/* view_render's least room */
#define VIEW_CHUNK	8192		/* the peer's text, rendered at once */
_Static_assert(VIEW_CHUNK >= VIEW_MIN, "room for view_render");
#define EDIT_MAX	4096		/* bytes in the line being typed */
#define HISTORY_MAX	100		/* lines sent, for Up and Down */
#define PROMPT		"> "
#define PROMPT_W	2
#define DRAW_MAX	(2 * EDIT_MAX * TAB_W + 256)	/* tabs, rows, moves */
#define KEYS_MAX	256		/* typed bytes read at once */

enum key_state { KEY_TEXT, KEY_ESC, KEY_CSI, KEY_SS3, KEY_STRING,
    KEY_STRING_ESC };

/* What a key asks of the session. */
enum { ED_NONE, ED_LINE, ED_EOF, ED_INTR };

/*
 * A record's ciphertext, shown at the end of the row where its text ends:
 * its size, its first bytes, and where its text ends in the view's input.
 */
struct annot {
	uint64_t end;			/* v->taken when its text is all shown */
	size_t	 size;			/* the record's bytes on the wire */
	uint8_t	 rec[ANNOT_HEX];	/* its first bytes */
};

/*
 * Text on our terminal (the peer's, or our own lines): who says it, and
 * what may be shown.  The view wraps the rows itself, so that a row it
 * continues starts with a marker, never with the peer's text.
 */
struct view {
	int	 labels;		/* "HH:MM NAME> " before each line */
	int	 ascii;			/* not a UTF-8 terminal: only ASCII as is */
	char	 peer[NAME_MAX_W + 1];	/* the display name */
	int	 line_start;		/* the next character begins a line */
	int	 cr;			/* a CR waits: dropped before LF */
	uint8_t	 part[4];		/* a character cut between records */
	size_t	 part_len;
	int	 cols;			/* the terminal's width */
	int	 col;			/* the cursor's column on its row */
	int	 label_w;		/* the label's columns: text starts there */
	uint64_t taken;			/* input bytes rendered so far */
	struct annot annot[ANNOTS];	/* oldest first */
	int	 nannot;
	int	 annot_due;		/* annot[0]'s text is shown: at row end */
	uint32_t prev;			/* the last character, for joiners */
};

struct editor {
	int	 fd;			/* the terminal */
	cc_t	 erase, werase, kill, eof, intr;	/* the terminal's keys */
	uint8_t	 line[EDIT_MAX];
	size_t	 len, cur;		/* bytes; cur is on a character */
	int	 cols;			/* the terminal's width */
	int	 row;			/* the cursor's row in the line's */
	int	 rows;			/* rows the line takes on the screen */
	int	 shown;			/* the line is on the screen */
	enum key_state key;
	char	 csi[16];		/* parameters of an escape sequence */
	size_t	 csi_len;
	uint8_t	 typed[4];		/* a character being typed */
	size_t	 typed_len;
	char	*hist[HISTORY_MAX];
	size_t	 hist_len[HISTORY_MAX];
	int	 nhist, hpos;		/* hpos == nhist: the typed line */
	uint8_t	 draft[EDIT_MAX];	/* that line, while Up shows others */
	size_t	 draft_len;
	char	 draw[DRAW_MAX];	/* the screen update being built */
	size_t	 draw_len;
};

/* The terminal's side: the peer's text rendered, our line edited. */
struct chat {
	int	 fd;			/* stdout, when it is a terminal */
	int	 edit;			/* the line editor is on */
	int	 peer_ended;		/* the peer's CLOSE came before ours */
	int	 annotate;		/* records' ciphertext on their text's row */
	int	 interrupted;		/* ^C: the chat is over for the editor */
	struct view view;		/* the peer's text */
	struct view mine;		/* our lines, as they are sealed */
	struct editor ed;
};

/*
 * The -e command of one session.  Its life (state) and the fate of its
 * stdin (feed) are apart: it may stop reading at any point of its life.
 *
 *   CMD_RUNNING --its stdout ends--> CMD_OUTPUT_ENDED --reaped--> CMD_EXITED
 *   FEED_OPEN --the peer's data all in it--> FEED_DONE
 *   FEED_OPEN --it stops reading (EPIPE)--> FEED_REFUSED
 *
 * Once its stdout has ended and it has exited (or COMMAND_EOF_MS passed),
 * our input is over.  FEED_REFUSED drops the peer's data, so no DONE.
 */
enum cmd_state { CMD_NONE, CMD_RUNNING, CMD_OUTPUT_ENDED, CMD_EXITED };
enum cmd_feed { FEED_OPEN, FEED_DONE, FEED_REFUSED };

struct command {
	enum cmd_state state;
	enum cmd_feed feed;
	pid_t	 pid;
	int	 chan;			/* to the launcher, about it; -1: none */
	int	 from, to;		/* its stdout, its stdin; -1: closed */
	int	 status;		/* its wait status, at CMD_EXITED */
	int64_t	 output_end;		/* ms: when its stdout ended */
	int64_t	 refused;		/* ms: when it stopped reading */
};

/*
 * -e's launcher (§19), and what it and a session say to each other: a
 * request on the launcher's socket, with the descriptors of a channel for
 * the replies and the command's stdin, stdout and stderr; then words on
 * the channel.  Every string of a request ends in a NUL.
 */
#define LAUNCH_MAX	(4 * MAX_SESSIONS)	/* commands running at once */

struct launch_req {
	char	 number[24];		/* SECCHAT_SESSION */
	char	 addr[NI_MAXHOST];	/* SECCHAT_PEER_ADDR */
	char	 port[NI_MAXSERV];	/* SECCHAT_PEER_PORT */
};

struct launch_word {
	int32_t	 v;
	char	 what;			/* launcher: 'R' running (v: pid), 'E'
					   not started (v: errno), 'X' exited
					   (v: wait status); session: 'K' kill */
};

/* A command the launcher runs, and the channel of its session. */
struct launched {
	pid_t	 pid;			/* 0: a free slot */
	int	 chan;			/* -1 once the session has gone */
};

/*
 * What the process changes about descriptors it shares with other
 * programs, put back at exit and on a fatal signal: the flags of stdin,
 * stdout and stderr before O_NONBLOCK, and a terminal's modes before the
 * password prompt or the chat line editor changed them; and, while a
 * session's engine runs, the signal that asks it to end (SIGINT, SIGTERM,
 * SIGHUP), which it answers with END.  A global, because a signal handler
 * needs it; the one other mutable global is hkdf_method's cached HKDF,
 * set once.
 */
static struct {
	int	 flags[3];
	int	 tty_fd;		/* the terminal whose modes changed */
	struct termios tty;
	volatile sig_atomic_t tty_changed;
	volatile sig_atomic_t caught_by_engine;	/* see on_signal */
	volatile sig_atomic_t signal;	/* caught, for the engine */
} restore = { { -1, -1, -1 }, -1, { 0 }, 0, 0, 0 };


/* ---------------------------------------------------------------------- */
/* §3 Sandbox: seccomp-bpf */
/*
 * Sandbox: a seccomp-bpf allow-list, in the manner of OpenSSH's
 * sandbox-seccomp-filter.c.  From before the first byte read from the
 * network (a listener: before its first accept), a bug in the code that
 * parses the handshake or handles what the peer sends cannot open a
 * file, start a program or make a connection: any system call not listed
 * kills the process.  A second, narrower filter follows the handshake; a
 * serving listener's own filter lets it accept and fork (sb_server), and
 * -e's command is started by a launcher outside them all (§19).  strace -f
 * of sessions (bulk, line mode, rekeys every record, a chat at a terminal,
 * a -k listener) shows read, write, poll, shutdown, close, munmap, futex,
 * fcntl (F_SETFL at exit), ioctl (TCGETS, TCSETS), exit_group, and for -k
 * accept4 and setsockopt; the rest is what those paths can reach: the
 * clock without the vDSO, signals (a fatal one re-raised, abort), the
 * allocator and getrandom (DRBG reseeds, ephemeral keys), the terminal's
 * size for a line editor, and recvmsg on a serving child's channel (its
 * listener's acknowledgements, a connection that resumes its session).
 * A session that may be resumed keeps its role's pre-auth filter (a
 * connector connects again, a lone listener accepts) instead of the
 * session's.  ioctl only for those, fcntl only for file status flags, no
 * executable memory.
 */

#if defined(__x86_64__)
#define SB_ARCH		AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_ARCH		AUDIT_ARCH_AARCH64
#else	/* 32-bit ABIs name other calls (fcntl64, socketcall, ...) */
#error "secchat's sandbox: add this architecture's AUDIT_ARCH and calls"
#endif

/*
 * A sanitizer build runs without: LeakSanitizer's scan at exit clones a
 * tracer, ptraces the process and reads /proc/self/maps.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SB_SANITIZER	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SB_SANITIZER	1
#endif
#endif
#ifndef SB_SANITIZER
#define SB_SANITIZER	0
#endif
/* Nor does the leak build, which appends to its file mid-session. */
#if SB_SANITIZER || defined(SECCHAT_TEST_LEAK)
#define SB_NONE		1
#else
#define SB_NONE		0
#endif

#define SB_NR		offsetof(struct seccomp_data, nr)
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SB_ARG_LO(n)	(offsetof(struct seccomp_data, args) + 8 * (n))
#else
#define SB_ARG_LO(n)	(offsetof(struct seccomp_data, args) + 8 * (n) + 4)
#endif
#define SB_LD(off)	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define SB_RET(v)	BPF_STMT(BPF_RET | BPF_K, (v))
#define SB_KILL		SB_RET(SECCOMP_RET_KILL_PROCESS)
#define SB_IF(nr, skip)	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, (skip))
/* Allow the call nr. */
#define SB_ALLOW(nr)	SB_IF(nr, 1), SB_RET(SECCOMP_RET_ALLOW)
/*
 * Allow nr when the low 32 bits of argument n are v (all the kernel reads
 * of an int command or pid), or have none of bits; both reload nr after.
 */
#define SB_ALLOW_ARG(nr, n, v) \
	SB_IF(nr, 4), SB_LD(SB_ARG_LO(n)), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (v), 0, 1), \
	SB_RET(SECCOMP_RET_ALLOW), SB_LD(SB_NR)
#define SB_ALLOW_NOT(nr, n, bits) \
	SB_IF(nr, 4), SB_LD(SB_ARG_LO(n)), \
	BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (bits), 1, 0), \
	SB_RET(SECCOMP_RET_ALLOW), SB_LD(SB_NR)

/*
 * The filters, each on top of those a process has already: a process
 * enters the next when it needs less, and the kernel applies them all.
 */
#define SANDBOX_SESSION		0	/* after the handshake: one session */
#define SANDBOX_PREAUTH		1	/* before a connection's first byte */
#define SANDBOX_LISTENER	2	/* the same, and accept: -l, -k -m 1 */
#define SANDBOX_SERVER		3	/* serving many's listener process */
#define SANDBOX_CONNECTOR	4	/* PREAUTH, and new connections (2.6) */
#define SANDBOX_MAX		256	/* instructions */

static size_t
sb_append(struct sock_filter *f, size_t n, const struct sock_filter *more,
    size_t count)
{
	if (n + count > SANDBOX_MAX)
		abort();
	memcpy(f + n, more, count * sizeof(*more));
	return n + count;
}

/* The architecture's check, then the calls that every session needs. */
static size_t
sb_session(struct sock_filter *f)
{
	const struct sock_filter head[] = {
		SB_LD(offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SB_ARCH, 1, 0),
		SB_KILL,
		SB_LD(SB_NR),
#ifdef __X32_SYSCALL_BIT	/* x32 calls have other numbers */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1),
		SB_KILL,
#endif
	};
	const struct sock_filter session[] = {
		SB_ALLOW(__NR_read), SB_ALLOW(__NR_write),
#ifdef __NR_poll
		SB_ALLOW(__NR_poll),
#endif
		SB_ALLOW(__NR_ppoll),
		SB_ALLOW(__NR_close), SB_ALLOW(__NR_shutdown),
		SB_ALLOW(__NR_getsockopt),
		/* A serving child's channel: acknowledgements, resumes. */
		SB_ALLOW(__NR_recvmsg),
		SB_ALLOW(__NR_clock_gettime), SB_ALLOW(__NR_gettimeofday),
		SB_ALLOW(__NR_getrandom), SB_ALLOW(__NR_futex),
		/* The allocator: memory, never executable. */
		SB_ALLOW(__NR_brk), SB_ALLOW(__NR_munmap), SB_ALLOW(__NR_mremap),
		SB_ALLOW(__NR_madvise),
#ifdef __NR_mmap
		SB_ALLOW_NOT(__NR_mmap, 2, PROT_EXEC),
#endif
		SB_ALLOW_NOT(__NR_mprotect, 2, PROT_EXEC),
		/* The terminal: modes for the line editor, its size. */
		SB_ALLOW_ARG(__NR_ioctl, 1, TCGETS),
		SB_ALLOW_ARG(__NR_ioctl, 1, TCSETS),
		SB_ALLOW_ARG(__NR_ioctl, 1, TCSETSW),
		SB_ALLOW_ARG(__NR_ioctl, 1, TCSETSF),
		SB_ALLOW_ARG(__NR_ioctl, 1, TIOCGWINSZ),
		/* -e: read yet?  A -k listener between chats: ^D or keys? */
		SB_ALLOW_ARG(__NR_ioctl, 1, FIONREAD),
		SB_ALLOW_ARG(__NR_fcntl, 1, F_GETFL),
		SB_ALLOW_ARG(__NR_fcntl, 1, F_SETFL),
		/* Signals: the fatal ones re-raised at ourselves, abort(). */
		SB_ALLOW(__NR_rt_sigaction), SB_ALLOW(__NR_rt_sigprocmask),
		SB_ALLOW(__NR_rt_sigreturn), SB_ALLOW(__NR_getpid),
		SB_ALLOW(__NR_gettid),
		SB_ALLOW_ARG(__NR_tgkill, 0, (uint32_t)getpid()),
		SB_ALLOW(__NR_restart_syscall),
		SB_ALLOW(__NR_exit), SB_ALLOW(__NR_exit_group),
	};
	size_t n;

	n = sb_append(f, 0, head, sizeof(head) / sizeof(head[0]));
	return sb_append(f, n, session, sizeof(session) / sizeof(session[0]));
}

/*
 * What a serving listener does besides what its children do: accept
 * connections and fork a child for each, collect them, kill those that
 * take too long.  A child starts under this filter: it puts its pipes in
 * place of its stdio, dies with the listener, reads its descriptors'
 * kinds, and then enters its own.  clone only without new namespaces;
 * clone3, whose flags a filter cannot see, fails as unknown to glibc,
 * which falls back to clone.
 */
static size_t
sb_server(struct sock_filter *f, size_t n)
{
	const struct sock_filter server[] = {
		SB_ALLOW_NOT(__NR_clone, 0, CLONE_NEWNS | CLONE_NEWUTS |
		    CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
		    CLONE_NEWCGROUP),
		SB_IF(__NR_clone3, 1), SB_RET(SECCOMP_RET_ERRNO | ENOSYS),
		SB_ALLOW(__NR_set_robust_list),	/* glibc, in a new child */
		SB_ALLOW(__NR_wait4),
		SB_ALLOW_ARG(__NR_kill, 1, SIGKILL),
		SB_ALLOW(__NR_pipe2), SB_ALLOW_ARG(__NR_socketpair, 0, AF_UNIX),
		SB_ALLOW(__NR_sendmsg),		/* a resumed connection, handed */
#ifdef __NR_dup2
		SB_ALLOW(__NR_dup2),
#endif
		SB_ALLOW(__NR_dup3), SB_ALLOW(__NR_getppid),
		SB_ALLOW(__NR_tgkill),		/* a child's raise(), abort() */
		SB_ALLOW_ARG(__NR_prctl, 0, PR_SET_PDEATHSIG),
		SB_ALLOW_ARG(__NR_newfstatat, 3, AT_EMPTY_PATH),
#ifdef __NR_fstat
		SB_ALLOW(__NR_fstat),
#endif
	};

	return sb_append(f, n, server, sizeof(server) / sizeof(server[0]));
}

/*
 * Kill the process on any call that kind does not need.  Before the
 * handshake is done, a session may still stack the session's filter, and
 * with -e ask the launcher (§19) for its command: two pipes and a channel,
 * sent over a local socket.
 */
static void
sandbox_enter(const struct options *opt, int kind)
{
	const struct sock_filter preauth[] = {
		SB_ALLOW(__NR_getpeername),
		SB_ALLOW_ARG(__NR_prctl, 0, PR_SET_NO_NEW_PRIVS),
		SB_ALLOW_ARG(__NR_prctl, 0, PR_SET_SECCOMP),
	};
	const struct sock_filter launch[] = {
		SB_ALLOW(__NR_pipe2), SB_ALLOW_ARG(__NR_socketpair, 0, AF_UNIX),
		SB_ALLOW(__NR_sendmsg),
	};
	const struct sock_filter listener[] = {
		SB_ALLOW(__NR_accept4), SB_ALLOW(__NR_setsockopt),
		/* -g -k: a new code's buffer */
		SB_ALLOW(__NR_mlock), SB_ALLOW(__NR_mlock2),
		SB_ALLOW(__NR_clock_nanosleep),	/* sleep(1) on EMFILE */
	};
	/* A connector's new connections, to addresses resolved before. */
	const struct sock_filter connector[] = {
		SB_ALLOW_ARG(__NR_socket, 0, AF_INET),
		SB_ALLOW_ARG(__NR_socket, 0, AF_INET6),
		SB_ALLOW(__NR_connect), SB_ALLOW(__NR_setsockopt),
	};
	const struct sock_filter tail[] = { SB_KILL };
	struct sock_filter f[SANDBOX_MAX];
	struct sock_fprog prog;
	size_t n;

	if (!opt->sandbox || SB_NONE)
		return;
	n = sb_session(f);
	if (kind != SANDBOX_SESSION)
		n = sb_append(f, n, preauth, sizeof(preauth) / sizeof(preauth[0]));
	if (kind != SANDBOX_SESSION && opt->command != NULL)
		n = sb_append(f, n, launch, sizeof(launch) / sizeof(launch[0]));
	if (kind == SANDBOX_LISTENER || kind == SANDBOX_SERVER)
		n = sb_append(f, n, listener,
		    sizeof(listener) / sizeof(listener[0]));
	if (kind == SANDBOX_SERVER)
		n = sb_server(f, n);
	if (kind == SANDBOX_CONNECTOR)
		n = sb_append(f, n, connector,
		    sizeof(connector) / sizeof(connector[0]));
	n = sb_append(f, n, tail, 1);
	prog.len = n;
	prog.filter = f;
	/* No new privileges first: the kernel requires it, and so does sense. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1)
		err(EXIT_FAIL, "installing the seccomp sandbox");
}

/* ---------------------------------------------------------------------- */
/* §4 Test hooks */
/*
 * Test hooks: compiled into tests/secchat-hooks only (-DSECCHAT_TEST_HOOKS),
 * where SECCHAT_TEST_HOOK=name makes test_hook(name) true.
 */
#ifdef SECCHAT_TEST_HOOKS
static int
test_hook(const char *name)
{
	const char *h = getenv("SECCHAT_TEST_HOOK");

	return h != NULL && strcmp(h, name) == 0;
}

/*
 * test_stop(name): where a process has entered its filter and not yet
 * read a network byte, it says so, waits 2 s for a test to look at
 * /proc/PID/status, and then makes a call that the filter must kill.
 */
static void
test_stop(const char *name)
{
	if (!test_hook(name))
		return;
	warnx("test: %s: filtered", name);
	(void)poll(NULL, 0, 2000);
	(void)open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	warnx("test: %s: not killed", name);
}

#else
#define test_hook(name)		0
#define test_stop(name)		((void)0)
#endif

/* ---------------------------------------------------------------------- */
/* §5 Small helpers */
/* Small helpers. */

static void __attribute__((noreturn))
crypto_fail(const char *what)
{
	errx(EXIT_FAIL, "libcrypto failure in %s", what);
}

/*
 * Terminal modes: changed only by keys_raw (the chat) and keys_quiet (the
 * password prompt), put back only by restore_tty, at the end of either, at
 * exit and on a fatal signal.  The modes before are in restore.
 */

/* Remember fd's terminal modes, for restore_tty() to put back. */
static int
save_tty(int fd)
{
	if (tcgetattr(fd, &restore.tty) == -1)
		return -1;
	restore.tty_fd = fd;
	restore.tty_changed = 1;
	return 0;
}

/*
 * Async-signal-safe: the signal handler calls it too.  Keys still queued
 * are dropped (TCSAFLUSH): typed for the chat, they must not run as the
 * shell's next command.
 */
static void
restore_tty(void)
{
	if (restore.tty_changed)
		(void)tcsetattr(restore.tty_fd, TCSAFLUSH, &restore.tty);
	restore.tty_changed = 0;
}

/* The terminal and the descriptors' flags as they were (a signal's too). */
static void
restore_fds(void)
{
	int fd;

	restore_tty();
	for (fd = 0; fd < 3; fd++)
		if (restore.flags[fd] != -1)
			(void)fcntl(fd, F_SETFL, restore.flags[fd]);
}

/* End the process by sig, as if it had not been caught. */
static void __attribute__((noreturn))
die_by_signal(int sig)
{
	restore_fds();
	signal(sig, SIG_DFL);
	raise(sig);
	abort();		/* sig was not one that ends a process */
}

/* A signal's name ("SIGTERM") into out, for an END's text (32 bytes). */
static void
signal_name(char *out, int sig)
{
	static const struct {
		int	 sig;
		const char *name;
	} names[] = {
		{ SIGHUP, "SIGHUP" }, { SIGINT, "SIGINT" },
		{ SIGQUIT, "SIGQUIT" }, { SIGILL, "SIGILL" },
		{ SIGABRT, "SIGABRT" }, { SIGBUS, "SIGBUS" },
		{ SIGFPE, "SIGFPE" }, { SIGKILL, "SIGKILL" },
		{ SIGSEGV, "SIGSEGV" }, { SIGPIPE, "SIGPIPE" },
		{ SIGALRM, "SIGALRM" }, { SIGTERM, "SIGTERM" },
		{ SIGUSR1, "SIGUSR1" }, { SIGUSR2, "SIGUSR2" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].sig == sig) {
			strcpy(out, names[i].name);
			return;
		}
	(void)snprintf(out, 32, "signal %d", sig);
}

static int
term_cols(int fd)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) == -1 || ws.ws_col < 8)
		return 80;
	return ws.ws_col;
}

/*
 * The editor's terminal modes, from before the connection is made (once
 * the password is read), so that keys typed ahead are shown once, by the
 * editor, not echoed by the terminal as well.  KEYS_AHEAD until the chat
 * starts (^C interrupts); KEYS_CHAT in it (^C is the editor's key, which
 * takes the line off the screen first); KEYS_LINE between the chats of a
 * -k listener, where the terminal keeps the keys in its line until Enter
 * and ^D on an empty one reads as the end.  0, or -1 if they could not be
 * set.
 */
enum { KEYS_AHEAD, KEYS_CHAT, KEYS_LINE };

static int
keys_raw(int fd, int mode)
{
	struct termios t;

	if (!restore.tty_changed && save_tty(fd) == -1)
		return -1;
	t = restore.tty;
	t.c_lflag &= ~(ICANON | ECHO | IEXTEN);	/* ^V and ^O are keys too */
	if (mode == KEYS_CHAT)
		t.c_lflag &= ~ISIG;
	if (mode == KEYS_LINE)
		t.c_lflag |= ICANON;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	t.c_cc[VSUSP] = _POSIX_VDISABLE;	/* a stopped chat stays raw */
	return tcsetattr(fd, TCSANOW, &t);
}

/* The password prompt's: typed keys are not echoed.  0, or -1. */
static int
keys_quiet(int fd)
{
	struct termios t;

	if (save_tty(fd) == -1)		/* a signal may come mid-prompt */
		return -1;
	t = restore.tty;
	t.c_lflag &= ~ECHO;
	return tcsetattr(fd, TCSAFLUSH, &t);
}

/* "1 record", "2 records". */
static const char *
plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/*
 * The numeric address and port, as people write them: an IPv4 peer of a
 * dual-stack socket (::ffff:192.0.2.7) as IPv4.  A link-local IPv6 scope
 * is printed as its number: glibc would name the interface with a socket
 * and an ioctl, which a -k listener's sandbox forbids.
 */
static void
addr_text(const struct sockaddr *sa, socklen_t len, char host[NI_MAXHOST],
    char port[NI_MAXSERV])
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in sin;
	uint32_t scope = 0;
	size_t n;

	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, len < sizeof(ss) ? len : sizeof(ss));
	if (ss.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = sin6->sin6_port;
		memcpy(&sin.sin_addr, sin6->sin6_addr.s6_addr + 12, 4);
		memcpy(&ss, &sin, sizeof(sin));
		len = sizeof(sin);
	} else if (ss.ss_family == AF_INET6) {
		scope = sin6->sin6_scope_id;
		sin6->sin6_scope_id = 0;
	}
	if (getnameinfo((struct sockaddr *)&ss, len, host, NI_MAXHOST, port,
	    NI_MAXSERV, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		strcpy(host, "?");
		strcpy(port, "?");
	} else if (scope != 0) {
		n = strlen(host);
		(void)snprintf(host + n, NI_MAXHOST - n, "%%%u", scope);
	}
}

/*
 * At a terminal cols wide, a line wider than it breaks at the spaces, the
 * rows after the first indented: the terminal would cut words.  msg (cap
 * bytes) is left as it is if it has no room for the indents.
 */
static void
wrap_words(char *msg, size_t cap, int cols)
{
	size_t n = strlen(msg), row = 0, i, space = 0;
	size_t width = cols > 20 ? cols - 1 : 19, indent = 2;

	for (i = 0; i < n; i++) {
		if (msg[i] == ' ')
			space = i;
		if ((msg[i] & 0xc0) == 0x80 || i - row < width || space <= row)
			continue;
		if (n + indent + 1 >= cap)
			return;			/* the terminal cuts, then */
		memmove(msg + space + 1 + indent, msg + space + 1,
		    n - space);
		msg[space] = '\n';
		memset(msg + space + 1, ' ', indent);
		n += indent;
		row = space + 1;
		i = row + indent - 1;	/* the row's text, again */
	}
}

/* A "secchat: " line on stderr, broken at spaces if it is a terminal. */
static void __attribute__((format(printf, 1, 2)))
say(const char *fmt, ...)
{
	char msg[NOTE_MAX];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "secchat: ");

	va_start(ap, fmt);
	(void)vsnprintf(msg + n, sizeof(msg) - n - 32, fmt, ap);
	va_end(ap);
	if (isatty(STDERR_FILENO))
		wrap_words(msg, sizeof(msg), term_cols(STDERR_FILENO));
	fprintf(stderr, "%s\n", msg);
}

/* Close n pipes, both ends. */
static void
close_pipes(int (*fds)[2], int n)
{
	while (n-- > 0) {
		close(fds[n][0]);
		close(fds[n][1]);
	}
}

/* Big-endian integers on the wire: u16, u32 and u64. */
static void
put_u16(uint8_t *p, unsigned v)
{
	p[0] = v >> 8; p[1] = v;
}

static unsigned
get_u16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, v >> 32);
	put_u32(p + 4, (uint32_t)v);
}

static uint64_t
get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

/* Milliseconds since some fixed point, counting suspended time. */
static int64_t
now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(OS_CLOCK, &ts) == -1)
		err(EXIT_FAIL, "clock_gettime");
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds, as the options give them, in now_ms() terms. */
static int64_t
secs_ms(long long secs)
{
	return (int64_t)secs * 1000;
}

/*
 * A listener's wait for a resume, until, cut to REJOIN_SPAN_MS from now so
 * that its caller lets the signals in between (0 stays 0: one look).
 */
static int64_t
rejoin_span(int64_t until)
{
	int64_t by = now_ms() + REJOIN_SPAN_MS;

	return until != 0 && until > by ? by : until;
}

/* The time secs seconds from now, in now_ms() terms. */
static int64_t
deadline_in(long long secs)
{
	return now_ms() + secs_ms(secs);
}

/* Append lowercase hex of p[0..n) to out; returns the end. */
static char *
hex_encode(char *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		*out++ = digits[p[i] >> 4];
		*out++ = digits[p[i] & 15];
	}
	return out;
}

#ifdef SECCHAT_TEST_HOOKS
/* With SECCHAT_TEST_HOOK=secrets, say what to look for in our memory. */
static void
test_show(const char *what, const uint8_t *p, size_t n)
{
	char hex[2 * SECRET_LEN + 1];

	if (!test_hook("secrets") || n > SECRET_LEN)
		return;
	*hex_encode(hex, p, n) = '\0';
	warnx("test: %s %s", what, hex);
	OPENSSL_cleanse(hex, sizeof(hex));
}
#else
#define test_show(what, p, n)	((void)0)
#endif

/* ---------------------------------------------------------------------- */
/* §6 Key derivation */
/* Key derivation: PBKDF2, HKDF, SHA-256, HMAC, all through libcrypto. */

/*
 * HKDF, fetched from the provider once per process: a fetch per call cost
 * a name lookup on every rekey.  The pointer is set once and only read
 * after; it is never freed (the process ends with it).
 */
static EVP_KDF *
hkdf_method(void)
{
	static EVP_KDF *kdf;

	if (kdf == NULL && (kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL)
		crypto_fail("EVP_KDF_fetch");
	return kdf;
}

static void
hkdf(int mode, const uint8_t *salt, size_t salt_len, const uint8_t *key,
    size_t key_len, const void *info, size_t info_len, uint8_t *out,
    size_t out_len)
{
	EVP_KDF_CTX *kctx;
	OSSL_PARAM params[6], *p = params;

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    "SHA256", 0);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)key, key_len);
	if (salt != NULL)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
		    (void *)salt, salt_len);
	if (info != NULL)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
		    (void *)info, info_len);
	*p = OSSL_PARAM_construct_end();

	if ((kctx = EVP_KDF_CTX_new(hkdf_method())) == NULL)
		crypto_fail("EVP_KDF_CTX_new");
	if (EVP_KDF_derive(kctx, out, out_len, params) != 1)
		crypto_fail("HKDF");
	EVP_KDF_CTX_free(kctx);
}

/* HKDF-Expand(prk, label, out_len) with an ASCII label. */
static void
hkdf_expand(const uint8_t prk[SECRET_LEN], const char *label, uint8_t *out,
    size_t out_len)
{
	hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, prk, SECRET_LEN, label,
	    strlen(label), out, out_len);
}

static void
sha256(const uint8_t *p, size_t n, uint8_t out[SHA256_DIGEST_LENGTH])
{
	if (EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL) != 1)
		crypto_fail("SHA-256");
}

/* HMAC-SHA-256 through EVP_MAC, libcrypto 3's interface. */
static void
hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *p, size_t n,
    uint8_t out[MAC_LEN])
{
	size_t len = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, p, n,
	    out, MAC_LEN, &len) == NULL || len != MAC_LEN)
		crypto_fail("HMAC");
}

/* ---------------------------------------------------------------------- */
/* §7 SPAKE2 */
/* SPAKE2 over P-256 (RFC 9382), with the connector as A and listener as B. */

static EC_POINT *
decode_point(const EC_GROUP *g, const uint8_t *p, size_t n, BN_CTX *bn)
{
	EC_POINT *pt;

	if ((pt = EC_POINT_new(g)) == NULL)
		crypto_fail("EC_POINT_new");
	if (EC_POINT_oct2point(g, pt, p, n, bn) != 1 ||
	    EC_POINT_is_on_curve(g, pt, bn) != 1 ||
	    EC_POINT_is_at_infinity(g, pt)) {
		EC_POINT_free(pt);
		return NULL;
	}
	return pt;
}

static void
encode_point(const EC_GROUP *g, const EC_POINT *pt, uint8_t out[POINT_LEN],
    BN_CTX *bn)
{
	if (EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, out,
	    POINT_LEN, bn) != POINT_LEN)
		crypto_fail("EC_POINT_point2oct");
}

/* r = s * base (base NULL: the generator). */
static EC_POINT *
point_mul(const struct pake *pk, const EC_POINT *base, const BIGNUM *s)
{
	EC_POINT *r;
	int ok;

	if ((r = EC_POINT_new(pk->group)) == NULL)
		crypto_fail("EC_POINT_new");
	if (base == NULL)
		ok = EC_POINT_mul(pk->group, r, s, NULL, NULL, pk->bn);
	else
		ok = EC_POINT_mul(pk->group, r, NULL, base, s, pk->bn);
	if (ok != 1)
		crypto_fail("EC_POINT_mul");
	return r;
}

static BIGNUM *
scalar_from_bytes(const uint8_t *p, size_t n)
{
	BIGNUM *s;

	if ((s = BN_new()) == NULL || BN_bin2bn(p, n, s) == NULL)
		crypto_fail("BN_bin2bn");
	BN_set_flags(s, BN_FLG_CONSTTIME);
	return s;
}

/* Set up the curve, M and N: the same whatever the password. */
static void
pake_curve(struct pake *pk)
{
	memset(pk, 0, sizeof(*pk));
	if ((pk->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1))
	    == NULL || (pk->bn = BN_CTX_new()) == NULL)
		crypto_fail("EC_GROUP_new_by_curve_name");
	if ((pk->M = decode_point(pk->group, spake2_m, sizeof(spake2_m),
	    pk->bn)) == NULL || (pk->N = decode_point(pk->group, spake2_n,
	    sizeof(spake2_n), pk->bn)) == NULL)
		crypto_fail("decoding M and N");
}

/* The w-dependent values.  w is given as 32 bytes, reduced, not 0. */
static void
pake_set_w(struct pake *pk, const uint8_t w[SCALAR_LEN])
{
	memcpy(pk->w_bytes, w, SCALAR_LEN);
	test_show("w", w, SCALAR_LEN);
	pk->w = scalar_from_bytes(w, SCALAR_LEN);
	pk->wM = point_mul(pk, pk->M, pk->w);
	pk->wN = point_mul(pk, pk->N, pk->w);
	if ((pk->neg_wM = EC_POINT_dup(pk->wM, pk->group)) == NULL ||
	    (pk->neg_wN = EC_POINT_dup(pk->wN, pk->group)) == NULL)
		crypto_fail("EC_POINT_dup");
	if (EC_POINT_invert(pk->group, pk->neg_wM, pk->bn) != 1 ||
	    EC_POINT_invert(pk->group, pk->neg_wN, pk->bn) != 1)
		crypto_fail("EC_POINT_invert");
}

/* Forget w and every point made from it; the curve stays. */
static void
pake_clear_w(struct pake *pk)
{
	EC_POINT_clear_free(pk->wM);
	EC_POINT_clear_free(pk->wN);
	EC_POINT_clear_free(pk->neg_wM);
	EC_POINT_clear_free(pk->neg_wN);
	BN_clear_free(pk->w);
	OPENSSL_cleanse(pk->w_bytes, sizeof(pk->w_bytes));
	pk->wM = pk->wN = pk->neg_wM = pk->neg_wN = NULL;
	pk->w = NULL;
}

static void
pake_init(struct pake *pk, const uint8_t w[SCALAR_LEN])
{
	pake_curve(pk);
	pake_set_w(pk, w);
}

static void
pake_free(struct pake *pk)
{
	pake_clear_w(pk);
	EC_POINT_free(pk->M);
	EC_POINT_free(pk->N);
	BN_CTX_free(pk->bn);
	EC_GROUP_free(pk->group);
	memset(pk, 0, sizeof(*pk));
}

static void
pbkdf2_sha256(const char *pass, size_t pass_len, const uint8_t *salt,
    size_t salt_len, uint32_t iterations, uint8_t *out, size_t out_len)
{
	if (PKCS5_PBKDF2_HMAC(pass, pass_len, salt, salt_len, iterations,
	    EVP_sha256(), out_len, out) != 1)
		crypto_fail("PBKDF2");
}

/*
 * w = int(PBKDF2-HMAC-SHA256(password, salt, iterations, 40)) mod n.
 * Returns -1 if w is 0 (the protocol aborts then).
 */
static int
derive_w(const char *pass, size_t pass_len, const uint8_t salt[SALT_LEN],
    uint32_t iterations, uint8_t w[SCALAR_LEN])
{
	uint8_t seed[W_SEED_LEN];
	EC_GROUP *g;
	BN_CTX *bn;
	BIGNUM *t;
	int zero;

	pbkdf2_sha256(pass, pass_len, salt, SALT_LEN, iterations, seed,
	    sizeof(seed));
	t = scalar_from_bytes(seed, sizeof(seed));
	OPENSSL_cleanse(seed, sizeof(seed));
	if ((g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL ||
	    (bn = BN_CTX_new()) == NULL ||
	    BN_nnmod(t, t, EC_GROUP_get0_order(g), bn) != 1)
		crypto_fail("BN_nnmod");
	zero = BN_is_zero(t);
	if (BN_bn2binpad(t, w, SCALAR_LEN) != SCALAR_LEN)
		crypto_fail("BN_bn2binpad");
	BN_clear_free(t);
	BN_CTX_free(bn);
	EC_GROUP_free(g);
	return zero ? -1 : 0;
}

/* A scalar uniform in [1, n-1] from RAND_bytes; 64 spare bits hide the bias. */
static BIGNUM *
random_scalar(const struct pake *pk)
{
	uint8_t seed[W_SEED_LEN];
	BIGNUM *s, *n1;

	if (RAND_bytes(seed, sizeof(seed)) != 1)
		crypto_fail("RAND_bytes");
	s = scalar_from_bytes(seed, sizeof(seed));
	OPENSSL_cleanse(seed, sizeof(seed));
	if ((n1 = BN_dup(EC_GROUP_get0_order(pk->group))) == NULL ||
	    BN_sub_word(n1, 1) != 1 || BN_nnmod(s, s, n1, pk->bn) != 1 ||
	    BN_add_word(s, 1) != 1)
		crypto_fail("random_scalar");
	BN_free(n1);
	return s;
}

/* Our public share: s*G + w*M for the connector (A), s*G + w*N for B. */
static void
spake2_share(const struct pake *pk, int is_a, const BIGNUM *s,
    uint8_t out[POINT_LEN])
{
	EC_POINT *p;

	p = point_mul(pk, NULL, s);
	if (EC_POINT_add(pk->group, p, p, is_a ? pk->wM : pk->wN, pk->bn) != 1)
		crypto_fail("EC_POINT_add");
	encode_point(pk->group, p, out, pk->bn);
	EC_POINT_clear_free(p);
}

/* TT gets len(p) as a little-endian u64, then p. */
static size_t
tt_append(uint8_t *tt, size_t off, const void *p, size_t n)
{
	int i;

	if (off + 8 + n > TT_MAX)
		abort();
	for (i = 0; i < 8; i++)
		tt[off + i] = (uint64_t)n >> (8 * i);
	memcpy(tt + off + 8, p, n);
	return off + 8 + n;
}

/*
 * K from our scalar and the peer's share (RFC 9382 section 3.3): -1 if
 * the share is not a valid uncompressed point or K is the point at
 * infinity.
 */
static int
spake2_key(const struct pake *pk, int is_a, const BIGNUM *s,
    const uint8_t peer[POINT_LEN], uint8_t K[POINT_LEN])
{
	EC_POINT *p, *k;

	if (peer[0] != 0x04 ||
	    (p = decode_point(pk->group, peer, POINT_LEN, pk->bn)) == NULL)
		return -1;
	if (EC_POINT_add(pk->group, p, p, is_a ? pk->neg_wN : pk->neg_wM,
	    pk->bn) != 1)
		crypto_fail("EC_POINT_add");
	k = point_mul(pk, p, s);
	EC_POINT_clear_free(p);
	if (EC_POINT_is_at_infinity(pk->group, k)) {
		EC_POINT_clear_free(k);
		return -1;
	}
	encode_point(pk->group, k, K, pk->bn);
	EC_POINT_clear_free(k);
	return 0;
}

/*
 * Is p a valid share: an uncompressed point of P-256, on the curve?  The
 * connector's check of pB, before it asks for the password.
 */
static int
share_valid(const uint8_t p[POINT_LEN])
{
	struct pake pk;
	EC_POINT *pt;

	pake_curve(&pk);
	pt = p[0] == 0x04 ? decode_point(pk.group, p, POINT_LEN, pk.bn) : NULL;
	EC_POINT_free(pt);
	pake_free(&pk);
	return pt != NULL;
}

/*
 * The listener's check of pA without its scalar: a valid share, and not
 * w*M, the one share that makes K the point at infinity.  Serving many's
 * listener process makes it before it forks a child for a HELLO.
 */
static int
share_plausible(const struct pake *pk, const uint8_t pA[POINT_LEN])
{
	uint8_t wM[POINT_LEN];
	EC_POINT *p;
	int ok;

	if (pA[0] != 0x04 ||
	    (p = decode_point(pk->group, pA, POINT_LEN, pk->bn)) == NULL)
		return 0;
	EC_POINT_free(p);
	encode_point(pk->group, pk->wM, wM, pk->bn);
	ok = memcmp(wM, pA, POINT_LEN) != 0;
	OPENSSL_cleanse(wM, sizeof(wM));
	return ok;
}

/* TT over the identities, both shares, K and w; then Ke and Ka (section 4). */
static void
spake2_transcript(struct handshake_keys *hk, const char *id_a,
    const char *id_b, const uint8_t pA[POINT_LEN], const uint8_t pB[POINT_LEN],
    const uint8_t w[SCALAR_LEN])
{
	size_t off = 0;

	off = tt_append(hk->tt, off, id_a, strlen(id_a));
	off = tt_append(hk->tt, off, id_b, strlen(id_b));
	off = tt_append(hk->tt, off, pA, POINT_LEN);
	off = tt_append(hk->tt, off, pB, POINT_LEN);
	off = tt_append(hk->tt, off, hk->K, POINT_LEN);
	off = tt_append(hk->tt, off, w, SCALAR_LEN);
	hk->tt_len = off;
	sha256(hk->tt, hk->tt_len, hk->tt_hash);
	memcpy(hk->Ke, hk->tt_hash, HALF_LEN);
	memcpy(hk->Ka, hk->tt_hash + HALF_LEN, HALF_LEN);
}

/*
 * The confirmation keys and MACs.  The AAD (at most AAD_LEN bytes) is
 * bound into the keys, so a rewritten salt or count fails the handshake.
 */
static void
spake2_confirm(struct handshake_keys *hk, const uint8_t *aad, size_t aad_len)
{
	static const uint8_t no_salt[SHA256_DIGEST_LENGTH];
	uint8_t info[sizeof("ConfirmationKeys") - 1 + AAD_LEN];
	uint8_t kc[2 * HALF_LEN];

	if (aad_len > AAD_LEN)
		abort();
	memcpy(info, "ConfirmationKeys", 16);
	if (aad_len > 0)	/* the RFC 9382 vectors have no AAD */
		memcpy(info + 16, aad, aad_len);
	hkdf(EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, no_salt, sizeof(no_salt),
	    hk->Ka, HALF_LEN, info, 16 + aad_len, kc, sizeof(kc));
	memcpy(hk->KcA, kc, HALF_LEN);
	memcpy(hk->KcB, kc + HALF_LEN, HALF_LEN);
	OPENSSL_cleanse(kc, sizeof(kc));
	hmac_sha256(hk->KcA, HALF_LEN, hk->tt, hk->tt_len, hk->cA);
	hmac_sha256(hk->KcB, HALF_LEN, hk->tt, hk->tt_len, hk->cB);
}

/*
 * Both roles of secchat's handshake: everything SPAKE2 yields, from our
 * scalar, the GREETING (pB, and the AAD's part) and the HELLO (pA and the
 * connector's window; cA is not read).  -1 on a bad share or K at
 * infinity.
 */
static int
spake2_finish(const struct pake *pk, int is_a, const BIGNUM *s,
    const struct greeting *g, const struct hello *h,
    struct handshake_keys *hk)
{
	uint8_t aad[AAD_LEN];
	size_t n = offsetof(struct greeting, pB);

	if (spake2_key(pk, is_a, s, is_a ? g->pB : h->pA, hk->K) == -1)
		return -1;
	spake2_transcript(hk, ID_A, ID_B, h->pA, g->pB, pk->w_bytes);
	memcpy(aad, g, n);
	memcpy(aad + n, h->window, sizeof(h->window));
	spake2_confirm(hk, aad, AAD_LEN);
	return 0;
}

/*
 * A key set from a session PRK (doc/PROTOCOL.md section 3): the first
 * secret of each direction and the resumption secret.
 */
static void
key_set(const uint8_t prk[SECRET_LEN], struct keyset *ks)
{
	hkdf_expand(prk, LABEL_C2S, ks->c2s, SECRET_LEN);
	hkdf_expand(prk, LABEL_S2C, ks->s2c, SECRET_LEN);
	hkdf_expand(prk, LABEL_RS, ks->rs, SECRET_LEN);
}

/*
 * The session's secrets, from Ke alone: Ka, whose MACs travel in the
 * clear, feeds only the confirmation.
 */
static void
session_secrets(const struct handshake_keys *hk, struct keyset *ks)
{
	static const uint8_t no_salt[SHA256_DIGEST_LENGTH];
	uint8_t prk[SECRET_LEN];

	hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, no_salt, sizeof(no_salt),
	    hk->Ke, HALF_LEN, NULL, 0, prk, sizeof(prk));
	hkdf_expand(prk, LABEL_SID, ks->sid, SID_LEN);
	key_set(prk, ks);
	OPENSSL_cleanse(prk, sizeof(prk));
	test_show("rs", ks->rs, SECRET_LEN);
}

/* ---------------------------------------------------------------------- */
/* §8 Records: sealing and opening */
/* Records: AES-256-GCM, one reused cipher context per direction. */

static void
derive_key_iv(const uint8_t secret[SECRET_LEN], uint8_t key[KEY_LEN],
    uint8_t iv[IV_LEN])
{
	hkdf_expand(secret, "key", key, KEY_LEN);
	hkdf_expand(secret, "iv", iv, IV_LEN);
}

/* Make secret the current one of d: key the cipher, reset the counters. */
static void
direction_set(struct direction *d, const uint8_t secret[SECRET_LEN])
{
	uint8_t key[KEY_LEN];

	memcpy(d->secret, secret, SECRET_LEN);
	derive_key_iv(d->secret, key, d->iv);
	test_show("secret", d->secret, SECRET_LEN);
	test_show("key", key, KEY_LEN);
	test_show("iv", d->iv, IV_LEN);
	if (EVP_CipherInit_ex(d->ctx, NULL, NULL, key, NULL, -1) != 1)
		crypto_fail("EVP_CipherInit_ex");
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(d->nonce, IV_LEN);	/* the old IV's */
	d->seq = 0;
	d->data_records = 0;
}

#ifdef SECCHAT_TEST_LEAK
/*
 * Test builds only (make tests/secchat-leak): each new secret of each
 * direction is appended to the file $SECCHAT_TEST_LEAK, so that the
 * compromise test can play a thief who stole one.
 */
static void
leak_secret(const struct direction *d)
{
	char hex[2 * SECRET_LEN + 1];
	const char *path = getenv("SECCHAT_TEST_LEAK");
	FILE *f;

	if (path == NULL || (f = fopen(path, "a")) == NULL)
		return;
	*hex_encode(hex, d->secret, SECRET_LEN) = '\0';
	fprintf(f, "%s epoch %llu %s\n",
	    EVP_CIPHER_CTX_is_encrypting(d->ctx) ? "tx" : "rx",
	    (unsigned long long)d->epoch, hex);
	fclose(f);
}
#else
#define leak_secret(d)	((void)0)
#endif

static void
direction_init(struct direction *d, const uint8_t secret[SECRET_LEN],
    int encrypt)
{
	memset(d, 0, sizeof(*d));
	if ((d->ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_CipherInit_ex(d->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL,
	    encrypt) != 1)
		crypto_fail("EVP_CipherInit_ex");
	direction_set(d, secret);
	leak_secret(d);
}

static void
direction_free(struct direction *d)
{
	EVP_CIPHER_CTX_free(d->ctx);
	OPENSSL_cleanse(d, sizeof(*d));
	d->ctx = NULL;
}

/*
 * Step d to its next secret (doc/PROTOCOL.md section 5.2):
 * S' = HKDF-Extract(salt = HKDF-Expand(S, "rekey", 32), IKM = dh).
 * The hash keeps forward secrecy, the fresh DH heals after a theft.  The
 * old secret, key and IV and the intermediate value are erased.
 */
static void
dh_ratchet(struct direction *d, const uint8_t dh[X25519_LEN])
{
	uint8_t salt[SECRET_LEN], next[SECRET_LEN];

	hkdf_expand(d->secret, "rekey", salt, SECRET_LEN);
	hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, sizeof(salt), dh,
	    X25519_LEN, NULL, 0, next, sizeof(next));
	OPENSSL_cleanse(salt, sizeof(salt));
	direction_set(d, next);
	OPENSSL_cleanse(next, sizeof(next));
	d->epoch++;
	leak_secret(d);
}

/*
 * X25519 (RFC 7748) through EVP_PKEY, for receive keys and one-time keys.
 * EVP_PKEY_free erases an X25519 private key (libcrypto keeps it in
 * cleared-on-free memory), so freeing the key is erasing it.
 */

/* The public half of key into pub. */
static void
x25519_public(EVP_PKEY *key, uint8_t pub[X25519_LEN])
{
	size_t len = X25519_LEN;

	if (EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 ||
	    len != X25519_LEN)
		crypto_fail("EVP_PKEY_get_raw_public_key");
}

/* A fresh key pair, its public half in pub unless that is NULL. */
static EVP_PKEY *
x25519_keygen(uint8_t pub[X25519_LEN])
{
	EVP_PKEY *key;

	if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) == NULL)
		crypto_fail("X25519 keygen");
	if (pub != NULL)
		x25519_public(key, pub);
	return key;
}

/*
 * out = X25519(key, peer).  Returns -1 if the result is all zero: peer is
 * a low-order point, the DH would add nothing (libcrypto refuses to derive
 * it; the zero test is kept for any provider that does not).
 */
static int
x25519(EVP_PKEY *key, const uint8_t peer[X25519_LEN], uint8_t out[X25519_LEN])
{
	static const uint8_t zero[X25519_LEN];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pub;
	size_t len = X25519_LEN;
	int ok;

	if ((pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer,
	    X25519_LEN)) == NULL || (ctx = EVP_PKEY_CTX_new(key, NULL)) == NULL ||
	    EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, pub) != 1)
		crypto_fail("X25519");
	/* With valid keys and lengths, only an all-zero result fails here. */
	ok = EVP_PKEY_derive(ctx, out, &len) == 1 && len == X25519_LEN;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pub);
	if (!ok)
		ERR_clear_error();
	if (!ok || CRYPTO_memcmp(out, zero, X25519_LEN) == 0) {
		OPENSSL_cleanse(out, X25519_LEN);
		return -1;
	}
	return 0;
}

/*
 * Is pub, a share from the peer, one of the four encodings of 9 and
 * p + 9 (doc/PROTOCOL.md 5.6)?  DH with it would be our public key:
 * the new secret would follow from public values.  Public data, so a
 * plain comparison.
 */
static int
x25519_public_equivalent(const uint8_t pub[X25519_LEN])
{
	static const uint8_t nine[X25519_LEN] = { 9 };
	static const uint8_t p9[X25519_LEN] = {
		0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	};

	/* Bit 255 is ignored by X25519: both forms of each. */
	return (memcmp(pub, nine, X25519_LEN - 1) == 0 &&
	    (pub[X25519_LEN - 1] & 0x7f) == 0) ||
	    (memcmp(pub, p9, X25519_LEN - 1) == 0 &&
	    (pub[X25519_LEN - 1] & 0x7f) == 0x7f);
}

/* REKEY checks, in the order of doc/PROTOCOL.md section 5.3. */
enum rk_result { RK_OK, RK_UNANNOUNCED, RK_RETIRED, RK_PUBLIC, RK_LOW_ORDER };

/*
 * Make key number rk->announced from key (fresh, or fixed for the
 * known-answer tests); the caller sends its public half as KEY.
 */
static void
recv_keys_add(struct recv_keys *rk, EVP_PKEY *key)
{
	uint64_t slot = rk->announced - rk->oldest;

	if (rk->announced > MAX_KEY_INDEX || slot > 1 || rk->key[slot] != NULL)
		abort();		/* more than two alive: a bug */
	rk->key[slot] = key;
	rk->announced++;
	rk->due = 0;
}

/* Erase every receive key (the peer's direction is over). */
static void
recv_keys_free(struct recv_keys *rk)
{
	EVP_PKEY_free(rk->key[0]);
	EVP_PKEY_free(rk->key[1]);
	rk->key[0] = rk->key[1] = NULL;
}

/*
 * Check a REKEY payload (REKEY_LEN bytes) and compute its DH with the
 * receive key it names.  On RK_OK the keys below that index are erased,
 * and rk->due is set if it named the newest key.
 */
static enum rk_result
recv_keys_use(struct recv_keys *rk, const uint8_t *payload,
    uint8_t dh[X25519_LEN], uint32_t *index)
{
	*index = get_u32(payload);
	if (rk->announced == 0 || *index > rk->announced - 1)
		return RK_UNANNOUNCED;
	if (*index < rk->oldest || rk->key[*index - rk->oldest] == NULL)
		return RK_RETIRED;
	if (x25519_public_equivalent(payload + INDEX_LEN))
		return RK_PUBLIC;
	if (x25519(rk->key[*index - rk->oldest], payload + INDEX_LEN, dh) == -1)
		return RK_LOW_ORDER;
	if (*index > rk->oldest) {	/* key index - 1 can never be used again */
		EVP_PKEY_free(rk->key[0]);
		rk->key[0] = rk->key[1];
		rk->key[1] = NULL;
		rk->oldest = *index;
	}
	if (*index == rk->announced - 1 && rk->announced <= MAX_KEY_INDEX)
		rk->due = 1;
	return RK_OK;
}

/*
 * The peer announced its next receive key: -1 if it had no right to yet,
 * -2 if the key is public-equivalent (section 5.6).
 */
static int
peer_keys_add(struct peer_keys *pk, const uint8_t pub[X25519_LEN])
{
	if ((pk->count > 0 && !pk->used) || pk->count > MAX_KEY_INDEX)
		return -1;
	if (x25519_public_equivalent(pub))
		return -2;
	memcpy(pk->newest, pub, X25519_LEN);
	pk->count++;
	pk->used = 0;
	return 0;
}

/*
 * A REKEY payload for the peer's newest receive key and its DH, from the
 * one-time key e, which is freed (erased) here.  -1: the peer's key is a
 * low-order point.
 */
static int
rekey_payload(struct peer_keys *pk, EVP_PKEY *e, uint8_t payload[REKEY_LEN],
    uint8_t dh[X25519_LEN])
{
	int r;

	if (pk->count == 0)
		abort();		/* no REKEY before the peer's KEY 0 */
	put_u32(payload, pk->count - 1);
	x25519_public(e, payload + INDEX_LEN);
	r = x25519(e, pk->newest, dh);
	EVP_PKEY_free(e);
	pk->used = 1;
	return r;
}

/*
 * The nonce of record seq, in d beside the IV it hides (the first one is
 * the IV): erased with it, not after each record, which costs as much as
 * computing it.
 */
static const uint8_t *
make_nonce(struct direction *d)
{
	uint8_t be[8];
	int i;

	put_u64(be, d->seq);
	memcpy(d->nonce, d->iv, IV_LEN);
	for (i = 0; i < 8; i++)
		d->nonce[IV_LEN - 8 + i] ^= be[i];
	return d->nonce;
}

/*
 * GCM's tag after sealing, read as its parameter: EVP_CTRL_GCM_GET_TAG
 * builds the same parameter at about twice the cost.  (Setting the
 * tag this way, before opening, is left to the control: under valgrind
 * EVP_CIPHER_CTX_set_params then leaves the tag check reading an
 * undefined value.)
 */
static int
gcm_get_tag(EVP_CIPHER_CTX *ctx, uint8_t tag[TAG_LEN])
{
	OSSL_PARAM p[2];

	p[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG,
	    tag, TAG_LEN);
	p[1] = OSSL_PARAM_construct_end();
	return EVP_CIPHER_CTX_get_params(ctx, p);
}

/*
 * Seal payload as one record of the given type with pad zero bytes of
 * padding into out, which has room for LEN_LEN + MAX_RECORD bytes.
 * Returns the record's length on the wire.
 */
static size_t
seal_record(struct direction *d, int type, const uint8_t *payload,
    size_t len, size_t pad, uint8_t *out)
{
	uint8_t *inner = out + LEN_LEN;
	size_t inner_len = len + 1 + pad, clen = inner_len + TAG_LEN;
	int n;

	if (len > MAX_PAYLOAD || inner_len > MAX_INNER || d->seq >= SEQ_LIMIT)
		abort();
	put_u16(out, clen);
	if (EVP_EncryptInit_ex(d->ctx, NULL, NULL, NULL, make_nonce(d)) != 1 ||
	    EVP_EncryptUpdate(d->ctx, NULL, &n, out, LEN_LEN) != 1)
		crypto_fail("AES-256-GCM encryption");
	/* A large payload is encrypted from where it lies, a small one copied. */
	if (len >= SEAL_IN_PLACE) {
		if (EVP_EncryptUpdate(d->ctx, inner, &n, payload, len) != 1)
			crypto_fail("AES-256-GCM encryption");
		inner += len;
		inner_len -= len;
		len = 0;
	} else if (len > 0)	/* CLOSE and DONE have no payload, maybe NULL */
		memcpy(inner, payload, len);
	inner[len] = type;
	memset(inner + len + 1, 0, pad);
	if (EVP_EncryptUpdate(d->ctx, inner, &n, inner, inner_len) != 1 ||
	    EVP_EncryptFinal_ex(d->ctx, inner + inner_len, &n) != 1 ||
	    gcm_get_tag(d->ctx, inner + inner_len) != 1)
		crypto_fail("AES-256-GCM encryption");
	d->seq++;
	return LEN_LEN + clen;
}

/* What opening a record found. */
enum open_result { OPEN_OK, OPEN_BAD_TAG, OPEN_NO_TYPE };

/*
 * Open the record rec (LEN_LEN + clen bytes, clen already checked) into
 * plain, which has room for MAX_INNER bytes.  OPEN_OK sets *type and *len,
 * the payload's length.  Nothing in plain may be used unless this succeeds.
 */
static enum open_result
open_record(struct direction *d, const uint8_t *rec, size_t clen,
    uint8_t *plain, int *type, size_t *len)
{
	size_t inner_len = clen - TAG_LEN;
	int n;

	if (EVP_DecryptInit_ex(d->ctx, NULL, NULL, NULL, make_nonce(d)) != 1)
		crypto_fail("AES-256-GCM decryption");
	if (EVP_DecryptUpdate(d->ctx, NULL, &n, rec, LEN_LEN) != 1 ||
	    EVP_DecryptUpdate(d->ctx, plain, &n, rec + LEN_LEN,
	    inner_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
	    (void *)(rec + LEN_LEN + inner_len)) != 1)
		crypto_fail("AES-256-GCM decryption");
	if (EVP_DecryptFinal_ex(d->ctx, plain + inner_len, &n) != 1) {
		OPENSSL_cleanse(plain, inner_len);
		return OPEN_BAD_TAG;
	}
	d->seq++;
	while (inner_len > 0 && plain[inner_len - 1] == 0)
		inner_len--;
	if (inner_len == 0)
		return OPEN_NO_TYPE;
	*type = plain[inner_len - 1];
	*len = inner_len - 1;
	return OPEN_OK;
}

/* ---------------------------------------------------------------------- */
/* §9 Buffers and blocking I/O */
/* Buffers and blocking-style I/O for the handshake and for error paths. */

#define UNCONFIRMED	"peer did not confirm receipt"

static size_t
buf_pending(const struct buf *b)
{
	return b->len - b->pos;
}

/*
 * Room at the tail of b.  Pending bytes move to the front only when the
 * tail has less than want, so a busy buffer is not copied every round.
 * Kept bytes (the retained buffer, up to megabytes) move with them only
 * when they are no more than the bytes done with before them, so that
 * each byte moves at most once per byte consumed: until then there is no
 * room, and the ACKs that free the front make it.
 */
static size_t
buf_room(struct buf *b, size_t want)
{
	size_t start = b->pos - b->keep;

	if (b->pos == b->len && b->keep == 0)
		b->pos = b->len = 0;
	else if (start > 0 && b->cap - b->len < want &&
	    (b->keep == 0 || b->len - start <= start)) {
		memmove(b->data, b->data + start, b->len - start);
		b->len -= start;
		b->pos -= start;
	}
	/*
	 * The writers of plaintext (into in and out) ask for room first,
	 * for as much as they write: all of it is in used, which conn_end
	 * wipes, and no more.
	 */
	if (b->len + want > b->used)
		b->used = b->len + want < b->cap ? b->len + want : b->cap;
	return b->cap - b->len;
}

/* When a blocked write gives up: -w seconds from now, or never. */
static int64_t
io_deadline(const struct options *opt)
{
	return opt->timeout < 0 ? INT64_MAX : deadline_in(opt->timeout);
}

/* How long a handshake may take, in seconds: -w, or 30. */
static int
handshake_secs(const struct options *opt)
{
	return opt->timeout >= 0 ? opt->timeout : DEF_HS_TIMEOUT;
}

/* Wait until fd is ready for events or the deadline passes. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int r;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if ((r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : left)) > 0)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
	}
}

/* Read exactly n bytes unless EOF comes first; returns the count or -1. */
static ssize_t
read_full(int fd, void *buf, size_t n, int64_t deadline)
{
	uint8_t *p = buf;
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if ((r = read(fd, p + got, n - got)) > 0)
			got += r;
		else if (r == 0)
			break;
		else if (errno == EAGAIN) {
			if (wait_fd(fd, POLLIN, deadline) == -1)
				return -1;
		} else if (errno != EINTR)
			return -1;
	}
	return got;
}

static int
write_full(int fd, const void *buf, size_t n, int64_t deadline)
{
	const uint8_t *p = buf;
	ssize_t r;

	while (n > 0) {
		if ((r = write(fd, p, n)) > 0) {
			p += r;
			n -= r;
		} else if (r == -1 && errno == EAGAIN) {
			if (wait_fd(fd, POLLOUT, deadline) == -1)
				return -1;
		} else if (r == -1 && errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * The written count (struct written): one place counts what leaves for
 * the output, one place says what is written for good (W).
 */

/* A new session's count; acks: a serving listener acknowledges on fd. */
static void
written_begin(struct written *w, int acks, int fd)
{
	memset(w, 0, sizeof(*w));
	w->acks = acks;
	w->ack_fd = fd;
	w->pipe_fd = -1;
	w->handed_fd = -1;
}

/* write(2) took raw bytes, payload bytes of the peer's as rendered. */
static void
written_add(struct written *w, size_t payload, size_t raw)
{
	w->payload += payload;
	w->raw += raw;
}

/*
 * W: the peer's bytes written for good.  A listener's acknowledgement
 * counts what it wrote of ours; where we rendered, it says the whole
 * of payload only once it has caught up with raw.
 */
static uint64_t
written_count(const struct written *w)
{
	size_t unread;

	if (w->acks)
		return w->caught;
	if (w->pipe_fd == -1)
		return w->payload;
	unread = os_unread(w->pipe_fd);
	return unread < w->payload ? w->payload - unread : 0;
}

/* The listener's acknowledgement: raw bytes written, a u64, big-endian. */
static void
written_acked(struct written *w, const uint8_t v[8])
{
	uint64_t n = get_u64(v);

	if (n > w->raw || n < w->acked)
		abort();		/* our listener's bug */
	w->acked = n;
	if (n == w->raw)
		w->caught = w->payload;
	else if (w->raw == w->payload)
		w->caught = n;
}

/* Read what acknowledgements came; the listener gone, no more come. */
static void
written_read_acks(struct written *w)
{
	uint8_t m[HANDOVER_LEN];
	int fds[4];
	size_t nfds, i;
	ssize_t r;

	while ((r = os_recv_fds(w->ack_fd, m, sizeof(m), fds, &nfds)) > 0) {
		if (r == 8 && nfds == 0 && w->acks)
			written_acked(w, m);
		else if (r == HANDOVER_LEN && nfds == 1 && w->handed_fd == -1) {
			w->handed_fd = fds[0];	/* a resume, for the session */
			memcpy(w->handed, m, sizeof(m));
		} else
			for (i = 0; i < nfds; i++)
				close(fds[i]);
	}
	if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR &&
	    errno != EMSGSIZE))
		w->ack_fd = -1;		/* it is gone: we will be too */
}

/*
 * The command's stdin is closed: what it had not read is not written,
 * and never will be.
 */
static void
written_pipe_closed(struct written *w)
{
	size_t unread = os_unread(w->pipe_fd);

	w->payload -= unread < w->payload ? unread : w->payload;
	w->raw = w->payload;
	w->pipe_fd = -1;
}

/* ---------------------------------------------------------------------- */
/* §10 Connection states */
/* The connection's states (struct conn's diagram): tests and transitions. */

/* May DATA still be sealed? */
static int
tx_sending(const struct conn *c)
{
	return c->tx_state == TX_OPEN || c->tx_state == TX_DRAINING;
}

/* May KEY and REKEY still be sealed (until DONE)? */
static int
tx_keying(const struct conn *c)
{
	return tx_sending(c) || c->tx_state == TX_CLOSED;
}

/* Is our direction over, well or not? */
static int
tx_over(const struct conn *c)
{
	return c->tx_state == TX_SHUT || c->tx_state == TX_FAILED;
}

/* Is the peer's direction over (DONE or END): nothing more is opened? */
static int
rx_over(const struct conn *c)
{
	return c->rx_state == RX_DONE || c->rx_state == RX_ENDED;
}

/* Has the peer sent its CLOSE (and so no more DATA)? */
static int
rx_closed(const struct conn *c)
{
	return c->rx_state == RX_CLOSED || c->rx_state == RX_DONE;
}

/* TX_OPEN -> TX_DRAINING: input is over; what it gave is still sent. */
static void
tx_input_ended(struct conn *c)
{
	if (c->tx_state == TX_OPEN)
		c->tx_state = TX_DRAINING;
}

/* TX_DRAINING -> TX_CLOSED: input all sealed, and CLOSE after it. */
static void
tx_close_sealed(struct conn *c)
{
	c->tx_state = TX_CLOSED;
}

/*
 * TX_CLOSED -> TX_DONE: the peer's whole stream is written, DONE sealed
 * to say so.  Nothing more is sealed: the sending keys go.
 */
static void
tx_done_sealed(struct conn *c)
{
	c->tx_state = TX_DONE;
	direction_free(&c->tx);
}

/*
 * TX_OPEN, TX_DRAINING or TX_CLOSED -> TX_ENDED: END sealed, nothing more
 * will be: the sending keys go.
 */
static void
tx_end_sealed(struct conn *c)
{
	c->tx_state = TX_ENDED;
	direction_free(&c->tx);
}

/*
 * TX_DONE -> TX_SHUT: DONE is in the kernel's hands, we send nothing
 * more.  The half-close is a courtesy (the peer must not need it), so
 * its failure changes nothing.
 */
static void
tx_done_sent(struct conn *c, int net)
{
	(void)shutdown(net, SHUT_WR);
	c->tx_state = TX_SHUT;
}

/* The peer's KEY 0: RX_KEY0 -> RX_OPEN, or RX_WAIT_ACK after a resume. */
static void
rx_got_key0(struct conn *c)
{
	if (c->rx_state == RX_KEY0)
		c->rx_state = c->resumed ? RX_WAIT_ACK : RX_OPEN;
}

/* The peer's first ACK on a resumed connection: RX_WAIT_ACK -> RX_OPEN. */
static void
rx_got_resume_ack(struct conn *c)
{
	c->rx_state = RX_OPEN;
	c->peer_acked = 1;
}

/* The peer's CLOSE: RX_OPEN -> RX_CLOSED. */
static void
rx_got_close(struct conn *c)
{
	c->rx_state = RX_CLOSED;
}

/*
 * The peer's DONE: RX_CLOSED -> RX_DONE.  No record can follow, so its
 * direction's keys and our receive keys are erased now.  A KEY that its
 * REKEY made due still goes out before our DONE (section 5.1: what we
 * send does not depend on how TCP cut the peer's bytes), but its private
 * half is erased at once: it can never be used.
 */
static void
rx_got_done(struct conn *c)
{
	c->rx_state = RX_DONE;
	direction_free(&c->rx);
	recv_keys_free(&c->rk);
}

/* The peer's END: RX_OPEN or RX_CLOSED -> RX_ENDED, keys as for DONE. */
static void
rx_got_end(struct conn *c)
{
	c->rx_state = RX_ENDED;
	direction_free(&c->rx);
	recv_keys_free(&c->rk);
	c->rk.due = 0;
}

/* The peer's TCP end of stream. */
static void
rx_got_eof(struct conn *c)
{
	c->rx_eof = 1;
}

/* ---------------------------------------------------------------------- */
/* §11 The view: the peer's text on a terminal */
/*
 * Text on a terminal.  What the peer sends is shown so that it cannot
 * drive the terminal: printable UTF-8 as it is, tab and newline as usual,
 * every other control character, escape sequence and invalid byte as an
 * inert marker in reverse video (^[, \x9b, <U+202E>).  Otherwise the peer
 * could move the cursor, forge our messages, set the window title or make
 * the terminal type an answer (to \033[6n, \033[c) into our own stdin.
 * Files and pipes get the bytes unchanged: none of this runs for them.
 */

#define UTF8_BAD	(-1)
#define UTF8_SHORT	0

/*
 * One UTF-8 character at p[0..n): its length and code point, UTF8_SHORT if
 * p ends inside a character that may still be valid, UTF8_BAD for anything
 * else (stray continuation byte, overlong form, surrogate, > U+10FFFF).
 */
static int
utf8_decode(const uint8_t *p, size_t n, uint32_t *cp)
{
	static const uint32_t least[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t c;
	int len, i;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, c = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, c = p[0] & 0x07;
	else
		return UTF8_BAD;
	for (i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return UTF8_SHORT;
		if ((p[i] & 0xc0) != 0x80)
			return UTF8_BAD;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < least[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return UTF8_BAD;
	*cp = c;
	return len;
}

/*
 * Columns a character takes on the terminal, -1 if it must not reach it:
 * controls (C0, DEL, C1), what the locale cannot print, and the bidi
 * controls that make text read in another order than it was sent.
 */
static int
char_width(uint32_t c)
{
	if (c < 0x20 || (c >= 0x7f && c < 0xa0) || c == 0x061c ||
	    c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
	    (c >= 0x2066 && c <= 0x2069))
		return -1;
	return wcwidth((wchar_t)c);
}

/* A pictograph, as emoji sequences join them (an approximation). */
static int
pictograph(uint32_t c)
{
	return (c >= 0x1f000 && c <= 0x1faff) || (c >= 0x2600 && c <= 0x27bf);
}

/*
 * Characters that show nothing, so that text with them looks like other
 * text: zero-width spaces and joiners, the word joiner, the byte order
 * mark, tags and the Hangul fillers.  A joiner after a pictograph joins an
 * emoji sequence (👨‍👩‍👧) and is shown as it is.
 */
static int
invisible(uint32_t c, uint32_t prev)
{
	if (c == 0x200d)
		return !pictograph(prev) && !(prev >= 0x1f3fb && prev <= 0x1f3ff) &&
		    prev != 0xfe0f;
	return c == 0x200b || c == 0x200c || c == 0x2060 || c == 0xfeff ||
	    (c >= 0xe0000 && c <= 0xe007f) || c == 0x115f || c == 0x1160 ||
	    c == 0x3164 || c == 0xffa0;
}

/* Columns of UTF-8 text that we wrote ourselves (a name). */
static int
text_cols(const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s);
	uint32_t cp;
	int cols = 0, len, w;

	while (n > 0) {
		if ((len = utf8_decode(p, n, &cp)) <= 0)
			len = 1, cp = '?';
		if ((w = char_width(cp)) > 0)
			cols += w;
		p += len;
		n -= len;
	}
	return cols;
}

/*
 * A row that continues the one above: indented under the text and marked,
 * so that no text of the peer's ever starts a row, where it could pass for
 * a line of ours ("12:01 you> ...", "secchat: ...").
 */
static char *
view_wrap(struct view *v, char *p)
{
	int indent = v->label_w - 2 > v->cols / 2 ? 0 : v->label_w - 2;

	if (indent < 0)
		indent = 0;
	p = stpcpy(p, "\r\n");
	memset(p, ' ', indent);
	p = stpcpy(p + indent, "\033[2m\u21b3\033[22m ");	/* "↳ " */
	v->col = indent + 2;
	return p;
}

/* Make room for w columns on the row: past its end, a continuation row. */
static char *
view_fit(struct view *v, char *p, int w)
{
	if (v->col > 0 && v->col + w > v->cols)
		p = view_wrap(v, p);
	v->col += w;
	return p;
}

/* Append a marker for what may not be shown as it is. */
static char *
mark(struct view *v, char *p, const char *fmt, unsigned val)
{
	char text[MARK_MAX - 12];
	int n = snprintf(text, sizeof(text), fmt, val);

	p = view_fit(v, p, n);
	p = stpcpy(p, "\033[7m");
	p = stpcpy(p, text);
	return stpcpy(p, "\033[27m");
}

static char *
label(char *p, const char *who)
{
	struct timespec ts = { 0, 0 };
	struct tm tm;
	time_t t;

	/* Not time(2): without a vDSO it is a call the sandbox lacks. */
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	t = ts.tv_sec;
	if (localtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	return p + snprintf(p, LABEL_MAX, "%02d:%02d %s> ", tm.tm_hour,
	    tm.tm_min, who);
}

/*
 * The oldest record's ciphertext, dim, after the row's text: its size and
 * as much of its hex as the row has room for ("   ‹82 B 00503c34f2…›").
 */
static char *
view_annot(struct view *v, char *p)
{
	const struct annot *a = &v->annot[0];
	char size[32];
	int sn = snprintf(size, sizeof(size), "\u2039%zu B ", a->size);
	int cols = sn - 2, room = v->cols - v->col - 3, digits;

	if (room < cols + 4 + 2) {	/* not even 4 digits: a row of its own */
		p = view_wrap(v, p);
		room = v->cols - v->col - 1;
	} else {
		p = stpcpy(p, "   ");
		v->col += 3;
	}
	digits = (room - cols - 2) / 2 * 2;
	if (digits < 4)
		digits = 4;
	if ((size_t)digits > 2 * sizeof(a->rec))
		digits = 2 * sizeof(a->rec);
	p = stpcpy(stpcpy(p, "\033[2m"), size);
	p = hex_encode(p, a->rec, digits / 2);
	p = stpcpy(p, "\u2026\u203a\033[22m");	/* "…›" */
	v->col += cols + digits + 2;
	memmove(v->annot, v->annot + 1, --v->nannot * sizeof(v->annot[0]));
	v->annot_due = 0;
	return p;
}

/* Show a record's ciphertext where its next plen bytes of text end. */
static void
view_annotate(struct view *v, const uint8_t *rec, size_t n, size_t plen)
{
	struct annot *a;

	if (v->nannot == ANNOTS) {	/* too far behind: the oldest goes */
		memmove(v->annot, v->annot + 1, --v->nannot * sizeof(*a));
		v->annot_due = 0;
	}
	a = &v->annot[v->nannot++];
	a->end = v->taken + plen;
	a->size = n;
	memset(a->rec, 0, sizeof(a->rec));
	memcpy(a->rec, rec, n < sizeof(a->rec) ? n : sizeof(a->rec));
	if (v->nannot == 1 && plen == 0)
		v->annot_due = 1;
}

/* n more input bytes taken: has the oldest record's text all been shown? */
static void
view_take(struct view *v, size_t n)
{
	v->taken += n;
	if (v->nannot > 0 && v->taken >= v->annot[0].end)
		v->annot_due = 1;
}

/* The end of a row: the ciphertext of the record that ended on it. */
static char *
view_row_end(struct view *v, char *p)
{
	if (v->annot_due)
		p = view_annot(v, p);
	v->col = 0;
	return stpcpy(p, "\n");
}

/* A tab: spaces to the next stop, counted from where the text starts. */
static char *
view_tab(struct view *v, char *p)
{
	int from = v->col > v->label_w ? v->col - v->label_w : 0;
	int n = TAB_W - from % TAB_W;

	if (v->col + n > v->cols) {
		p = view_wrap(v, p);
		return p;
	}
	memset(p, ' ', n);
	v->col += n;
	return p + n;
}

/* Render one character c[0..n) (n = 1 unless UTF-8) into p. */
static char *
render_char(struct view *v, const uint8_t *c, int n, uint32_t cp, char *p)
{
	uint32_t prev = v->prev;
	int w;

	if (v->cr && cp != '\n')
		p = mark(v, p, "^M", 0);
	v->cr = 0;
	v->prev = n == UTF8_BAD ? 0 : cp;
	if (cp == '\r') {
		v->cr = 1;
		return p;
	}
	if (v->line_start && v->labels) {
		p = label(p, v->peer);
		v->col = v->label_w;
	}
	v->line_start = cp == '\n';
	if (n == UTF8_BAD)
		return mark(v, p, "\\x%02x", c[0]);
	if (cp == '\n')
		return view_row_end(v, p);
	if (cp == '\t')
		return view_tab(v, p);
	w = char_width(cp);
	if (w >= 0 && !(v->ascii && cp >= 0x80) && !invisible(cp, prev)) {
		/* VS16 may make the terminal draw the one before wider. */
		p = view_fit(v, p, w + (cp == 0xfe0f));
		memcpy(p, c, n);
		return p + n;
	}
	if (cp < 0x20 || cp == 0x7f)
		return mark(v, p, "^%c", cp ^ 0x40);
	return mark(v, p, "<U+%04X>", cp);
}

/*
 * Render in[0..n) into out[0..cap), cap >= VIEW_MIN; return how many
 * input bytes were used and set *used to the output's length.
 */
static size_t
view_render(struct view *v, const uint8_t *in, size_t n, char *out,
    size_t cap, size_t *used)
{
	char *p = out;
	uint32_t cp;
	size_t i = 0, j;
	int len;

	/* A cut character that turns out bad shows up to four markers. */
	while (i < n && (size_t)(p - out) <= cap - VIEW_MIN) {
		if (v->part_len > 0) {	/* complete the cut character */
			v->part[v->part_len++] = in[i++];
			view_take(v, 1);
			len = utf8_decode(v->part, v->part_len, &cp);
			if (len == UTF8_SHORT)
				continue;
			if (len != UTF8_BAD)
				p = render_char(v, v->part, len, cp, p);
			else {	/* all but the last were continuations */
				for (j = 0; j + 1 < v->part_len; j++)
					p = render_char(v, v->part + j,
					    UTF8_BAD, 0, p);
				i--;
				v->taken--;
			}
			v->part_len = 0;
			continue;
		}
		len = utf8_decode(in + i, n - i, &cp);
		if (len == UTF8_SHORT) {
			memcpy(v->part, in + i, n - i);
			v->part_len = n - i;
			view_take(v, n - i);
			i = n;
			break;
		}
		view_take(v, len == UTF8_BAD ? 1 : len);
		p = render_char(v, in + i, len, cp, p);
		i += len == UTF8_BAD ? 1 : len;
	}
	*used = p - out;
	return i;
}

/*
 * The row being written ends here (a line of ours follows, or the text is
 * over): its ciphertext, and the newline.  The length written to out.
 */
static size_t
view_end_row(struct view *v, char *out)
{
	char *p = out;

	if (v->line_start)
		return 0;
	v->line_start = 1;
	return view_row_end(v, p) - out;
}

/* At the end of the peer's text: show what is left of a cut character. */
static size_t
view_flush(struct view *v, char *out)
{
	char *p = out;
	size_t i;

	for (i = 0; i < v->part_len; i++)
		p = render_char(v, v->part + i, UTF8_BAD, 0, p);
	v->part_len = 0;
	if (v->cr)
		p = mark(v, p, "^M", 0);
	v->cr = 0;
	if (v->nannot > 0)
		v->annot_due = 1;
	return p - out;
}

/* ---------------------------------------------------------------------- */
/* §12 The line editor */
/*
 * The chat line editor, when stdin and stdout are one terminal.  secchat
 * echoes and edits the line being typed itself, below the conversation:
 * arriving text is printed above it and the line is drawn again.  Widths
 * come from wcwidth, so wide characters and lines longer than the terminal
 * are drawn right; every row the line takes is redrawn.  Keys it does not
 * know, escape sequences included, are dropped, never sent.  (libedit's
 * readline interface was tried first: in callback mode it inserts unknown
 * sequences and ^L as text and does not redraw wrapped rows.)
 */

static void
ed_put(struct editor *e, const void *p, size_t n)
{
	if (e->draw_len + n <= sizeof(e->draw)) {
		memcpy(e->draw + e->draw_len, p, n);
		e->draw_len += n;
	}
}

static void
ed_flush(struct editor *e)
{
	(void)write_full(e->fd, e->draw, e->draw_len, INT64_MAX);
	OPENSSL_cleanse(e->draw, e->draw_len);
	e->draw_len = 0;
}

/*
 * Width of line[i..) 's character at i, and its length in bytes; a tab's
 * width is where it is (ed_tab).
 */
static int
ed_char(const struct editor *e, size_t i, int *w)
{
	uint32_t cp;
	int n = utf8_decode(e->line + i, e->len - i, &cp);

	/* The line holds only what ed_insert let in: valid and printable. */
	*w = cp == '\t' ? 1 : char_width(cp);
	return n;
}

/* The spaces a tab at text column x stands for, as the view shows it. */
static int
ed_tab(int x)
{
	return TAB_W - x % TAB_W;
}

/* Row and column of line[upto], the prompt taking the first columns. */
static void
ed_pos(const struct editor *e, size_t upto, int *row, int *col)
{
	size_t i = 0;
	int r = 0, c = PROMPT_W, w, x = 0, k;

	while (i < upto) {
		if (e->line[i] == '\t') {	/* spaces, each may wrap */
			for (k = ed_tab(x), x += k, i++; k > 0; k--, c++)
				if (c + 1 > e->cols)
					r++, c = 0;
			continue;
		}
		i += ed_char(e, i, &w);
		if (c + w > e->cols)		/* the terminal wraps it */
			r++, c = 0;
		c += w;
		x += w;
	}
	if (c >= e->cols)
		r++, c = 0;
	*row = r;
	*col = c;
}

static void
ed_move(struct editor *e, const char *fmt, int n)
{
	char seq[16];

	if (n > 0)
		ed_put(e, seq, snprintf(seq, sizeof(seq), fmt, n));
}

/*
 * After a resize (keys may come before its SIGWINCH is seen), the terminal
 * has reflowed the line's rows, as tmux, VTE, kitty and others do: find
 * them, and the cursor's row, at the new width.
 */
static void
ed_reflow(struct editor *e)
{
	int cols = term_cols(e->fd), col;

	if (cols == e->cols)
		return;
	e->cols = cols;
	if (e->shown) {
		ed_pos(e, e->cur, &e->row, &col);
		ed_pos(e, e->len, &e->rows, &col);
		e->rows++;
	}
}

/*
 * Take the line off the screen, row by row (tmux moves a screen cleared
 * with \033[J from its top into the scrollback); the cursor ends at the
 * start of the line's first row.
 */
static void
ed_unshow(struct editor *e)
{
	int i;

	if (!e->shown)
		return;
	ed_reflow(e);
	ed_move(e, "\033[%dA", e->row);
	for (i = 0; i < e->rows; i++)
		ed_put(e, i == 0 ? "\r\033[K" : "\033[B\033[K",
		    i == 0 ? 4 : 6);
	ed_move(e, "\033[%dA", e->rows - 1);
	e->shown = e->row = e->rows = 0;
}

static void
ed_hide(struct editor *e)
{
	ed_unshow(e);
	ed_flush(e);
}

/* The line as it is drawn: tabs as spaces to the next stop. */
static void
ed_put_line(struct editor *e)
{
	static const char spaces[TAB_W + 1] = "        ";
	size_t i = 0, from = 0;
	int x = 0, w;

	while (i < e->len) {
		if (e->line[i] == '\t') {
			ed_put(e, e->line + from, i - from);
			ed_put(e, spaces, ed_tab(x));
			x += ed_tab(x);
			from = ++i;
			continue;
		}
		i += ed_char(e, i, &w);
		x += w;
	}
	ed_put(e, e->line + from, e->len - from);
}

/* Draw the prompt and the whole line, then put the cursor in place. */
static void
ed_show(struct editor *e)
{
	int er, ec, cr, cc;

	if (e->shown)
		return;
	e->cols = term_cols(e->fd);
	ed_put(e, PROMPT, PROMPT_W);
	ed_put_line(e);
	ed_pos(e, e->len, &er, &ec);
	if (ec == 0)		/* out of the last column's pending wrap */
		ed_put(e, "\r\n", 2);
	ed_pos(e, e->cur, &cr, &cc);
	ed_move(e, "\033[%dA", er - cr);
	ed_put(e, "\r", 1);
	ed_move(e, "\033[%dC", cc);
	ed_flush(e);
	e->row = cr;
	e->rows = er + 1;
	e->shown = 1;
}

/* The line stays on the screen as it is (not sent), the cursor below. */
static void
ed_leave(struct editor *e)
{
	int row, col;

	e->cur = e->len;
	ed_show(e);
	ed_pos(e, e->len, &row, &col);
	if (col != 0)
		ed_put(e, "\r\n", 2);
	ed_flush(e);
	e->shown = 0;
}

/* In one write, so that the line does not flicker as keys come. */
static void
ed_redraw(struct editor *e)
{
	ed_unshow(e);
	ed_show(e);
}

/*
 * Draw the line again if the terminal was resized: ed_unshow finds it
 * where the resize put it.
 */
static void
ed_resize(struct editor *e)
{
	if (term_cols(e->fd) != e->cols)
		ed_redraw(e);
}

static void
ed_set(struct editor *e, const void *p, size_t n)
{
	memcpy(e->line, p, n);
	e->len = e->cur = n;
}

/*
 * Grapheme clusters, as people see characters: a letter with its marks, an
 * emoji with its skin tone (👍🏽), a flag (🇫🇷), an emoji sequence joined
 * with U+200D (👨‍👩‍👧).  The boundaries are UAX #29's extended ones, by
 * utf8proc (a maintained table: hand-written rules missed the spacing
 * marks of Indic scripts and the rules for joiners); from the start of the
 * line, as a boundary depends on what came before (a flag's pair).
 * *next is where the cluster at or after i ends; the return value is
 * where the cluster that ends at or before i starts.
 */
static size_t
ed_clusters(const struct editor *e, size_t i, size_t *next)
{
	utf8proc_int32_t state = 0, prev = -1, cp;
	size_t at = 0, start = 0;
	int n;

	*next = e->len;
	while (at < e->len) {
		/* The line holds only what ed_insert let in: valid. */
		n = utf8_decode(e->line + at, e->len - at, (uint32_t *)&cp);
		if (prev != -1 && utf8proc_grapheme_break_stateful(prev, cp,
		    &state)) {
			if (at < i)
				start = at;
			else if (at > i) {
				*next = at;
				break;
			}
		}
		prev = cp;
		at += n;
	}
	return start;
}

/* The start of the grapheme cluster before i. */
static size_t
ed_left(const struct editor *e, size_t i)
{
	size_t next;

	return ed_clusters(e, i, &next);
}

/* The end of the grapheme cluster at i. */
static size_t
ed_right(const struct editor *e, size_t i)
{
	size_t next;

	(void)ed_clusters(e, i, &next);
	return i < e->len ? next : i;
}

/* Remove line[from..to). */
static void
ed_cut(struct editor *e, size_t from, size_t to)
{
	memmove(e->line + from, e->line + to, e->len - to);
	e->len -= to - from;
	OPENSSL_cleanse(e->line + e->len, to - from);
	e->cur = from;
}

static size_t
ed_word_left(const struct editor *e, size_t i)
{
	while (i > 0 && e->line[i - 1] == ' ')
		i--;
	while (i > 0 && e->line[i - 1] != ' ')
		i--;
	return i;
}

static void
ed_insert(struct editor *e, const uint8_t *c, size_t n)
{
	if (e->len + n > sizeof(e->line)) {
		ed_put(e, "\a", 1);	/* full: say so, keep the line */
		return;
	}
	memmove(e->line + e->cur + n, e->line + e->cur, e->len - e->cur);
	memcpy(e->line + e->cur, c, n);
	e->len += n;
	e->cur += n;
}

/* Up (-1) and Down (+1) through the lines sent in this session. */
static void
ed_history(struct editor *e, int step)
{
	int to = e->hpos + step;

	if (to < 0 || to > e->nhist)
		return;
	if (e->hpos == e->nhist) {
		memcpy(e->draft, e->line, e->len);
		e->draft_len = e->len;
	}
	e->hpos = to;
	if (to == e->nhist)
		ed_set(e, e->draft, e->draft_len);
	else
		ed_set(e, e->hist[to], e->hist_len[to]);
}

static void
ed_remember(struct editor *e)
{
	char *copy;

	if (e->len == 0 || (copy = malloc(e->len)) == NULL)
		return;
	memcpy(copy, e->line, e->len);
	if (e->nhist == HISTORY_MAX) {
		OPENSSL_cleanse(e->hist[0], e->hist_len[0]);
		free(e->hist[0]);
		memmove(e->hist, e->hist + 1, sizeof(e->hist[0]) * --e->nhist);
		memmove(e->hist_len, e->hist_len + 1,
		    sizeof(e->hist_len[0]) * e->nhist);
	}
	e->hist[e->nhist] = copy;
	e->hist_len[e->nhist++] = e->len;
	e->hpos = e->nhist;
}

/* A complete escape sequence: the keys among them move the cursor. */
static void
ed_sequence(struct editor *e, int final)
{
	const char *p = e->csi;

	if (final == 'D')
		e->cur = ed_left(e, e->cur);
	else if (final == 'C')
		e->cur = ed_right(e, e->cur);
	else if (final == 'A')
		ed_history(e, -1);
	else if (final == 'B')
		ed_history(e, 1);
	else if (final == 'H' || (final == '~' && (!strcmp(p, "1") ||
	    !strcmp(p, "7"))))
		e->cur = 0;
	else if (final == 'F' || (final == '~' && (!strcmp(p, "4") ||
	    !strcmp(p, "8"))))
		e->cur = e->len;
	else if (final == '~' && !strcmp(p, "3") && e->cur < e->len)
		ed_cut(e, e->cur, ed_right(e, e->cur));
}

/* Inside an escape sequence: 1 while the byte belongs to one. */
static int
ed_escape(struct editor *e, uint8_t c)
{
	switch (e->key) {
	case KEY_TEXT:
		if (c != 0x1b)
			return 0;
		e->key = KEY_ESC;
		return 1;
	case KEY_ESC:
		e->csi_len = 0;
		e->csi[0] = '\0';
		/* CSI, SS3; OSC, DCS, APC, PM, SOS run to their ST. */
		e->key = c == '[' ? KEY_CSI : c == 'O' ? KEY_SS3 :
		    (c == ']' || c == 'P' || c == '_' || c == '^' ||
		    c == 'X') ? KEY_STRING : KEY_TEXT;	/* Alt-c: dropped */
		return 1;
	case KEY_CSI:
		if (c >= 0x40 && c <= 0x7e) {
			ed_sequence(e, c);
			e->key = KEY_TEXT;
		} else if (c < 0x20 || c > 0x3f)	/* not a sequence */
			e->key = c == 0x1b ? KEY_ESC : KEY_TEXT;
		else if (e->csi_len + 1 < sizeof(e->csi)) {
			e->csi[e->csi_len++] = c;
			e->csi[e->csi_len] = '\0';
		}
		return 1;
	case KEY_SS3:
		e->csi[0] = '\0';
		ed_sequence(e, c);
		e->key = KEY_TEXT;
		return 1;
	case KEY_STRING:
		if (c == 0x07)
			e->key = KEY_TEXT;
		else if (c == 0x1b)
			e->key = KEY_STRING_ESC;
		return 1;
	case KEY_STRING_ESC:
		e->key = c == '\\' ? KEY_TEXT : KEY_STRING;
		return 1;
	}
	return 0;
}

/* A control key: edit the line, or drop it. */
static int
ed_control(struct editor *e, uint8_t c)
{
	if (c == '\r' || c == '\n')
		return ED_LINE;
	if (c == e->intr || c == 0x03)
		return ED_INTR;
	if (c == '\t') {
		ed_insert(e, &c, 1);	/* sent as typed, shown as spaces */
		return ED_NONE;
	}
	if (c == e->eof || c == 0x04) {
		if (e->len == 0)
			return ED_EOF;
		if (e->cur < e->len)
			ed_cut(e, e->cur, ed_right(e, e->cur));
	} else if (c == e->erase || c == 0x7f || c == '\b') {
		if (e->cur > 0)
			ed_cut(e, ed_left(e, e->cur), e->cur);
	} else if (c == e->werase || c == 0x17)
		ed_cut(e, ed_word_left(e, e->cur), e->cur);
	else if (c == e->kill || c == 0x15)
		ed_cut(e, 0, e->cur);
	else if (c == 0x0b)				/* ^K */
		ed_cut(e, e->cur, e->len), e->cur = e->len;
	else if (c == 0x01)				/* ^A */
		e->cur = 0;
	else if (c == 0x05)				/* ^E */
		e->cur = e->len;
	else if (c == 0x02)				/* ^B */
		e->cur = ed_left(e, e->cur);
	else if (c == 0x06)				/* ^F */
		e->cur = ed_right(e, e->cur);
	else if (c == 0x10)				/* ^P */
		ed_history(e, -1);
	else if (c == 0x0e)				/* ^N */
		ed_history(e, 1);
	/* ^L and all else: only the redraw that follows every key. */
	return ED_NONE;
}

/*
 * One typed byte.  ED_LINE: the line in e->line is entered (the caller
 * takes it, then calls ed_done); ED_EOF: ^D on an empty line.
 */
static int
ed_key(struct editor *e, uint8_t c)
{
	uint32_t cp;
	int n;

	if (ed_escape(e, c))
		return ED_NONE;
	if (e->typed_len > 0 || c >= 0x80) {
		e->typed[e->typed_len++] = c;
		if ((n = utf8_decode(e->typed, e->typed_len, &cp)) ==
		    UTF8_SHORT)
			return ED_NONE;
		if (n > 0 && char_width(cp) >= 0)
			ed_insert(e, e->typed, n);
		e->typed_len = 0;	/* anything else is dropped */
		return ED_NONE;
	}
	if (c < 0x20 || c == 0x7f)
		return ed_control(e, c);
	ed_insert(e, &c, 1);
	return ED_NONE;
}

/* The entered line was taken: remember it, start an empty one. */
static void
ed_done(struct editor *e)
{
	ed_remember(e);
	OPENSSL_cleanse(e->line, e->len);
	OPENSSL_cleanse(e->draft, e->draft_len);
	e->len = e->cur = e->draft_len = 0;
}

/* The terminal's key for a function, or ours if it has none. */
static cc_t
cc_or(const struct termios *t, int which, cc_t dflt)
{
	return t->c_cc[which] == _POSIX_VDISABLE ? dflt : t->c_cc[which];
}

static void
ed_init(struct editor *e, int fd, const struct termios *t)
{
	memset(e, 0, sizeof(*e));
	e->fd = fd;
	e->erase = cc_or(t, VERASE, 0x7f);
	e->werase = cc_or(t, VWERASE, 0x17);
	e->kill = cc_or(t, VKILL, 0x15);
	e->eof = cc_or(t, VEOF, 0x04);
	e->intr = cc_or(t, VINTR, 0x03);
	e->cols = term_cols(fd);
}

static void
ed_free(struct editor *e)
{
	int i;

	for (i = 0; i < e->nhist; i++) {
		OPENSSL_cleanse(e->hist[i], e->hist_len[i]);
		free(e->hist[i]);
	}
	OPENSSL_cleanse(e, sizeof(*e));
}

/* ---------------------------------------------------------------------- */
/* §13 The chat at a terminal */
/*
 * The chat at a terminal: the editor's line below the conversation, the
 * peer's lines and ours labelled with the time and who said them.
 */

static void
echo(struct chat *t, const char *p, size_t n)
{
	(void)write_full(t->fd, p, n, INT64_MAX);	/* a terminal */
}

/* Resizes interrupt poll, and the loop draws the line again. */
static void
on_winch(int sig)
{
	(void)sig;
}

/* Will stdin and stdout be a chat (see session_alloc)? */
static int
chat_terminal(const struct options *opt)
{
	return isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) && !opt->bflag &&
	    opt->command == NULL;
}

static void
winch_handler(void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;	/* no SA_RESTART: poll returns */
	(void)sigaction(SIGWINCH, &sa, NULL);
}

/*
 * The editor for a session whose keys come from in_fd.  Without the
 * terminal's modes there is no editor: the chat goes on in plain lines.
 * (SIGWINCH's handler cannot fail to install: the signal is valid.)
 */
static void
editor_start(struct chat *t, int in_fd)
{
	if (!t->edit || keys_raw(in_fd, KEYS_CHAT) == -1) {
		t->edit = 0;
		return;
	}
	ed_init(&t->ed, t->fd, &restore.tty);
	winch_handler(on_winch);
}

/* Take the line off the screen before other output ... */
static void
editor_hide(struct chat *t)
{
	if (t->edit)
		ed_hide(&t->ed);
}

/* ... (the report's hook) ... */
static void
editor_hide_hook(void *t)
{
	editor_hide(t);
}

/* ... and before a line of ours: the peer's unfinished line ends there. */
static void
chat_new_row(struct chat *t)
{
	char end[ANNOT_MAX + WRAP_MAX + 1];

	echo(t, end, view_end_row(&t->view, end));
}

/* Put the line back after other output, while there is input to edit. */
static void
editor_show(struct chat *t, int open)
{
	if (!t->edit || !open || t->interrupted)
		return;
	ed_resize(&t->ed);
	if (t->ed.shown)
		return;
	chat_new_row(t);
	ed_show(&t->ed);
}

/*
 * An entered line: queued to be sent.  It is shown as ours, with the time,
 * once it is sealed (chat_row), with its ciphertext.
 */
static void
own_line(struct chat *t, struct buf *in)
{
	struct editor *e = &t->ed;

	/* Up and Enter repeat a long line fast: past the room, keep it. */
	if (buf_room(in, e->len + 1) < e->len + 1) {
		ed_put(e, "\a", 1);
		return;
	}
	memcpy(in->data + in->len, e->line, e->len);
	in->len += e->len;
	in->data[in->len++] = '\n';
	ed_done(e);
}

/* A line of ours, sealed as rec[0..n): shown with its time (and hex). */
static void
own_row(struct chat *t, const uint8_t *line, size_t len, const uint8_t *rec,
    size_t n)
{
	char shown[VIEW_CHUNK];
	size_t used, i = 0;

	editor_hide(t);
	chat_new_row(t);
	t->mine.cols = term_cols(t->fd);
	t->mine.line_start = 1;
	if (t->annotate)
		view_annotate(&t->mine, rec, n, len);
	while (i < len) {
		i += view_render(&t->mine, line + i, len - i, shown,
		    sizeof(shown), &used);
		echo(t, shown, used);
	}
	echo(t, shown, view_end_row(&t->mine, shown));
	OPENSSL_cleanse(shown, sizeof(shown));
}

/*
 * The report's hook for each record sealed (dir '>') or opened ('<'): our
 * DATA, when the editor made it, is shown as our line; with annotate, a
 * DATA record's ciphertext goes on the row of its text, and 1 says that
 * it needs no hex line of its own.
 */
static int
chat_row(void *arg, int dir, int type, const uint8_t *plain, size_t plen,
    const uint8_t *rec, size_t n)
{
	struct chat *t = arg;

	if (type != TYPE_DATA)
		return 0;
	if (dir == '>' && t->edit) {
		own_row(t, plain, plen, rec, n);
		return t->annotate;
	}
	if (dir == '<' && t->annotate) {
		view_annotate(&t->view, rec, n, plen);
		return 1;
	}
	return 0;
}

/*
 * ^C in the chat, read as a key (keys_raw): the line being typed leaves
 * the screen, unsent, the chat says so, and SIGINT does the rest, as it
 * would have done outside the chat.
 */
static void
chat_interrupt(struct chat *t)
{
	static const char said[] = "secchat: you interrupted the chat\n";

	t->interrupted = 1;
	editor_hide(t);
	ed_cut(&t->ed, 0, t->ed.len);
	chat_new_row(t);
	echo(t, said, sizeof(said) - 1);
	(void)raise(SIGINT);
}

/* Typed keys: Enter sends the line, ^D on an empty line ends input. */
static void
editor_input(struct chat *t, struct conn *c, struct buf *in,
    const uint8_t *p, size_t n)
{
	size_t i;
	int r;

	for (i = 0; i < n && c->tx_state == TX_OPEN && !t->interrupted; i++) {
		if ((r = ed_key(&t->ed, p[i])) == ED_EOF)
			tx_input_ended(c);
		else if (r == ED_LINE)
			own_line(t, in);
		else if (r == ED_INTR)
			chat_interrupt(t);
	}
	if (t->ed.shown)
		ed_redraw(&t->ed);
}

/* Stdin's bytes of room that one read needs: a whole line when editing. */
static size_t
stdin_room(const struct chat *t)
{
	return t->edit ? EDIT_MAX + 2 * KEYS_MAX : 1;
}

/*
 * The chat is over: the terminal as it was.  1 if a line was being typed,
 * and so was not sent.
 */
static int
editor_stop(struct chat *t)
{
	int typed;

	if (!t->edit || restore.tty_changed == 0)
		return 0;
	typed = t->ed.len > 0;
	ed_hide(&t->ed);
	if (typed) {		/* it stays, as it was, the note below it */
		chat_new_row(t);
		ed_leave(&t->ed);
	}
	ed_free(&t->ed);
	restore_tty();
	winch_handler(SIG_DFL);
	return typed;
}

/*
 * A -k listener at a terminal between chats: wait for the next connection
 * (0), or ^D, which ends the listener (-1).  Keys typed meanwhile stay
 * queued for the next chat, and so does a line entered.
 */
static int
chat_wait_next(int lfd, int in_fd)
{
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
	    { .fd = in_fd, .events = POLLIN } };
	int queued;
	char c;

	if (keys_raw(in_fd, KEYS_LINE) == -1)
		return 0;
	while (p[0].revents == 0) {
		if (poll(p, 2, -1) == -1 && errno != EINTR)
			break;
		if (p[1].revents == 0)
			continue;
		/* Readable with nothing queued: ^D on an empty line. */
		if (ioctl(in_fd, FIONREAD, &queued) == 0 && queued == 0 &&
		    read(in_fd, &c, 1) <= 0)
			return -1;
		p[1].fd = -1;		/* a line: the next chat's */
	}
	return 0;
}

/*
 * The peer's text to the terminal, rendered inert.  The terminal blocks
 * (set_nonblocking leaves it), so each piece is written whole.  Returns
 * the bytes written, as rendered, or -1.
 */
static ssize_t
write_terminal(struct chat *t, struct buf *out, int64_t deadline)
{
	char shown[VIEW_CHUNK];
	size_t used, n;
	int r;

	editor_hide(t);
	t->view.cols = term_cols(t->fd);
	n = view_render(&t->view, out->data + out->pos, buf_pending(out),
	    shown, sizeof(shown), &used);
	out->pos += n;
	r = write_full(t->fd, shown, used, deadline);
	OPENSSL_cleanse(shown, used);
	return r == -1 ? -1 : (ssize_t)used;
}

/* Once the peer's text is over: what was left of a cut character. */
static void
end_terminal(struct chat *t, struct buf *out, int64_t deadline)
{
	char shown[VIEW_MIN];
	size_t n;

	while (buf_pending(out) > 0 && write_terminal(t, out, deadline) != -1)
		;
	n = view_flush(&t->view, shown);
	n += view_end_row(&t->view, shown + n);
	(void)write_full(t->fd, shown, n, deadline);
}

/*
 * Who says the lines: the peer's name, shown with its lines, and "you".
 * Bytes a terminal would take as controls become "?".
 */
static void
chat_begin(struct chat *t, const char *name)
{
	struct view *v = &t->view;
	char *p;

	memset(v, 0, sizeof(*v));
	v->labels = 1;
	/* In another charset, UTF-8 bytes could be C1 controls (0x9b: CSI). */
	v->ascii = strcmp(nl_langinfo(CODESET), "UTF-8") != 0;
	v->line_start = 1;
	memcpy(v->peer, name, strnlen(name, NAME_MAX_W));
	for (p = v->peer; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	v->label_w = 8 + text_cols(v->peer);	/* "HH:MM NAME> " */
	v->cols = term_cols(t->fd);
	t->mine = *v;
	t->interrupted = 0;
	strcpy(t->mine.peer, "you");
	t->mine.label_w = 11;
}

/*
 * The chat's hooks in the report: its line off the screen before other
 * output, and our lines shown as they are sealed.  A record's ciphertext
 * goes on the row of its text when its hex would go to the same terminal
 * as one row (not -x, not -q).
 */
static void
chat_report(struct chat *t, struct report *r, int out_tty)
{
	t->annotate = out_tty && r->hex && r->tty && !r->all_hex;
	if (t->edit)
		r->hide = editor_hide_hook;
	if (t->edit || t->annotate)
		r->row = chat_row;
	r->hide_arg = t;
}

/* ---------------------------------------------------------------------- */
/* §14 Progress */
/*
 * The live rows at the bottom of stderr, when it is a terminal: the latest
 * DATA record's row (a bulk transfer shows one row that changes, not one
 * per record), and the progress of a transfer (-v, not a chat).  They are
 * drawn again four times a second, taken off before any other output
 * there, and at the end the progress line stays with the final figures.
 */

#define PROGRESS_MS	250

/* n bytes as people read them: "512 B", "12.3 MiB". */
static char *
put_size(char *p, double n)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;

	while (n >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0]))
		n /= 1024, u++;
	return p + sprintf(p, u == 0 ? "%.0f %s" : "%.1f %s", n, unit[u]);
}

static void
progress_hide(struct report *r)
{
	if (r->live_rows > 0 && r->live_row[0] != '\0')
		r->live_new = 1;	/* drawn again in a while */
	if (r->live_rows == 2)
		(void)write_full(r->fd, "\r\033[K\033[A\033[K", 10, INT64_MAX);
	else if (r->live_rows == 1)
		(void)write_full(r->fd, "\r\033[K", 4, INT64_MAX);
	r->live_rows = 0;
}

/* " (1.2 MiB/s, 45%, 0:03 left)": a rate, and for a file its share. */
static char *
put_rate(const struct report *r, char *p, uint64_t n, double secs, int file,
    int final)
{
	double done = r->in_size > 0 ? (double)n / r->in_size : 0;
	double left = done > 0 ? secs / done - secs : 0;

	p = stpcpy(p, " (");
	p = put_size(p, n / secs);
	p = stpcpy(p, "/s");
	if (file && r->in_size > 0) {
		p += sprintf(p, ", %.0f%%", done > 1 ? 100.0 : 100 * done);
		if (!final && done > 0 && done < 1)
			p += sprintf(p, ", %d:%02d left", (int)left / 60,
			    (int)left % 60);
	}
	return stpcpy(p, ")");
}

/*
 * The progress line, cut to the terminal's width unless final (a row that
 * wrapped would be left behind by the next drawing): the rates go first,
 * then what does not fit.
 */
static size_t
progress_text(const struct report *r, char *line, uint64_t sent,
    uint64_t received, int final)
{
	int64_t ms = r->progress_last - r->progress_start;
	double secs = ms > 0 ? ms / 1000.0 : 0.001;
	size_t len;
	char *p;
	int brief;

	for (brief = 0; brief < 2; brief++) {
		p = stpcpy(line, brief ? "sent " : "secchat: sent ");
		p = put_size(p, sent);
		if (!brief)
			p = put_rate(r, p, sent, secs, 1, final);
		p = stpcpy(p, ", received ");
		p = put_size(p, received);
		if (!brief)
			p = put_rate(r, p, received, secs, 0, final);
		p += sprintf(p, ", %d:%02d", (int)(ms / 60000),
		    (int)(ms / 1000 % 60));
		len = p - line;
		if (final || len < (size_t)r->cols)
			break;
	}
	if (brief == 2)
		return (size_t)r->cols - 1;	/* ASCII: a byte a column */
	/* The last figures stay: in two rows, not cut mid-word. */
	if (final && len >= (size_t)r->cols &&
	    (p = strstr(line, ", received")) != NULL) {
		memmove(p + 5, p + 2, len - (p + 2 - line));
		memcpy(p + 1, "\r\n  ", 4);
		len += 3;
	}
	return len;
}

/*
 * Draw the live rows if they are due (or the progress line for good, with
 * its final figures: then the record's row goes).
 */
static void
progress_show(struct report *r, uint64_t sent, uint64_t received, int final)
{
	char line[2 * NOTE_MAX + 16], *p = line;
	int64_t t = now_ms();
	int rows = 0;

	if (!r->progress && !r->live_new && !(final && r->live_rows > 0))
		return;
	if (!final && t - r->progress_last < PROGRESS_MS)
		return;
	if (r->progress_start == 0)
		r->progress_start = t;
	r->progress_last = t;
	progress_hide(r);
	if (!final && r->live_row[0] != '\0') {
		p = stpcpy(p, r->live_row);
		rows++;
	}
	if (r->progress) {
		if (rows > 0)
			p = stpcpy(p, "\r\n");
		p += progress_text(r, p, sent, received, final);
		rows++;
	}
	if (final && r->progress)
		*p++ = '\n';
	(void)write_full(r->fd, line, p - line, INT64_MAX);
	r->live_rows = final ? 0 : rows;
	r->live_new = 0;
}

/* ---------------------------------------------------------------------- */
/* §15 The report: what goes to stderr */
/* Session messages: hex lines, notes and the one line that ends a session. */

/* A new connection's report: no deadline yet, no progress, the width now. */
static void
report_begin(struct report *r, int tty)
{
	r->tty = tty;
	r->deadline = 0;
	r->live_rows = r->live_new = 0;
	r->live_row[0] = '\0';
	/* A serving child's stderr is merged by lines: no live row there. */
	r->live = tty && isatty(r->fd);
	r->progress_start = r->progress_last = 0;
	r->cols = tty ? term_cols(r->fd) : 80;
	r->hide = NULL;
	r->row = NULL;
	r->hide_arg = NULL;
}

/* Does the report want a look at the clock while nothing happens? */
static int
report_ticks(const struct report *r)
{
	return r->progress || r->live_new;
}

/* The terminal may have been resized (a signal interrupted poll). */
static void
report_resized(struct report *r)
{
	if (r->tty)
		r->cols = term_cols(r->fd);
}

/*
 * Write the queued lines as a session ends.  stderr is for people: all the
 * flushes of one connection wait for it at most -w (or 30) seconds in all,
 * then drop what is left, so that a stalled stderr cannot hold a -k
 * listener.
 */
static void
flush_errq(struct report *r)
{
	if (buf_pending(&r->q) == 0)
		return;
	if (r->deadline == 0)	/* one wait per connection, not per call */
		r->deadline = deadline_in(r->secs);
	if (r->hide != NULL)
		r->hide(r->hide_arg);
	progress_hide(r);
	(void)write_full(r->fd, r->q.data + r->q.pos, buf_pending(&r->q),
	    r->deadline);
	r->q.pos = r->q.len = 0;
}

/*
 * The stderr queue's one reservation: has it room for a batch of lines
 * records, their hex lines and the notes they may bring?  A batch starts
 * only when it has.
 */
static int
errq_room(struct report *r, size_t lines)
{
	size_t need = lines * (HEX_LINE_MAX + NOTE_MAX);

	return buf_room(&r->q, need) >= need;
}

/* Room for one more line of up to n bytes; past a batch's, by waiting. */
static void
errq_make_room(struct report *r, size_t n)
{
	if (buf_room(&r->q, n) < n)
		flush_errq(r);
}

/*
 * A record's row on a terminal, dim, cut to the width, with a marker that
 * no prompt or text looks like: "‹sent KEY 49 B 0031b2…›".
 */
static char *
record_row(const struct report *r, char *p, int dir, int type,
    const uint8_t *rec, size_t n)
{
	static const char *const names[] = { [TYPE_REKEY] = "REKEY ",
	    [TYPE_CLOSE] = "CLOSE ", [TYPE_KEY] = "KEY ",
	    [TYPE_DONE] = "DONE ", [TYPE_ACK] = "ACK ", [TYPE_PING] = "PING ",
	    [TYPE_END] = "END " };
	const char *what = type > 0 && type <= TYPE_END &&
	    names[type] != NULL ? names[type] : "";
	char head[64];
	int hn = snprintf(head, sizeof(head), "\u2039%s %s%zu B ",
	    dir == '>' ? "sent" : "received", what, n);
	long digits = (r->cols - 1 - (hn - 2) - 2) / 2 * 2;

	if (digits < 0)
		digits = 0;
	if (digits > 160)		/* fits live_row */
		digits = 160;
	if ((size_t)digits > 2 * n)
		digits = 2 * n;
	p = stpcpy(stpcpy(p, "\033[2m"), head);
	p = hex_encode(p, rec, digits / 2);
	if ((size_t)digits < 2 * n)
		p = stpcpy(p, "\u2026");		/* "…" */
	return stpcpy(p, "\u203a\033[22m");	/* "›" */
}

/*
 * At a terminal (not -x): DATA on the live row, or with the text (the
 * chat's), or with -v in a serving child; KEY, REKEY and DONE with -v;
 * CLOSE and what failed to open always, on rows of their own.
 */
static void
tty_record(struct report *r, int dir, int type, const uint8_t *rec,
    size_t n)
{
	char *p;

	if (type == TYPE_DATA && r->live) {
		*record_row(r, r->live_row, dir, type, rec, n) = '\0';
		r->live_new = 1;
		return;
	}
	/* Keys, confirmations and keepalives: only with -v. */
	if ((type == TYPE_DATA || type == TYPE_KEY || type == TYPE_REKEY ||
	    type == TYPE_DONE || type == TYPE_ACK || type == TYPE_PING) &&
	    !r->verbose)
		return;
	errq_make_room(r, HEX_LINE_MAX);
	p = record_row(r, (char *)r->q.data + r->q.len, dir, type, rec, n);
	*p++ = '\n';
	r->q.len = (uint8_t *)p - r->q.data;
}

/*
 * A record sealed (dir '>') or opened ('<'), rec[0..n) on the wire, with
 * its plaintext (type 0: it did not open).  The chat shows ours, and may
 * take the record onto its text's row; else at a terminal tty_record, and
 * into a file or pipe, or with -x, every wire byte (doc/PROTOCOL.md
 * section 8) as "> " or "< " and the hex.
 */
static void
hex_line(struct report *r, int dir, int type, const uint8_t *plain,
    size_t plen, const uint8_t *rec, size_t n)
{
	char *p;

	if (r->row != NULL) {
		/*
		 * Our lines sealed again after a resume are on the screen
		 * already, with a ciphertext: no row, not even a live one.
		 */
		if (dir == '>' && r->again)
			return;
		if (r->row(r->hide_arg, dir, type, plain, plen, rec, n))
			return;
	}
	if (!r->hex)
		return;
	if (r->tty && !r->all_hex) {
		tty_record(r, dir, type, rec, n);
		return;
	}
	errq_make_room(r, HEX_LINE_MAX);
	p = (char *)r->q.data + r->q.len;
	*p++ = dir;
	*p++ = ' ';
	if (r->tty)			/* dim, apart from the plaintext */
		p = stpcpy(p, "\033[2m");
	p = hex_encode(p, rec, n);
	if (r->tty)
		p = stpcpy(p, "\033[0m");
	*p++ = '\n';
	r->q.len = (uint8_t *)p - r->q.data;
}

/* Queue a "secchat: " line after the hex lines, so that stderr keeps order. */
static void __attribute__((format(printf, 2, 0)))
queue_line(struct report *r, const char *fmt, va_list ap)
{
	char msg[NOTE_MAX - 16];
	int n = snprintf(msg, sizeof(msg), "secchat: ");

	(void)vsnprintf(msg + n, sizeof(msg) - n - 2 * 16, fmt, ap);
	(void)snprintf(r->last, sizeof(r->last), "%s", msg + n);
	if (r->tty)
		wrap_words(msg, sizeof(msg), r->cols);
	errq_make_room(r, NOTE_MAX);
	r->q.len += snprintf((char *)r->q.data + r->q.len, NOTE_MAX, "%s\n",
	    msg);
}

/* A line for stderr whatever -v says. */
static void __attribute__((format(printf, 2, 3)))
note_always(struct report *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	queue_line(r, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3)))
note(struct report *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->verbose)
		return;
	va_start(ap, fmt);
	queue_line(r, fmt, ap);
	va_end(ap);
}

/* A chat status line, at a terminal, with or without -v. */
static void __attribute__((format(printf, 2, 3)))
chat_note(struct report *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->chat)
		return;
	va_start(ap, fmt);
	queue_line(r, fmt, ap);
	va_end(ap);
}

/*
 * Print why the session ends and return its exit status.  The line waits
 * for a slow stderr (within flush_errq's bound) rather than be lost to a
 * full pipe.
 */
static enum status __attribute__((format(printf, 3, 4)))
session_fail(struct report *r, enum status status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	queue_line(r, fmt, ap);
	va_end(ap);
	flush_errq(r);
	return status;
}

/* ---------------------------------------------------------------------- */
/* §16 The handshake */
/*
 * The handshake (doc/PROTOCOL.md section 2): reading and writing its
 * messages, the listener's greeting, check and answer, the connector's
 * answer to a greeting.  Which connection and when is for the two roles.
 */

#define BAD_POINT_MSG	"handshake failed: peer sent a bad point"
#define WRONG_PASSWORD_MSG "wrong password, or the connection was tampered with"
#define WRONG_CODE_MSG	"wrong code, or the connection was tampered with; " \
			"the code is spent"

/* A handshake read or write failed with errno: say how, end the session. */
static enum status
handshake_io_fail(struct report *r)
{
	if (errno == ETIMEDOUT)
		return session_fail(r, EXIT_FAIL, "timed out during handshake");
	return session_fail(r, EXIT_FAIL, "handshake: %s", strerror(errno));
}

/* What the first n bytes of a handshake message say (section 2.2). */
enum hs_parse { HSP_MORE, HSP_WHOLE, HSP_STRANGER, HSP_VERSION, HSP_KIND };

/*
 * Decide as early as the bytes allow: a stranger at its first byte that
 * differs, another version at byte 7, a kind not in kinds (KIND_BIT) at
 * byte 8.  *need is how many bytes the message has, as far as known.
 */
static enum hs_parse
hs_parse(const uint8_t *m, size_t n, unsigned kinds, size_t *need)
{
	size_t i;

	for (i = 0; i < n && i < MAGIC_LEN; i++)
		if (m[i] != (uint8_t)MAGIC[i])
			return HSP_STRANGER;
	if (n > MAGIC_LEN && m[MAGIC_LEN] != VERSION)
		return HSP_VERSION;
	if (n >= HDR_LEN && (m[HDR_LEN - 1] >= KINDS ||
	    (kinds & KIND_BIT(m[HDR_LEN - 1])) == 0))
		return HSP_KIND;
	*need = n < HDR_LEN ? n + 1 : kind_size[m[HDR_LEN - 1]];
	return n >= HDR_LEN && n >= *need ? HSP_WHOLE : HSP_MORE;
}

/* Why m is not a message we may take (v), in words: both roles' line. */
static void
hs_unwanted_line(char *line, size_t cap, enum hs_parse v, const uint8_t *m)
{
	if (v == HSP_STRANGER)
		(void)snprintf(line, cap, "peer is not speaking secchat/%u",
		    VERSION);
	else if (v == HSP_VERSION)
		(void)snprintf(line, cap, "peer speaks secchat/%u, not "
		    "secchat/%u", m[MAGIC_LEN], VERSION);
	else
		(void)snprintf(line, cap, "handshake failed: unexpected "
		    "message (kind %u)", m[HDR_LEN - 1]);
}

/* The line and status for a message that is not one we may take. */
static enum status
hs_unwanted(struct report *r, enum hs_parse v, const uint8_t *m)
{
	char line[NOTE_MAX];

	hs_unwanted_line(line, sizeof(line), v, m);
	return session_fail(r, v == HSP_STRANGER || v == HSP_VERSION ?
	    EXIT_FAIL : EXIT_AUTH, "%s", line);
}

/*
 * Read one message of the kinds allowed into m, byte by byte as far as
 * the header goes, then the rest whole; its kind is m[8], and *v says
 * how its bytes went.  -1 on a socket error (errno), 0 at an end of
 * stream before it was whole, else 1.
 */
static int
hs_read(int net, unsigned kinds, uint8_t m[HS_MAX], int64_t deadline,
    enum hs_parse *v)
{
	size_t n = 0, need = 0;
	ssize_t got;

	while ((*v = hs_parse(m, n, kinds, &need)) == HSP_MORE) {
		if ((got = read_full(net, m + n, need - n, deadline)) == -1)
			return -1;
		if ((size_t)got < need - n)
			return 0;
		n = need;
	}
	return 1;
}

/* A handshake message (hs_read), or the line that says why none came. */
static enum status
read_message(struct report *r, int net, unsigned kinds, uint8_t m[HS_MAX],
    int64_t deadline)
{
	enum hs_parse v;
	int got = hs_read(net, kinds, m, deadline, &v);

	if (got == -1)
		return handshake_io_fail(r);
	if (got == 0)
		return session_fail(r, EXIT_FAIL, "peer closed the connection "
		    "during the handshake");
	return v == HSP_WHOLE ? GO_ON : hs_unwanted(r, v, m);
}

static enum status
send_message(struct report *r, int net, const void *msg, size_t len,
    int64_t deadline)
{
	if (write_full(net, msg, len, deadline) == 0)
		return GO_ON;
	return handshake_io_fail(r);
}

static void
hs_header(uint8_t hdr[HDR_LEN], enum hs_kind kind)
{
	memcpy(hdr, MAGIC, MAGIC_LEN);
	hdr[MAGIC_LEN] = VERSION;
	hdr[HDR_LEN - 1] = kind;
}

static void
make_refusal(struct refusal *rf, enum refusal_reason reason, unsigned secs)
{
	hs_header(rf->hdr, KIND_REFUSAL);
	rf->reason = reason;
	secs = secs > 65535 ? 65535 : secs;
	put_u16(rf->seconds, secs);
}

/* A REFUSAL's seconds: when to try again, or how long the penalty lasts. */
static unsigned
refusal_secs(const uint8_t *m)
{
	return get_u16(((const struct refusal *)m)->seconds);
}

/* How long a connector waits before it tries again: at least 1 s. */
static unsigned
refusal_wait(const uint8_t *m)
{
	unsigned secs = refusal_secs(m);

	return secs > 0 ? secs : 1;
}

/* Why a refusal's reason is, in the connector's words (section 2.5). */
static const char *
refusal_why(unsigned reason)
{
	static const char *const why[] = {
		[REF_PENALTY] = "too many failed attempts from your address",
		[REF_BUSY] = "too many connections at once",
		[REF_GUESS_LIMIT] = "too many failed attempts from all addresses",
		[REF_NO_NEW] = "it is serving another session",
		[REF_CODE_SPENT] = "that one-time code has been used; ask "
		    "for the new one",
	};

	return reason < sizeof(why) / sizeof(why[0]) ? why[reason] : NULL;
}

/* Where a REFUSAL may come, as the reasons that may come there. */
#define REFUSE_GREETING	0x000e		/* in place of GREETING: 1 to 3 */
#define REFUSE_HELLO	0x00fe		/* after HELLO: 1 to 7 */
#define REFUSE_RESUME	0x038e		/* after RESUME: 1 to 3, 7 to 9 */

/*
 * The connector's line for the REFUSAL m from host, and its status.  A
 * reason that may not come where it came (not in allowed, a REFUSE_ set)
 * is named by its number.  code: our secret is a one-time code.
 */
static enum status
refusal_line(char *line, size_t cap, const char *host, const uint8_t *m,
    int code, unsigned allowed)
{
	const struct refusal *rf = (const struct refusal *)m;
	unsigned secs = refusal_secs(m);
	unsigned reason = rf->reason;
	const char *why = refusal_why(reason);

	if (reason > 15 || !(allowed & 1u << reason))
		reason = 0;
	if (reason == REF_WRONG_SECRET || reason == REF_MALFORMED ||
	    reason == REF_RESUME_FAILED) {
		if (reason != REF_WRONG_SECRET)
			(void)snprintf(line, cap, "%s %s", host, reason ==
			    REF_MALFORMED ? "refused our handshake as malformed" :
			    "refused to resume the session: proof rejected");
		else
			(void)snprintf(line, cap, "%s", code ? WRONG_CODE_MSG :
			    WRONG_PASSWORD_MSG);
		return EXIT_AUTH;
	}
	if (reason == REF_NO_SESSION)
		(void)snprintf(line, cap, "%s no longer holds the session", host);
	else if (reason == 0 || why == NULL)
		(void)snprintf(line, cap, "%s refused the connection "
		    "(reason %u)", host, rf->reason);
	else if (secs > 0 && reason <= REF_GUESS_LIMIT)
		(void)snprintf(line, cap, "%s refused the connection: %s; "
		    "try again in %u s", host, why, secs);
	else
		(void)snprintf(line, cap, "%s refused the connection: %s",
		    host, why);
	return EXIT_FAIL;
}

/* A resume window on the wire: a u16, so at most WIRE_WINDOW seconds. */
static void
put_window(uint8_t w[2], unsigned window)
{
	window = window > WIRE_WINDOW ? WIRE_WINDOW : window;
	put_u16(w, window);
}

/* The session's window: the less of the greeting's and the HELLO's. */
static unsigned
window_less(const uint8_t a[2], const uint8_t b[2])
{
	unsigned x = get_u16(a), y = get_u16(b);

	return x < y ? x : y;
}

/*
 * A greeting for a new connection: fresh nonce, and unless NO_NEW a fresh
 * y (returned) and pB; NULL with NO_NEW.
 */
static BIGNUM *
make_greeting(const struct pake *pk, struct greeting *g, int flags,
    unsigned wait, uint32_t iterations, const uint8_t salt[SALT_LEN])
{
	BIGNUM *y = NULL;

	memset(g, 0, sizeof(*g));
	hs_header(g->hdr, KIND_GREETING);
	g->flags = flags;
	g->wait = wait;
	put_u32(g->iterations, iterations);
	memcpy(g->salt, salt, SALT_LEN);
	if (RAND_bytes(g->nonce, NONCE_LEN) != 1)
		crypto_fail("RAND_bytes");
	if (!(flags & FLAG_NO_NEW)) {
		y = random_scalar(pk);
		spake2_share(pk, 0, y, g->pB);
	}
	return y;
}

/* How the check of a HELLO went (steps 4 and 5 of section 2.3). */
enum hs_result { HS_OK, HS_MALFORMED, HS_WRONG, HS_IO };

/*
 * Check the HELLO h on our greeting g (scalar y) and answer it: CONFIRM
 * and the session's secrets in ks, or a REFUSAL.  Lines are the caller's.
 */
static enum hs_result
listener_answer(int net, const struct pake *pk, const struct greeted *in,
    int64_t deadline, struct keyset *ks)
{
	struct handshake_keys hk;
	struct confirm cf;
	struct refusal rf;
	enum hs_result res = HS_OK;

	if (spake2_finish(pk, 0, in->y, &in->g, &in->h, &hk) == -1)
		res = HS_MALFORMED;
	/* Constant time: a timing leak here would help forge cA. */
	else if (CRYPTO_memcmp(hk.cA, in->h.cA, MAC_LEN) != 0)
		res = HS_WRONG;
	if (res != HS_OK) {
		make_refusal(&rf, res == HS_WRONG ? REF_WRONG_SECRET :
		    REF_MALFORMED, 0);
		(void)write_full(net, &rf, sizeof(rf), deadline);
	} else {
		hs_header(cf.hdr, KIND_CONFIRM);
		memcpy(cf.cB, hk.cB, MAC_LEN);
		if (write_full(net, &cf, sizeof(cf), deadline) == -1)
			res = HS_IO;
		else {
			session_secrets(&hk, ks);
			ks->window = window_less(in->g.window, in->h.window);
		}
	}
	OPENSSL_cleanse(&hk, sizeof(hk));
	return res;
}

/*
 * The connector's first message on a connection (section 2.6, steps 1 to
 * 3): a greeting it can answer, or the line that says why not.  A refusal
 * BUSY that there is time to wait out by the deadline is not said: *busy
 * gets its seconds (at least 1), for the caller to try again.
 */
static enum status
connector_greeting(struct report *r, const struct options *opt, int net,
    struct greeting *g, int64_t deadline, unsigned *busy)
{
	uint8_t m[HS_MAX];
	char line[NOTE_MAX];
	uint32_t iterations;
	enum status st;

	*busy = 0;
	if (wait_fd(net, POLLIN, deadline) == -1 && errno == ETIMEDOUT)
		return session_fail(r, EXIT_FAIL, "no secchat greeting from %s "
		    "port %s within %d s: listener busy, or not secchat",
		    opt->host, opt->port, handshake_secs(opt));
	if ((st = read_message(r, net, KIND_BIT(KIND_GREETING) |
	    KIND_BIT(KIND_REFUSAL), m, deadline)) != GO_ON)
		return st;
	if (m[HDR_LEN - 1] == KIND_REFUSAL && m[HDR_LEN] == REF_BUSY) {
		*busy = refusal_wait(m);
		if (now_ms() + secs_ms(*busy) < deadline)
			return EXIT_FAIL;
		*busy = 0;
	}
	if (m[HDR_LEN - 1] == KIND_REFUSAL) {
		st = refusal_line(line, sizeof(line), opt->host, m,
		    opt->gflag, REFUSE_GREETING);
		return session_fail(r, st, "%s", line);
	}
	memcpy(g, m, sizeof(*g));
	if (g->flags & FLAG_NO_NEW)
		return session_fail(r, EXIT_FAIL, "%s refused the connection: "
		    "%s", opt->host, refusal_why(REF_NO_NEW));
	if (opt->gflag && !(g->flags & FLAG_CODE))
		return session_fail(r, EXIT_FAIL, "%s wants a password, not a "
		    "one-time code", opt->host);
	iterations = get_u32(g->iterations);
	if (iterations < MIN_ITER || iterations > MAX_ITER)
		return session_fail(r, EXIT_FAIL, "listener asks for %u "
		    "PBKDF2 iterations (allowed %d to %d)", iterations,
		    MIN_ITER, MAX_ITER);
	if (!share_valid(g->pB))	/* no password typed for it */
		return session_fail(r, EXIT_AUTH, BAD_POINT_MSG);
	return GO_ON;
}

/*
 * The connector's w, from the salt and count of greeting g, set up in pk;
 * an exit status if w is 0.
 */
static enum status
connector_pake(struct report *r, const char *pass, size_t pass_len,
    const struct greeting *g, struct pake *pk)
{
	uint8_t w[SCALAR_LEN];

	if (derive_w(pass, pass_len, g->salt, get_u32(g->iterations), w) == -1)
		return session_fail(r, EXIT_FAIL, "password and salt give w = 0");
	pake_init(pk, w);
	OPENSSL_cleanse(w, sizeof(w));
	return GO_ON;
}

/*
 * The connector's answer to greeting g on net (section 2.3): HELLO, then
 * CONFIRM checked, or the REFUSAL's line.  ks gets the session's secrets.
 */
static enum status
connector_hello(struct report *r, const struct options *opt, int net,
    const struct pake *pk, const struct greeting *g, int64_t deadline,
    struct keyset *ks)
{
	struct handshake_keys hk;
	struct hello h;
	uint8_t m[HS_MAX];
	char line[NOTE_MAX];
	int code = g->flags & FLAG_CODE;
	enum status st = GO_ON;
	BIGNUM *x = random_scalar(pk);

	hs_header(h.hdr, KIND_HELLO);
	put_window(h.window, opt->window);
	spake2_share(pk, 1, x, h.pA);
	if (spake2_finish(pk, 1, x, g, &h, &hk) == -1)
		st = session_fail(r, EXIT_AUTH, BAD_POINT_MSG);
	BN_clear_free(x);
	if (st != GO_ON)
		goto done;
	memcpy(h.cA, hk.cA, MAC_LEN);
	if ((st = send_message(r, net, &h, sizeof(h), deadline)) != GO_ON ||
	    (st = read_message(r, net, KIND_BIT(KIND_CONFIRM) |
	    KIND_BIT(KIND_REFUSAL), m, deadline)) != GO_ON)
		goto done;
	if (m[HDR_LEN - 1] == KIND_REFUSAL) {
		st = refusal_line(line, sizeof(line), opt->host, m, code,
		    REFUSE_HELLO);
		st = session_fail(r, st, "%s", line);
	} else if (CRYPTO_memcmp(hk.cB, ((struct confirm *)m)->cB,
	    MAC_LEN) != 0)
		st = session_fail(r, EXIT_AUTH, "%s", code ? WRONG_CODE_MSG :
		    WRONG_PASSWORD_MSG);
	else {
		session_secrets(&hk, ks);
		ks->window = window_less(g->window, h.window);
	}
 done:
	OPENSSL_cleanse(&hk, sizeof(hk));
	return st;
}

/*
 * Resuming (doc/PROTOCOL.md 8.2 to 8.4).  tr is the transcript GREETING
 * || RESUME || RESUMED of the new connection, filled as it is made: the
 * MACs cover its beginning, th all of it.
 */

/* HMAC(HKDF-Expand(rs, label), tr[0..n)): mac_C or mac_L. */
static void
resume_mac(const uint8_t rs[SECRET_LEN], const char *label,
    const uint8_t *tr, size_t n, uint8_t mac[MAC_LEN])
{
	uint8_t mk[SECRET_LEN];

	hkdf_expand(rs, label, mk, SECRET_LEN);
	hmac_sha256(mk, SECRET_LEN, tr, n, mac);
	OPENSSL_cleanse(mk, sizeof(mk));
}

/*
 * The new connection's key set from rs(gen), the DH of the two one-time
 * keys and th; dh and every intermediate value are erased.
 */
static void
resume_keys(const uint8_t rs[SECRET_LEN], uint8_t dh[X25519_LEN],
    const uint8_t tr[TR_LEN], struct keyset *ks)
{
	uint8_t salt[SECRET_LEN], prk[SECRET_LEN];
	uint8_t ikm[X25519_LEN + SHA256_DIGEST_LENGTH];

	hkdf_expand(rs, LABEL_RESUME, salt, SECRET_LEN);
	memcpy(ikm, dh, X25519_LEN);
	sha256(tr, TR_LEN, ikm + X25519_LEN);
	hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, sizeof(salt), ikm,
	    sizeof(ikm), NULL, 0, prk, sizeof(prk));
	key_set(prk, ks);
	OPENSSL_cleanse(salt, sizeof(salt));
	OPENSSL_cleanse(ikm, sizeof(ikm));
	OPENSSL_cleanse(prk, sizeof(prk));
	OPENSSL_cleanse(dh, X25519_LEN);
}

/*
 * The listener's checks 2 to 5 of a RESUME (section 8.3) for session rm,
 * whose sid matched: 0 and RESUMED made in tr with the new key set in ks
 * (*old: it used rs(g - 1)), or the reason of the REFUSAL.  Nothing of rm
 * changes here: the caller commits.  mac_C in constant time.
 */
static enum refusal_reason
resume_check(const struct resumable *rm, uint8_t tr[TR_LEN],
    struct keyset *ks, int *old)
{
	const struct resume *m = (const struct resume *)(tr + TR_RESUME);
	struct resumed *a = (struct resumed *)(tr + TR_RESUMED);
	uint32_t gen = get_u32(m->gen);
	uint8_t mac[MAC_LEN], dh[X25519_LEN];
	const uint8_t *rs;
	EVP_PKEY *e;
	int bad;

	*old = rm->has_prev && rm->gen > 0 && gen == rm->gen - 1;
	if (gen != rm->gen && !*old)
		return REF_RESUME_FAILED;
	rs = *old ? rm->prev : rm->rs;
	resume_mac(rs, LABEL_MKC, tr, TR_RESUME + offsetof(struct resume, mac),
	    mac);
	bad = CRYPTO_memcmp(mac, m->mac, MAC_LEN) != 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	if (bad)
		return REF_RESUME_FAILED;
	if (x25519_public_equivalent(m->e))
		return REF_MALFORMED;
	e = x25519_keygen(a->e);
	bad = x25519(e, m->e, dh) == -1;
	EVP_PKEY_free(e);		/* e_L erased */
	if (bad)
		return REF_MALFORMED;
	hs_header(a->hdr, KIND_RESUMED);
	resume_mac(rs, LABEL_MKL, tr, TR_RESUMED +
	    offsetof(struct resumed, mac), a->mac);
	resume_keys(rs, dh, tr, ks);
	return 0;
}

/*
 * Read one handshake message of kinds for a resume: 0 when whole; -1
 * when the connection failed or ended (try another), errno set; or an
 * exit status, said, for a message no secchat/3 listener sends there.
 */
static int
resume_read(struct report *r, int net, unsigned kinds, uint8_t m[HS_MAX],
    int64_t deadline)
{
	enum hs_parse v;
	int got = hs_read(net, kinds, m, deadline, &v);

	if (got <= 0) {
		if (got == 0)
			errno = ECONNRESET;
		return -1;
	}
	return v == HSP_WHOLE ? 0 : (int)hs_unwanted(r, v, m);
}

/*
 * A REFUSAL of our RESUME (sections 2.5, 8.6): PENALTY, BUSY and
 * GUESS_LIMIT are waited out (*again, seconds, at least 1); NO_SESSION
 * ends the resuming (*gone); the others end it with their line.
 */
static enum status
resume_refused(struct report *r, const char *host, const uint8_t *m,
    unsigned *again, int *gone)
{
	char line[NOTE_MAX];
	unsigned reason = m[HDR_LEN];
	enum status st;

	if (reason >= REF_PENALTY && reason <= REF_GUESS_LIMIT) {
		*again = refusal_wait(m);
		return EXIT_FAIL;
	}
	if (reason == REF_NO_SESSION) {
		*gone = 1;
		return EXIT_FAIL;
	}
	st = refusal_line(line, sizeof(line), host, m, 0, REFUSE_RESUME);
	return session_fail(r, st, "%s", line);
}

/*
 * The connector's RESUME for rm on net, after greeting g (section 8.2),
 * and the answer checked (8.4): GO_ON with the new key set in ks; RETRY
 * if the connection failed, to try another; a refusal to wait
 * out (*again) or NO_SESSION (*gone); else an exit status, said.
 */
static int
connector_resume(struct report *r, const char *host, int net,
    const struct greeting *g, const struct resumable *rm, struct keyset *ks,
    unsigned *again, int *gone)
{
	uint8_t tr[TR_LEN], m[HS_MAX], mac[MAC_LEN], dh[X25519_LEN];
	struct resume *q = (struct resume *)(tr + TR_RESUME);
	struct resumed *a = (struct resumed *)(tr + TR_RESUMED);
	int64_t deadline = deadline_in(DEF_HS_TIMEOUT);
	EVP_PKEY *e;
	int st;

	memcpy(tr, g, sizeof(*g));
	hs_header(q->hdr, KIND_RESUME);
	memcpy(q->sid, rm->sid, SID_LEN);
	put_u32(q->gen, rm->gen);
	e = x25519_keygen(q->e);
	resume_mac(rm->rs, LABEL_MKC, tr, TR_RESUME +
	    offsetof(struct resume, mac), q->mac);
	if (write_full(net, q, sizeof(*q), deadline) == -1 ||
	    (st = resume_read(r, net, KIND_BIT(KIND_RESUMED) |
	    KIND_BIT(KIND_REFUSAL), m, deadline)) == -1)
		st = RETRY;
	else if (st != 0)
		;			/* said */
	else if (m[HDR_LEN - 1] == KIND_REFUSAL)
		st = resume_refused(r, host, m, again, gone);
	else {
		memcpy(a, m, sizeof(*a));
		resume_mac(rm->rs, LABEL_MKL, tr, TR_RESUMED +
		    offsetof(struct resumed, mac), mac);
		if (CRYPTO_memcmp(mac, a->mac, MAC_LEN) != 0)
			st = session_fail(r, EXIT_AUTH, "resume failed: %s could "
			    "not prove the session (the connection was tampered "
			    "with)", host);
		else if (x25519_public_equivalent(a->e) ||
		    x25519(e, a->e, dh) == -1)
			st = session_fail(r, EXIT_AUTH, "resume failed: %s sent "
			    "a bad key", host);
		else {
			resume_keys(rm->rs, dh, tr, ks);
			st = GO_ON;
		}
	}
	EVP_PKEY_free(e);		/* e_C erased */
	OPENSSL_cleanse(mac, sizeof(mac));
	return st;
}

/* ---------------------------------------------------------------------- */
/* §17 Sending */
/*
 * Sending: input bytes become DATA records, kept until the peer's ACK;
 * KEY, REKEY, ACK, PING, CLOSE, DONE and END as they fall due.
 */

static void
send_record(struct conn *c, struct report *r, struct buf *txb, int type,
    const uint8_t *payload, size_t len, size_t pad)
{
	uint8_t *rec = txb->data + txb->len;
	size_t n;

	n = seal_record(&c->tx, type, payload, len, pad, rec);
	txb->len += n;
	c->sent_records++;
	hex_line(r, '>', type, payload, len, rec, n);
}

/*
 * Announce our next receive key (doc/PROTOCOL.md section 5.1).  Once
 * the peer's DONE is in, the key can never be used: erased at once.
 */
static void
send_key(struct conn *c, struct report *r, struct buf *txb)
{
	uint8_t pub[X25519_LEN];

	recv_keys_add(&c->rk, x25519_keygen(pub));
	if (rx_over(c))
		recv_keys_free(&c->rk);
	if (test_hook("key-nine")) {	/* a liar's share (5.6) */
		memset(pub, 0, X25519_LEN);
		pub[0] = 9;
	}
	send_record(c, r, txb, TYPE_KEY, pub, X25519_LEN, 0);
	note(r, "announced receive key %llu",
	    (unsigned long long)c->rk.announced - 1);
}

/* A REKEY with a fresh one-time key, and the DH ratchet (section 5.2). */
static enum status
send_rekey(struct conn *c, struct report *r, struct buf *txb)
{
	uint8_t payload[REKEY_LEN], dh[X25519_LEN];

	if (rekey_payload(&c->pk, x25519_keygen(NULL), payload, dh) == -1)
		return session_fail(r, EXIT_AUTH,
		    "peer sent a bad receive key (our REKEY's DH was zero)");
	/* The test build's liar: a public-equivalent share (5.6). */
	if (test_hook("rekey-nine")) {
		memset(payload + INDEX_LEN, 0, X25519_LEN);
		payload[INDEX_LEN] = 9;
	}
	send_record(c, r, txb, TYPE_REKEY, payload, REKEY_LEN, 0);
	dh_ratchet(&c->tx, dh);
	OPENSSL_cleanse(dh, sizeof(dh));
	c->rekeys_sent++;
	note(r, "rekeyed sending key (epoch %llu)",
	    (unsigned long long)c->tx.epoch);
	return GO_ON;
}

/* An ACK of W, what we have written of the peer's stream (7.2). */
static void
send_ack(struct conn *c, struct report *r, struct buf *txb,
    struct stream *st, uint64_t w)
{
	uint8_t payload[ACK_LEN];

	put_u64(payload, w);
	send_record(c, r, txb, TYPE_ACK, payload, ACK_LEN, 0);
	st->ack_sent = w;
	st->ack_wait = 0;
}

/* A PING: we stay silent no longer than interval seconds (section 7.3). */
static void
send_ping(struct conn *c, struct report *r, struct buf *txb,
    unsigned interval)
{
	uint8_t payload[PING_LEN];

	put_u16(payload, interval);

	send_record(c, r, txb, TYPE_PING, payload, PING_LEN, 0);
	c->ping_due = 0;
}

/* Is the current sending key due for retirement (section 5.4)? */
static int
rekey_due(const struct conn *c, const struct options *opt, int64_t t)
{
	const struct direction *d = &c->tx;

	/* Leave room for this REKEY and a CLOSE under the old key. */
	if (d->seq + 2 >= SEQ_LIMIT)
		return 1;
	if (d->data_records == 0)
		return 0;
	return (opt->rekey_msgs != 0 && d->data_records >= opt->rekey_msgs) ||
	    (opt->rekey_secs != 0 &&
	    t - d->first_data >= secs_ms(opt->rekey_secs));
}

/*
 * Is an ACK due: W above the last ACK's count by ACK_BYTES, or for
 * ACK_MS?  The clock starts when W first goes above it.
 */
static int
ack_due(struct stream *st, uint64_t w, int64_t t)
{
	if (w == st->ack_sent)
		return 0;
	if (st->ack_wait == 0)
		st->ack_wait = t;
	return w - st->ack_sent >= ACK_BYTES ||
	    t - st->ack_wait >= ACK_MS;
}

/* Has our side been silent for its interval (or not yet said it)? */
static int
ping_due(const struct conn *c, const struct options *opt, int64_t t)
{
	return c->ping_due || t - c->last_sealed >= secs_ms(opt->interval);
}

/*
 * How many pending input bytes make the next DATA record; 0: none yet.
 * A partial line waits for its newline, the end of input, or LINE_WAIT_MS
 * without more input (a prompt, section 6).  Nothing goes that would take
 * the retained bytes past the cap: an ACK must make room first.
 */
static size_t
next_chunk(const struct conn *c, const struct buf *in, const struct stream *st,
    int bflag, int64_t t)
{
	size_t avail = buf_pending(in);
	size_t max = avail < MAX_PAYLOAD ? avail : MAX_PAYLOAD;
	const uint8_t *nl;

	if (in->keep + max > st->retain)
		return 0;
	if (avail == 0 || bflag)
		return max;
	if ((nl = memchr(in->data + in->pos, '\n', max)) != NULL)
		return nl - (in->data + in->pos) + 1;
	/* A long line goes in full records; a last line at end of input. */
	if (avail >= MAX_PAYLOAD || c->tx_state != TX_OPEN ||
	    t - st->input_at >= LINE_WAIT_MS)
		return max;
	return 0;
}

/*
 * When stdout and stderr are one file (2>&1, a terminal), a record's hex
 * line and its plaintext go out before the next record is made, so that
 * a partial write cannot tear a line.
 */
static int
output_busy(const struct report *r, const struct buf *out)
{
	return r->shared && (buf_pending(&r->q) > 0 || buf_pending(out) > 0);
}

/* May fill_tx make a sending batch: room in txb and on stderr? */
static int
tx_room(struct report *r, struct bufs *b)
{
	size_t rec = SEND_BATCH * (LEN_LEN + MAX_RECORD);

	return !output_busy(r, &b->out) && buf_room(&b->txb, rec) >= rec &&
	    errq_room(r, SEND_BATCH);
}

/*
 * A DATA record of len pending input bytes, padded to pad (section 6).
 * The bytes stay in b->in, kept, until the peer acknowledges them.
 */
static void
send_data(struct conn *c, struct report *r, struct bufs *b,
    struct stream *st, size_t pad, size_t len, int64_t t)
{
	size_t inner = (len + 1 + pad - 1) / pad * pad;

	if (inner > MAX_INNER)
		inner = MAX_INNER;
	if (c->tx.data_records++ == 0)
		c->tx.first_data = t;
	r->again = st->next < st->sealed;
	send_record(c, r, &b->txb, TYPE_DATA, b->in.data + b->in.pos, len,
	    inner - len - 1);
	r->again = 0;
	b->in.pos += len;
	b->in.keep += len;
	if (b->in.keep > st->kept_most)
		st->kept_most = b->in.keep;
	st->next += len;
	if (st->next > st->sealed)	/* bytes sealed again do not move S */
		st->sealed = st->next;
	c->sent_bytes += len;
}

/*
 * May DATA and CLOSE be sealed: on a resumed connection, only once the
 * peer's first ACK has said where our stream starts again (8.5).
 */
static int
tx_streaming(const struct conn *c)
{
	return tx_sending(c) && (!c->resumed || c->peer_acked);
}

/*
 * One record of what is due, in this order: our next receive key, the
 * resume point (section 8.5), the PING that announces our interval, a
 * REKEY (which waits for the peer's KEY 0, and DATA with it), an ACK,
 * DATA, an idle PING.  0 if nothing was due.
 */
static int
fill_one(struct conn *c, struct bufs *b, struct stream *st,
    struct report *r, const struct options *opt, size_t pad, int64_t t,
    enum status *status)
{
	int rekey = rekey_due(c, opt, t);
	uint64_t w = written_count(&b->wr);
	size_t len;

	if (c->rk.due && c->rk.announced <= MAX_KEY_INDEX)
		send_key(c, r, &b->txb);
	else if (c->resume_ack) {
		/*
		 * The resume point, as resume_point() took it: the command
		 * may have read more since, but st->skip was counted from
		 * this one, and the peer sends again from what we say.
		 */
		send_ack(c, r, &b->txb, st, c->recv_bytes);
		c->resume_ack = 0;
	} else if (c->ping_due)
		send_ping(c, r, &b->txb, opt->interval);
	else if (rekey && c->pk.count > 0)
		*status = send_rekey(c, r, &b->txb);
	else if (ack_due(st, w, t))
		send_ack(c, r, &b->txb, st, w);
	else if (!rekey && tx_streaming(c) &&
	    (len = next_chunk(c, &b->in, st, opt->bflag, t)) > 0)
		send_data(c, r, b, st, pad, len, t);
	else if (ping_due(c, opt, t))
		send_ping(c, r, &b->txb, opt->interval);
	else
		return 0;
	c->last_sealed = t;
	return 1;
}

/*
 * Seal what is due, one record per round while txb and stderr have room
 * for a batch; then CLOSE and DONE when their time has come.  DONE
 * confirms that the peer's stream was written whole (W, struct written,
 * is all of it): not when dropped says it was not.
 */
static enum status
fill_tx(struct conn *c, struct bufs *b, struct stream *st, struct report *r,
    const struct options *opt, size_t pad, int dropped)
{
	int64_t t = now_ms();
	enum status status = GO_ON;

	while (tx_keying(c) && tx_room(r, b) &&
	    fill_one(c, b, st, r, opt, pad, t, &status))
		if (status != GO_ON)
			return status;
	if (c->tx_state == TX_DRAINING && tx_streaming(c) &&
	    buf_pending(&b->in) == 0 && tx_room(r, b)) {
		send_record(c, r, &b->txb, TYPE_CLOSE, NULL, 0, 0);
		tx_close_sealed(c);
		st->closed = 1;
	}
	if (c->tx_state == TX_CLOSED && rx_closed(c) &&
	    buf_pending(&b->out) == 0 && !dropped &&
	    written_count(&b->wr) == c->recv_bytes && tx_room(r, b)) {
		send_record(c, r, &b->txb, TYPE_DONE, NULL, 0, 0);
		tx_done_sealed(c);
	}
	return GO_ON;
}

/*
 * Seal END (section 9.2): an ACK first if W is above the last one's
 * count, then the reason.  Nothing is sealed after it.  txb must have
 * room for both records.
 */
static void
send_end(struct conn *c, struct buf *txb, struct stream *st, uint64_t w,
    struct report *r, const struct end *e)
{
	uint8_t payload[END_HEAD + END_TEXT_MAX];
	size_t n = strnlen(e->text, END_TEXT_MAX);

	if (!tx_keying(c))
		return;
	if (w > st->ack_sent)
		send_ack(c, r, txb, st, w);
	payload[0] = e->reason;
	put_u32(payload + 1, e->value);
	memcpy(payload + END_HEAD, e->text, n);
	send_record(c, r, txb, TYPE_END, payload, END_HEAD + n, 0);
	tx_end_sealed(c);
}

/* ---------------------------------------------------------------------- */
/* §18 Receiving */
/* Receiving: records are opened straight into the stdout buffer. */

/*
 * The one way out for a record that authenticated but breaks the rules:
 * its n bytes of plaintext at the end of out are wiped, never written.
 */
static enum status __attribute__((format(printf, 4, 5)))
reject_record(struct report *r, struct buf *out, size_t n, const char *fmt,
    ...)
{
	char why[NOTE_MAX / 2];
	va_list ap;

	OPENSSL_cleanse(out->data + out->len, n);
	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return session_fail(r, EXIT_AUTH, "malformed record: %s", why);
}

/* The record types: names, and their payload sizes (section 4). */
static const struct {
	const char *name;
	size_t	 min, max;
} rec_types[TYPE_END + 1] = {
	[TYPE_DATA] = { "DATA", 0, MAX_PAYLOAD },
	[TYPE_REKEY] = { "REKEY", REKEY_LEN, REKEY_LEN },
	[TYPE_CLOSE] = { "CLOSE", 0, 0 },
	[TYPE_KEY] = { "KEY", X25519_LEN, X25519_LEN },
	[TYPE_DONE] = { "DONE", 0, 0 },
	[TYPE_ACK] = { "ACK", ACK_LEN, ACK_LEN },
	[TYPE_PING] = { "PING", PING_LEN, PING_LEN },
	[TYPE_END] = { "END", END_HEAD, END_HEAD + END_TEXT_MAX },
};

/* Why a record of this type may not come now (section 4.1); NULL: it may. */
static const char *
rx_refuses(const struct conn *c, int type)
{
	switch (c->rx_state) {
	case RX_KEY0:
		return type == TYPE_KEY ? NULL : "first record is not KEY";
	case RX_WAIT_ACK:
		return type == TYPE_ACK || type == TYPE_END ? NULL :
		    "second record after a resume is not ACK";
	case RX_OPEN:
		return type == TYPE_DONE ? "DONE before CLOSE" : NULL;
	case RX_CLOSED:
		if (type == TYPE_DATA || type == TYPE_CLOSE)
			return type == TYPE_DATA ? "DATA after CLOSE" :
			    "CLOSE after CLOSE";
		/* A DONE confirms our CLOSE: there must have been one. */
		if (type == TYPE_DONE && tx_sending(c))
			return "DONE before our CLOSE";
		return NULL;
	case RX_DONE:
	case RX_ENDED:
		break;
	}
	abort();		/* nothing is opened after DONE or END */
}

/* Checks 5 to 7 of section 4: the type, the state, the payload's size. */
static enum status
check_record(const struct conn *c, struct buf *out, struct report *r,
    int type, size_t n)
{
	const char *why;

	if (type < TYPE_DATA || type > TYPE_END)
		return reject_record(r, out, n, "unknown type %d", type);
	if ((why = rx_refuses(c, type)) != NULL)
		return reject_record(r, out, n, "%s", why);
	if (n < rec_types[type].min || n > rec_types[type].max)
		return reject_record(r, out, n, "%s payload of %zu bytes",
		    rec_types[type].name, n);
	return GO_ON;
}

/*
 * The handlers of the record types: the payload is the n bytes at the
 * end of out, its size checked.
 */
static enum status
on_data(struct conn *c, struct stream *st, struct buf *out,
    struct report *r, size_t n)
{
	size_t skip = st->skip < n ? st->skip : n;

	if (st->peer_closed && c->recv_bytes + n > st->peer_length)
		return reject_record(r, out, n, "DATA past the end of the "
		    "stream at byte %llu", (unsigned long long)st->peer_length);
	/* Bytes we had handed out before the cut come again: not twice. */
	if (skip > 0) {
		memmove(out->data + out->len, out->data + out->len + skip,
		    n - skip);
		OPENSSL_cleanse(out->data + out->len + n - skip, skip);
		st->skip -= skip;
	}
	out->len += n - skip;	/* authenticated: now it may be written */
	c->recv_bytes += n;
	return GO_ON;
}

/*
 * The peer's CLOSE; after a resume, at the length its first CLOSE gave
 * (section 8.5).
 */
static enum status
on_close(struct conn *c, struct stream *st, struct buf *out,
    struct report *r, size_t n)
{
	if (st->peer_closed && c->recv_bytes != st->peer_length)
		return reject_record(r, out, n, "CLOSE at byte %llu, the stream "
		    "ended at byte %llu", (unsigned long long)c->recv_bytes,
		    (unsigned long long)st->peer_length);
	rx_got_close(c);
	st->peer_closed = 1;
	st->peer_length = c->recv_bytes;
	return GO_ON;
}

/*
 * A REKEY (doc/PROTOCOL.md section 5.3): check it, compute its DH with
 * the receive key it names, step to the next secret.
 */
static enum status
on_rekey(struct conn *c, struct buf *out, struct report *r, size_t n)
{
	uint8_t dh[X25519_LEN];
	uint32_t index;

	switch (recv_keys_use(&c->rk, out->data + out->len, dh, &index)) {
	case RK_UNANNOUNCED:
		return reject_record(r, out, n,
		    "REKEY names unannounced key %u", index);
	case RK_RETIRED:
		return reject_record(r, out, n, "REKEY names retired key %u",
		    index);
	case RK_PUBLIC:
		return reject_record(r, out, n,
		    "REKEY with a public-equivalent key");
	case RK_LOW_ORDER:
		return reject_record(r, out, n, "REKEY with a low-order key");
	case RK_OK:
		break;
	}
	OPENSSL_cleanse(out->data + out->len, n);
	dh_ratchet(&c->rx, dh);
	OPENSSL_cleanse(dh, sizeof(dh));
	c->rekeys_recv++;
	note(r, "peer rekeyed (epoch %llu)", (unsigned long long)c->rx.epoch);
	return GO_ON;
}

/* The peer's next receive key, for our REKEYs (section 5.1). */
static enum status
on_key(struct conn *c, struct buf *out, struct report *r, size_t n)
{
	int added = peer_keys_add(&c->pk, out->data + out->len);

	if (added == -1)
		return reject_record(r, out, n, "KEY announced before the last "
		    "one was used");
	if (added == -2)
		return reject_record(r, out, n,
		    "KEY with a public-equivalent key");
	OPENSSL_cleanse(out->data + out->len, n);
	rx_got_key0(c);
	/* The peer's KEY 0 read, the sandbox must kill us here. */
	if (test_hook("forbidden"))
		(void)open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	return GO_ON;
}

/*
 * An ACK (section 7.2): the peer has written count bytes of our stream,
 * so the retained bytes below count go.  They are wiped with the buffer
 * at the session's end (section 9.5), or written over before: wiping
 * every byte here would cost a sender more than its cipher.
 */
static enum status
on_ack(struct conn *c, struct stream *st, struct buf *in, struct buf *out,
    struct report *r, size_t n)
{
	const uint8_t *p = out->data + out->len;
	int first = c->rx_state == RX_WAIT_ACK;
	uint64_t count = get_u64(p);

	/* What we sealed so far, here or before the cut (next <= S). */
	if (count > st->next)
		return reject_record(r, out, n, "ACK of %llu bytes, only %llu "
		    "sent", (unsigned long long)count,
		    (unsigned long long)st->next);
	if (count < st->acked || (count == st->acked && !first))
		return reject_record(r, out, n, "ACK of %llu bytes after ACK "
		    "of %llu", (unsigned long long)count,
		    (unsigned long long)st->acked);
	in->keep -= count - st->acked;
	st->acked = count;
	if (first) {
		/* The resume point: [count, S) is sealed again (8.5). */
		in->pos -= in->keep;
		in->keep = 0;
		st->next = count;
		rx_got_resume_ack(c);
	}
	return GO_ON;
}

/* A PING: the peer's promise of its longest silence (section 7.3). */
static enum status
on_ping(struct conn *c, struct buf *out, struct report *r, size_t n)
{
	const uint8_t *p = out->data + out->len;
	unsigned interval = get_u16(p);

	if (interval < 1 || interval > MAX_INTERVAL)
		return reject_record(r, out, n, "PING interval of %u s",
		    interval);
	c->peer_interval = interval;
	return GO_ON;
}

/*
 * Is END's text clean: UTF-8, shortest forms, no surrogates, no C0 or C1
 * control and no DEL (section 9.2)?  It is shown to people.
 */
static int
end_text_clean(const uint8_t *p, size_t n)
{
	size_t i = 0, k, len;
	uint32_t cp;

	while (i < n) {
		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f)
				return 0;
			i++;
			continue;
		}
		len = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc0 ? 2 : 0;
		if (len == 0 || p[i] > 0xf4 || i + len > n)
			return 0;
		cp = p[i] & (0x7f >> len);
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < (len == 2 ? 0xa0 : len == 3 ? 0x800 : 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;	/* overlong, C1, surrogate, too big */
		i += len;
	}
	return 1;
}

/* The peer stops, and says why (section 9.2). */
static enum status
on_end(struct conn *c, struct buf *out, struct report *r, size_t n)
{
	const uint8_t *p = out->data + out->len;

	if (!end_text_clean(p + END_HEAD, n - END_HEAD))
		return reject_record(r, out, n, "END text is not clean UTF-8");
	c->peer_end.reason = p[0];
	c->peer_end.value = get_u32(p + 1);
	memcpy(c->peer_end.text, p + END_HEAD, n - END_HEAD);
	c->peer_end.text[n - END_HEAD] = '\0';
	OPENSSL_cleanse(out->data + out->len, n);
	rx_got_end(c);
	return GO_ON;
}

/* Hand an opened record, its checks passed, to its type's handler. */
static enum status
on_record(struct conn *c, struct bufs *b, struct stream *st,
    struct report *r, int type, size_t n)
{
	switch (type) {
	case TYPE_DATA:
		return on_data(c, st, &b->out, r, n);
	case TYPE_REKEY:
		return on_rekey(c, &b->out, r, n);
	case TYPE_CLOSE:
		return on_close(c, st, &b->out, r, n);
	case TYPE_KEY:
		return on_key(c, &b->out, r, n);
	case TYPE_DONE:
		rx_got_done(c);
		st->peer_done = 1;
		return GO_ON;
	case TYPE_ACK:
		return on_ack(c, st, &b->in, &b->out, r, n);
	case TYPE_PING:
		return on_ping(c, &b->out, r, n);
	}
	return on_end(c, &b->out, r, n);
}

/*
 * Authenticate the record rec (LEN_LEN + clen bytes, clen checked) into
 * the tail of b->out, check it in the order of section 4, and hand it to
 * the handler of its type.
 */
static enum status
receive_record(struct conn *c, struct bufs *b, struct stream *st,
    struct report *r, const uint8_t *rec, size_t clen)
{
	enum open_result opened;
	enum status status;
	size_t n;
	int type;

	if (c->rx.seq >= SEQ_LIMIT)
		return session_fail(r, EXIT_AUTH,
		    "malformed record: too many records under one key");
	opened = open_record(&c->rx, rec, clen, b->out.data + b->out.len,
	    &type, &n);
	hex_line(r, '<', opened == OPEN_OK ? type : 0, b->out.data + b->out.len,
	    opened == OPEN_OK ? n : 0, rec, LEN_LEN + clen);
	if (opened == OPEN_BAD_TAG)
		return session_fail(r, EXIT_AUTH,
		    "record failed authentication");
	if (opened == OPEN_NO_TYPE)
		return session_fail(r, EXIT_AUTH,
		    "malformed record: only zero bytes");
	c->recv_records++;
	if ((status = check_record(c, &b->out, r, type, n)) != GO_ON)
		return status;
	return on_record(c, b, st, r, type, n);
}

/*
 * A password holder could send REKEYs that cost it little (one E, used
 * again and again) and cost us a DH each: we open at most REKEY_BURST of
 * them at once, then REKEY_PER_SEC a second, and leave the rest unread
 * meanwhile (flow control, not an error).  The budget is in thousandths.
 */
static void
rekey_budget(struct conn *c, int64_t t)
{
	c->rekey_budget += (t - c->rekey_budget_at) * REKEY_PER_SEC;
	c->rekey_budget_at = t;
	if (c->rekey_budget > REKEY_BURST * 1000)
		c->rekey_budget = REKEY_BURST * 1000;
}

/*
 * Whether the budget lets us open a record.  Once spent, we wait until
 * REKEY_WAKE REKEYs' worth has come back, so that a flood wakes us every
 * 20 ms for 20 records, not every millisecond for one.
 */
static int
rekey_may_open(struct conn *c)
{
	if (c->rekey_held && c->rekey_budget < REKEY_WAKE * 1000)
		return 0;
	c->rekey_held = c->rekey_budget < 1000;
	return !c->rekey_held;
}

/*
 * Open every complete record in b->rxb that stdout has room for.  After
 * the peer's DONE or END nothing more is opened: what follows is dropped.
 */
static enum status
process_rx(struct conn *c, struct bufs *b, struct stream *st,
    struct report *r)
{
	const uint8_t *rec;
	size_t avail, clen;
	enum status status;
	uint64_t rekeys;

	rekey_budget(c, now_ms());
	while (!rx_over(c) && (avail = buf_pending(&b->rxb)) >= LEN_LEN) {
		rec = b->rxb.data + b->rxb.pos;
		clen = get_u16(rec);
		if (clen < MIN_RECORD || clen > MAX_RECORD)
			return session_fail(r, EXIT_AUTH,
			    "malformed record: bad length %zu", clen);
		if (avail < LEN_LEN + clen || output_busy(r, &b->out) ||
		    buf_room(&b->out, MAX_INNER) < MAX_INNER ||
		    !errq_room(r, RECV_BATCH) || !rekey_may_open(c))
			break;
		rekeys = c->rekeys_recv;
		if ((status = receive_record(c, b, st, r, rec, clen)) != GO_ON)
			return status;
		b->rxb.pos += LEN_LEN + clen;
		c->rekey_budget -= (c->rekeys_recv - rekeys) * 1000;
	}
	if (rx_over(c))
		b->rxb.pos = b->rxb.len;
	return GO_ON;
}

/* Is a whole record waiting in rxb (only stdout's backlog holds it)? */
static int
rx_record_waiting(const struct buf *rxb)
{
	const uint8_t *rec = rxb->data + rxb->pos;
	size_t avail = buf_pending(rxb);

	return avail >= LEN_LEN &&
	    avail >= LEN_LEN + get_u16(rec);
}

/* ---------------------------------------------------------------------- */
/* §19 The -e command */
/* -e: a command per session. */

/* Is entry, "NAME=value", a value of name? */
static int
env_is(const char *entry, const char *name)
{
	size_t n = strlen(name);

	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Our environment, with vars (the three SECCHAT_ ones) in place. */
static char **
command_env(char *const vars[])
{
	size_t n, v, i, j, k;
	char **env;

	for (n = 0; environ[n] != NULL; n++)
		;
	for (v = 0; vars[v] != NULL; v++)
		;
	if ((env = calloc(n + v + 1, sizeof(*env))) == NULL)
		return NULL;
	for (i = j = 0; i < n; i++)
		if (!env_is(environ[i], "SECCHAT_PEER_ADDR") &&
		    !env_is(environ[i], "SECCHAT_PEER_PORT") &&
		    !env_is(environ[i], "SECCHAT_SESSION"))
			env[j++] = environ[i];
	for (k = 0; k < v; k++)
		env[j++] = vars[k];
	return env;
}

/*
 * Run /bin/sh -c command with stdin, stdout and stderr fds[0..3).  In the
 * launcher, for a session.  SIGPIPE, which we ignore, is the default
 * again for the command.
 */
static int
command_run(const char *command, const int fds[3], char *const vars[],
    pid_t *pid)
{
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t def, none;
	char **env;
	int e, i;

	if ((env = command_env(vars)) == NULL)
		return ENOMEM;
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGCHLD);
	if ((e = posix_spawn_file_actions_init(&fa)) != 0) {
		free(env);
		return e;
	}
	for (i = 0; i < 3 && e == 0; i++)
		e = posix_spawn_file_actions_adddup2(&fa, fds[i], i);
	if (e == 0 && (e = posix_spawnattr_init(&at)) == 0) {
		if ((e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF |
		    POSIX_SPAWN_SETSIGMASK)) == 0 &&
		    (e = posix_spawnattr_setsigdefault(&at, &def)) == 0 &&
		    (e = posix_spawnattr_setsigmask(&at, &none)) == 0)
			e = posix_spawn(pid, "/bin/sh", &fa, &at, argv, env);
		posix_spawnattr_destroy(&at);
	}
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	return e;
}

/*
 * -e's launcher.  A session is in a seccomp filter with no exec from
 * before its first network byte, so it cannot start its command itself:
 * the launcher does, a process forked at the start of the program, before
 * the password is read or any key made, which holds nothing secret.  It
 * does nothing until a session whose handshake has succeeded asks
 * (command_start), and a session whose handshake fails never asks, so no
 * command runs for it.  It answers on the request's channel: the pid, then
 * the wait status at the command's exit; a 'K' there kills the command.
 * (A session taken over before its handshake succeeds can ask too; the
 * filter keeps it from doing anything else.)
 */

/* Answer on a session's channel; it may be gone, which is its business. */
static void
launcher_say(int chan, char what, int32_t v)
{
	struct launch_word word = { .v = v, .what = what };

	(void)send(chan, &word, sizeof(word), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Is the request whole, every string ended? */
static int
launch_req_valid(const struct launch_req *q)
{
	return memchr(q->number, '\0', sizeof(q->number)) != NULL &&
	    memchr(q->addr, '\0', sizeof(q->addr)) != NULL &&
	    memchr(q->port, '\0', sizeof(q->port)) != NULL;
}

/* One request: run the command for it, in a free slot of tab. */
static void
launcher_request(const char *command, struct launched *tab, int sock)
{
	char addr_var[NI_MAXHOST + 24], port_var[NI_MAXSERV + 24], num_var[48];
	char *vars[] = { addr_var, port_var, num_var, NULL };
	struct launch_req q;
	size_t nfds, i, slot;
	int fds[4], e = EAGAIN;	/* chan, stdin, stdout, stderr */
	pid_t pid;

	if (os_recv_fds(sock, &q, sizeof(q), fds, &nfds) != sizeof(q) ||
	    nfds != 4 || !launch_req_valid(&q)) {
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	snprintf(addr_var, sizeof(addr_var), "SECCHAT_PEER_ADDR=%s", q.addr);
	snprintf(port_var, sizeof(port_var), "SECCHAT_PEER_PORT=%s", q.port);
	snprintf(num_var, sizeof(num_var), "SECCHAT_SESSION=%s", q.number);
	for (slot = 0; slot < LAUNCH_MAX && tab[slot].pid != 0; slot++)
		;
	if (slot < LAUNCH_MAX)
		e = command_run(command, fds + 1, vars, &pid);
	for (i = 1; i < 4; i++)
		close(fds[i]);
	if (e != 0) {
		launcher_say(fds[0], 'E', e);
		close(fds[0]);
		return;
	}
	launcher_say(fds[0], 'R', pid);
	tab[slot].pid = pid;
	tab[slot].chan = fds[0];
}

/* SIGCHLD only interrupts the launcher's poll. */
static void
launcher_on_child(int sig)
{
	(void)sig;
}

/* Commands that exited: their sessions learn how. */
static void
launcher_reap(struct launched *tab)
{
	pid_t pid;
	size_t i;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (i = 0; i < LAUNCH_MAX; i++)
			if (tab[i].pid == pid) {
				if (tab[i].chan != -1) {
					launcher_say(tab[i].chan, 'X', st);
					close(tab[i].chan);
				}
				tab[i].pid = 0;
				tab[i].chan = -1;
			}
}

/* A session's word: 'K' kills its command; its end, nothing. */
static void
launcher_heard(struct launched *l)
{
	struct launch_word word;
	ssize_t r = recv(l->chan, &word, sizeof(word), MSG_DONTWAIT);

	if (r == sizeof(word) && word.what == 'K')
		(void)kill(l->pid, SIGKILL);
	else if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
		close(l->chan);
		l->chan = -1;		/* the command runs on, as it may */
	}
}

/*
 * The poll set: the launcher's socket, then the channels it holds, no
 * more (poll refuses a set larger than the open-files limit); which[i]
 * is the slot of pfd[1 + i].
 */
static nfds_t
launcher_pollfds(struct pollfd *pfd, size_t *which, int sock,
    const struct launched *tab)
{
	size_t i, n = 0;

	pfd[0].fd = sock;
	pfd[0].events = POLLIN;
	for (i = 0; i < LAUNCH_MAX; i++)
		if (tab[i].pid != 0 && tab[i].chan != -1) {
			which[n] = i;
			pfd[1 + n].fd = tab[i].chan;
			pfd[1 + n++].events = POLLIN;
		}
	return 1 + n;
}

/*
 * The launcher's process: the program's signal handlers and descriptors
 * are not its own; it dies with the program.  SIGCHLD interrupts only its
 * poll.  Its socket's end (no session left to ask) ends it.
 */
static void __attribute__((noreturn))
launcher_main(const char *command, int sock, pid_t parent)
{
	static struct launched tab[LAUNCH_MAX];
	static struct pollfd pfd[1 + LAUNCH_MAX];
	static size_t which[LAUNCH_MAX];
	struct sigaction sa;
	sigset_t chld, none;
	nfds_t i, n;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	if (sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1 ||
	    sigaction(SIGQUIT, &sa, NULL) == -1 ||
	    (sa.sa_handler = launcher_on_child,
	    sigaction(SIGCHLD, &sa, NULL)) == -1 ||
	    os_die_with_parent() == -1 || getppid() != parent ||
	    (fd = open("/dev/null", O_RDWR)) == -1 ||
	    dup2(fd, STDIN_FILENO) == -1 || dup2(fd, STDOUT_FILENO) == -1)
		_exit(EXIT_FAIL);
	close(fd);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	(void)sigprocmask(SIG_BLOCK, &chld, &none);
	sigdelset(&none, SIGCHLD);
	for (i = 0; i < LAUNCH_MAX; i++)
		tab[i].chan = -1;
	for (;;) {
		n = launcher_pollfds(pfd, which, sock, tab);
		if (os_poll_signals(pfd, n, &none) == -1) {
			if (errno != EINTR)
				_exit(EXIT_FAIL);
			for (i = 0; i < n; i++)
				pfd[i].revents = 0;
		}
		/* Before a reaped slot is taken again: words, then exits. */
		for (i = 1; i < n; i++)
			if (pfd[i].revents && tab[which[i - 1]].chan != -1)
				launcher_heard(&tab[which[i - 1]]);
		launcher_reap(tab);
		if (pfd[0].revents & (POLLHUP | POLLERR))
			_exit(EXIT_OK);
		if (pfd[0].revents & POLLIN)
			launcher_request(command, tab, sock);
	}
}

/*
 * Fork the launcher, at the start, before anything secret exists; the
 * socket that sessions ask it on.  The program's own end of it is
 * close-on-exec and goes to each serving child.
 */
static int
launcher_start(const char *command)
{
	pid_t parent = getpid(), pid;
	int sv[2];

	if (os_socketpair(SOCK_SEQPACKET, sv) == -1)
		err(EXIT_FAIL, "-e: socketpair");
	if ((pid = fork()) == -1)
		err(EXIT_FAIL, "-e: fork");
	if (pid == 0) {
		close(sv[0]);
		launcher_main(command, sv[1], parent);
	}
	close(sv[1]);
	return sv[0];
}

/*
 * Ask the launcher for the command, fds[1..4) its stdin, stdout and
 * stderr, fds[0] the channel for the answer; -1 with errno if it cannot
 * be asked.
 */
static int
command_ask(int launcher, int net, unsigned long number, const int fds[4])
{
	struct launch_req q;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";

	memset(&q, 0, sizeof(q));
	if (getpeername(net, (struct sockaddr *)&ss, &len) == 0)
		addr_text((struct sockaddr *)&ss, len, host, port);
	snprintf(q.number, sizeof(q.number), "%lu", number);
	snprintf(q.addr, sizeof(q.addr), "%s", host);
	snprintf(q.port, sizeof(q.port), "%s", port);
	return os_send_fds(launcher, &q, sizeof(q), fds, 4) == sizeof(q) ?
	    0 : -1;
}

/* The launcher's answer to a request: the pid, or -1 with errno. */
static pid_t
command_started(int chan)
{
	struct launch_word word;
	ssize_t r = read_full(chan, &word, sizeof(word),
	    deadline_in(COMMAND_GRACE));

	if (r == sizeof(word) && word.what == 'R' && word.v > 0)
		return word.v;
	errno = r == sizeof(word) && word.what == 'E' ? word.v :
	    r == -1 ? errno : EPIPE;
	return -1;
}

/*
 * Start the -e command for this connection, once its handshake has
 * succeeded and never before: its stdout becomes the connection's input
 * and its stdin the connection's output; its stderr is ours.  Anything
 * that confines the session further (the session's filter) goes after.
 * CMD_NONE -> CMD_RUNNING; SECCHAT_SESSION is number.
 */
static enum status
command_start(struct command *cmd, struct written *w, struct report *r,
    int launcher, int net, unsigned long number)
{
	int p[3][2], n, fds[4];	/* its stdin, its stdout, the answer's */
	pid_t pid;

	for (n = 0; n < 3 && (n < 2 ? os_pipe(p[n]) :
	    os_socketpair(SOCK_SEQPACKET, p[n])) == 0; n++)
		;
	if (n < 3) {
		close_pipes(p, n);
		return session_fail(r, EXIT_FAIL, "-e: %s", strerror(errno));
	}
	if (fcntl(p[2][0], F_SETFL, O_NONBLOCK) == -1)
		abort();		/* our own new socket */
	fds[0] = p[2][1], fds[1] = p[0][0], fds[2] = p[1][1];
	fds[3] = STDERR_FILENO;
	pid = command_ask(launcher, net, number, fds) == -1 ? -1 :
	    command_started(p[2][0]);
	for (n = 0; n < 3; n++)		/* theirs: the launcher has them */
		close(fds[n]);
	if (pid == -1) {
		close(p[0][1]);
		close(p[1][0]);
		close(p[2][0]);
		return session_fail(r, EXIT_FAIL, "-e: /bin/sh: %s",
		    strerror(errno));
	}
	if (fcntl(p[0][1], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(p[1][0], F_SETFL, O_NONBLOCK) == -1)
		abort();		/* our own new pipes */
	cmd->pid = pid;
	cmd->chan = p[2][0];
	cmd->from = p[1][0];
	cmd->to = p[0][1];
	cmd->state = CMD_RUNNING;
	cmd->feed = FEED_OPEN;
	w->pipe_fd = cmd->to;		/* written: once the command reads it */
	return GO_ON;
}

/*
 * CMD_RUNNING -> CMD_OUTPUT_ENDED: the command's stdout ended.  Its
 * output is complete only if it was not killed: CLOSE waits up to
 * COMMAND_EOF_MS for it to exit (a killed command's end of stdout and
 * exit come together), and if it is still running then, it only closed
 * its stdout, and CLOSE goes.
 */
static void
command_output_ended(struct command *cmd)
{
	close(cmd->from);
	cmd->from = -1;
	cmd->output_end = now_ms();
	cmd->state = CMD_OUTPUT_ENDED;
}

/* -> CMD_EXITED: reaped, with its wait status. */
static void
command_exited(struct command *cmd, int status)
{
	cmd->status = status;
	cmd->state = CMD_EXITED;
}

/*
 * Has the command exited?  The launcher says so on the channel; wait for
 * its word until deadline (ms), or not at all if 0.  The launcher gone,
 * the command is as good as killed.
 */
static void
command_reap(struct command *cmd, int64_t deadline)
{
	struct launch_word word;
	ssize_t r;

	if (cmd->state == CMD_EXITED)
		return;
	r = deadline ? read_full(cmd->chan, &word, sizeof(word), deadline) :
	    read(cmd->chan, &word, sizeof(word));
	if (r == sizeof(word) && word.what == 'X')
		command_exited(cmd, word.v);
	else if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR &&
	    errno != ETIMEDOUT))
		command_exited(cmd, SIGKILL);	/* a wait status: killed */
}

/* Kill the command: the launcher does it. */
static void
command_kill(struct command *cmd)
{
	struct launch_word word = { .v = 0, .what = 'K' };

	(void)send(cmd->chan, &word, sizeof(word), MSG_NOSIGNAL);
}

/* FEED_OPEN -> FEED_DONE: the peer's data is all in its stdin. */
static void
command_fed(struct command *cmd, struct written *w)
{
	written_pipe_closed(w);
	close(cmd->to);
	cmd->to = -1;
	cmd->feed = FEED_DONE;
}

/*
 * FEED_OPEN -> FEED_REFUSED: it stopped reading.  What comes after is
 * wiped and dropped, and since it was not delivered, no DONE confirms it;
 * nor what it left unread in its pipe.
 */
static void
command_refused(struct command *cmd, struct written *w)
{
	written_pipe_closed(w);
	close(cmd->to);
	cmd->to = -1;
	cmd->feed = FEED_REFUSED;
	cmd->refused = now_ms();
}

/* Is its exit awaited, its stdout over, before our input ends? */
static int
command_exit_awaited(const struct command *cmd, const struct conn *c)
{
	return cmd->state == CMD_OUTPUT_ENDED && c->tx_state == TX_OPEN &&
	    now_ms() - cmd->output_end < COMMAND_EOF_MS;
}

/*
 * Has the refusal to read cost the session?  Once our CLOSE is on the
 * wire (txb empty) and the peer's has come, or COMMAND_GRACE seconds
 * have passed (a peer may send forever): yes.
 */
static int
command_undelivered(const struct command *cmd, const struct conn *c,
    const struct buf *txb)
{
	return cmd->feed == FEED_REFUSED && c->tx_state == TX_CLOSED &&
	    buf_pending(txb) == 0 && (rx_closed(c) ||
	    now_ms() - cmd->refused >= secs_ms(COMMAND_GRACE));
}

/*
 * The peer's data is all in the command's stdin (its CLOSE came, the
 * output buffer is empty): once the command has read it all, its stdin
 * ends, so that a command reading to the end can finish; if it stops
 * reading first (no reader left: POLLERR), it has refused the rest.
 * Until either, the data is not written, and no DONE goes.
 */
static void
command_feed_end(struct command *cmd, struct written *w)
{
	struct pollfd pfd = { .fd = cmd->to, .events = POLLOUT };

	if (os_unread(cmd->to) == 0)
		command_fed(cmd, w);
	else if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))
		command_refused(cmd, w);
}

/*
 * Each round of the loop, with -e.  The command's stdin ends once the
 * peer's data is all in it and read (command_feed_end).  Once the
 * command's stdout has ended and it has exited, our CLOSE may go; killed
 * by a signal, it ends the session without CLOSE, so the peer sees a
 * truncated stream.
 */
static enum status
command_step(struct command *cmd, struct conn *c, struct bufs *b,
    struct report *r, struct end *e)
{
	if (cmd->state == CMD_NONE)
		return GO_ON;
	if (cmd->feed == FEED_REFUSED) {
		OPENSSL_cleanse(b->out.data + b->out.pos, buf_pending(&b->out));
		b->out.pos = b->out.len;
	} else if (cmd->feed == FEED_OPEN && rx_closed(c) &&
	    buf_pending(&b->out) == 0)
		command_feed_end(cmd, &b->wr);
	if (command_undelivered(cmd, c, &b->txb)) {
		e->reason = END_COMMAND_UNREAD;
		e->value = cmd->state == CMD_EXITED &&
		    WIFEXITED(cmd->status) ? WEXITSTATUS(cmd->status) : 256;
		return session_fail(r, EXIT_FAIL, "the command stopped reading: "
		    "the peer's data was not all delivered");
	}
	if (cmd->state == CMD_RUNNING || c->tx_state != TX_OPEN)
		return GO_ON;
	command_reap(cmd, 0);
	if (command_exit_awaited(cmd, c))
		return GO_ON;
	if (cmd->state == CMD_EXITED && WIFSIGNALED(cmd->status)) {
		e->reason = END_COMMAND_KILLED;
		e->value = WTERMSIG(cmd->status);
		signal_name(e->text, WTERMSIG(cmd->status));
		return session_fail(r, EXIT_FAIL, "command killed by signal %d",
		    WTERMSIG(cmd->status));
	}
	tx_input_ended(c);
	return GO_ON;
}

/*
 * Waiting for the command's exit after its stdout ended, for it to read
 * the last of the peer's data, or for the peer's CLOSE after it stopped
 * reading: poll often.
 */
static int
command_waiting(const struct command *cmd, const struct conn *c)
{
	if (cmd->state == CMD_NONE)	/* no -e: feed stays FEED_OPEN */
		return 0;
	return command_exit_awaited(cmd, c) || cmd->feed == FEED_REFUSED ||
	    (cmd->feed == FEED_OPEN && rx_closed(c));
}

/*
 * The session is over: close the command's pipes and wait for it, at
 * most COMMAND_GRACE seconds before SIGKILL, and say how it ended (an
 * exit status of 0 too if say_zero).
 */
static enum status
command_finish(struct command *cmd, struct written *w, struct report *r,
    int say_zero, enum status status)
{
	int said = cmd->state == CMD_EXITED;	/* by command_step */

	if (cmd->state == CMD_NONE)
		return status;
	if (cmd->feed == FEED_OPEN)
		command_fed(cmd, w);
	if (cmd->state == CMD_RUNNING)
		command_output_ended(cmd);
	command_reap(cmd, deadline_in(COMMAND_GRACE));
	if (cmd->state != CMD_EXITED) {
		command_kill(cmd);
		command_reap(cmd, deadline_in(COMMAND_GRACE));
	}
	close(cmd->chan);
	cmd->chan = -1;
	if (cmd->state != CMD_EXITED)
		return status;
	if (WIFSIGNALED(cmd->status)) {
		if (status == EXIT_OK || !said)
			note_always(r, "command killed by signal %d",
			    WTERMSIG(cmd->status));
		return status == EXIT_OK ? EXIT_FAIL : status;
	}
	if (say_zero || WEXITSTATUS(cmd->status))
		note_always(r, "command exited with status %d",
		    WEXITSTATUS(cmd->status));
	return status;
}

/* ---------------------------------------------------------------------- */
/* §20 The engine */
/* The I/O engine: one poll() over stdin, the socket and stdout. */

/*
 * One session and what it joins: the connection (socket, record state),
 * the session's streams, the local ends, the report, the chat, the -e
 * command and the buffers.  A -k listener keeps it for its next session:
 * conn_begin and conn_end make and wipe what is a connection's (and, as
 * long as a session has one connection, its streams); the rest is fixed
 * at session_alloc (a serving child sets hex_tty and out_tty after it).
 */
struct session {
	const struct options *opt;
	int	 stdin_tty;
	int	 hex_tty;		/* stderr is a terminal: dim hex */
	int	 out_tty;		/* stdout a terminal: the view renders */
	unsigned long number;		/* of the connection, for -e */
	int	 one_session;		/* the process ends with this session */
	size_t	 pad;			/* DATA inner lengths are multiples of it */
	int	 net;			/* the connection's socket */
	int	 in_fd, out_fd;		/* stdin, stdout, or the command's */
	int64_t	 last_activity;		/* ms, last DATA progress; for -w */
	struct bufs b;
	struct report rep;
	struct chat chat;
	struct command cmd;
	struct conn c;
	struct stream st;
	struct end end;			/* ours, once we stop without DONE */
	int	 die_signal;		/* end the process by it, at conn_end */
	int	 is_a;			/* the connector: its keys are c2s */
	struct resumable rm;		/* sid, g, rs(g), the window (8.1) */
	rejoin_fn *rejoin;		/* the role's next connection; NULL: none */
	void	*rejoin_arg;
	int64_t	 rejoin_next;		/* ms: a listener looks for a RESUME */
	int64_t	 lost_at;		/* ms: the connection was lost; 0: not */
	char	 lost_why[64];		/* the cause, for 9.4 */
	char	 lost_end[64];		/* 9.4's END: why it was not resumed */
};

/* A lone listener looks at its other connections this often (8.3). */
#define REJOIN_LOOK_MS	100

/* Hex lines before the plaintext they carry: stderr is served first. */
enum {
	POLL_STDIN, POLL_NETOUT, POLL_NETIN, POLL_STDERR, POLL_STDOUT,
	POLL_ACKS, POLL_COUNT
};

/* The input: stdin, or the command's stdout until it ends; -1: none. */
static int
input_fd(const struct session *s)
{
	if (s->cmd.state == CMD_NONE)
		return STDIN_FILENO;
	return s->cmd.state == CMD_RUNNING ? s->cmd.from : -1;
}

/* The output: stdout, or the command's stdin while it is fed; -1: none. */
static int
output_fd(const struct session *s)
{
	if (s->cmd.state == CMD_NONE)
		return STDOUT_FILENO;
	return s->cmd.feed == FEED_OPEN ? s->cmd.to : -1;
}

/*
 * Our END's reason, value and text, unless one is set already.  The text
 * is kept to printable ASCII (our own lines and strerror's are), so that
 * it is clean UTF-8 however it was cut.
 */
static void
end_set(struct session *s, int reason, uint32_t value, const char *text)
{
	size_t i;

	if (s->end.reason != END_NONE)
		return;
	s->end.reason = reason;
	s->end.value = value;
	for (i = 0; i < END_TEXT_MAX && text[i] != '\0'; i++)
		s->end.text[i] = text[i] >= 0x20 && text[i] < 0x7f ?
		    text[i] : '?';
	s->end.text[i] = '\0';
}

/*
 * END is in the kernel's hands: half-close, and read what the peer still
 * sends until it closes too, for at most END_FLUSH_MS.  Closing with its
 * bytes unread would reset the connection, and a reset can make the
 * peer's kernel drop the END before the peer reads it.
 */
static void
end_linger(struct session *s)
{
	int64_t until = now_ms() + END_FLUSH_MS;
	uint8_t *p = s->b.rxb.data;
	ssize_t r;

	(void)shutdown(s->net, SHUT_WR);
	do
		r = read(s->net, p, s->b.rxb.cap);
	while (r > 0 || (r == -1 && (errno == EINTR || (errno == EAGAIN &&
	    wait_fd(s->net, POLLIN, until) == 0))));
	s->b.rxb.pos = s->b.rxb.len = 0;
}

/*
 * We stop without a normal end (doc/PROTOCOL.md 9.2): seal END, with
 * the reason set before or else one from status and the line just
 * printed, behind what txb holds, and give it END_FLUSH_MS to reach the
 * kernel.  A direction that cannot seal (DONE or END sealed, the socket
 * failed) sends nothing.  Returns status.
 */
static enum status
end_session(struct session *s, enum status status)
{
	int64_t until = now_ms() + END_FLUSH_MS;
	struct buf *txb = &s->b.txb;
	size_t need = 2 * (LEN_LEN + MAX_RECORD);

	end_set(s, status == EXIT_AUTH ? END_REJECTED : END_OTHER, 0,
	    s->rep.last);
	if (!tx_keying(&s->c))
		return status;
	if (buf_room(txb, need) < need) {
		if (write_full(s->net, txb->data + txb->pos, buf_pending(txb),
		    until) == -1)
			return status;
		txb->pos = txb->len;
	}
	send_end(&s->c, txb, &s->st, written_count(&s->b.wr), &s->rep,
	    &s->end);
	if (write_full(s->net, txb->data + txb->pos, buf_pending(txb),
	    until) == 0)
		end_linger(s);
	txb->pos = txb->len;
	return status;
}

static enum status
read_stdin(struct session *s)
{
	struct buf *in = &s->b.in;
	size_t room = buf_room(in, IN_CAP / 2);
	uint8_t typed[KEYS_MAX];
	ssize_t r;

	if (s->chat.edit) {
		/* Keys go through the editor, which may drop some bytes. */
		r = read(input_fd(s), typed, room < sizeof(typed) ? room :
		    sizeof(typed));
		if (r > 0)
			editor_input(&s->chat, &s->c, in, typed, r);
		OPENSSL_cleanse(typed, sizeof(typed));
	} else if ((r = read(input_fd(s), in->data + in->len,
	    room < READ_MAX ? room : READ_MAX)) > 0)
		in->len += r;
	if (r > 0)
		s->last_activity = s->st.input_at = now_ms();
	else if (r == 0 && s->cmd.state != CMD_NONE)
		command_output_ended(&s->cmd);
	else if (r == 0)
		tx_input_ended(&s->c);
	else if (errno != EAGAIN && errno != EINTR) {
		end_set(s, END_INPUT_FAILED, 0, strerror(errno));
		return session_fail(&s->rep, EXIT_FAIL, "read from stdin: %s",
		    strerror(errno));
	}
	return GO_ON;
}

/*
 * Any -> TX_FAILED: the connection no longer takes our data.  Our
 * direction is over; the peer's may still say why (its END), so it is
 * read on until it ends: then the connection is lost.
 */
static void
net_refused(struct session *s, int e)
{
	s->c.tx_errno = e;
	s->b.txb.pos = s->b.txb.len;
	if (s->c.tx_state != TX_FAILED)
		s->c.tx_failed_in = s->c.tx_state;
	s->c.tx_state = TX_FAILED;
	direction_free(&s->c.tx);
}

/* The socket's pending error (SO_ERROR), 0 if none. */
static int
net_error(int net)
{
	socklen_t len = sizeof(int);
	int e = 0;

	if (getsockopt(net, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		return 0;
	return e;
}

/*
 * Nothing to send, yet poll reported the socket: only an error or a hangup
 * does while events is 0 (set_pollfds), so the peer is gone.
 */
static void
net_gone(struct session *s)
{
	int e = net_error(s->net);

	net_refused(s, e != 0 ? e : ECONNRESET);
}

static void
write_net(struct session *s)
{
	struct buf *txb = &s->b.txb;
	ssize_t r;

	if (buf_pending(txb) == 0) {
		net_gone(s);
		return;
	}
	r = write(s->net, txb->data + txb->pos, buf_pending(txb));
	if (r > 0)
		txb->pos += r;
	else if (r == -1 && errno != EAGAIN && errno != EINTR)
		net_refused(s, errno);
}

/* The peer's bytes; an error loses the connection (section 7.3). */
static void
read_net(struct session *s)
{
	struct buf *rxb = &s->b.rxb;
	size_t room = buf_room(rxb, LEN_LEN + MAX_RECORD);
	ssize_t r;

	if ((r = read(s->net, rxb->data + rxb->len,
	    room < READ_MAX ? room : READ_MAX)) > 0) {
		rxb->len += r;
		s->c.last_heard = now_ms();
		s->c.quiet_said = 0;
	} else if (r == 0 && net_error(s->net) == ECONNRESET)
		s->c.rx_errno = ECONNRESET;	/* a reset can read as an end */
	else if (r == 0)
		rx_got_eof(&s->c);
	else if (r == -1 && errno != EAGAIN && errno != EINTR)
		s->c.rx_errno = errno;
}

/* Write what b holds to the terminal side (stdout or stderr) fd. */
static ssize_t
write_local(struct session *s, int fd, struct buf *b)
{
	ssize_t r;

	editor_hide(&s->chat);
	progress_hide(&s->rep);
	if ((r = write(fd, b->data + b->pos, buf_pending(b))) > 0)
		b->pos += r;
	return r;
}

/* The hex display holds the session back like stdout, but never ends it. */
static void
write_stderr(struct session *s)
{
	if (write_local(s, s->rep.fd, &s->rep.q) == -1 &&
	    errno != EAGAIN && errno != EINTR)
		s->rep.q.pos = s->rep.q.len = 0;	/* stderr is for people */
}

/* Output failed with e: say so, and END says it to the peer. */
static enum status
output_failed(struct session *s, int e)
{
	end_set(s, END_OUTPUT_FAILED, 0, strerror(e));
	return session_fail(&s->rep, EXIT_FAIL, "write to stdout: %s",
	    strerror(e));
}

/*
 * The peer's bytes to the output: what write(2) took is counted
 * (written_add), W of 7.1 being written_count.  A command that reads no
 * more is the command layer's to handle.
 */
static enum status
write_stdout(struct session *s)
{
	size_t pos = s->b.out.pos;
	ssize_t r;

	if (s->out_tty) {
		progress_hide(&s->rep);
		if ((r = write_terminal(&s->chat, &s->b.out,
		    io_deadline(s->opt))) == -1)
			return output_failed(s, errno);
		written_add(&s->b.wr, s->b.out.pos - pos, r);
		s->last_activity = now_ms();
		return GO_ON;
	}
	if ((r = write_local(s, output_fd(s), &s->b.out)) > 0) {
		written_add(&s->b.wr, r, r);
		s->last_activity = now_ms();
	}
	if (r != -1 || errno == EAGAIN || errno == EINTR)
		return GO_ON;
	if (errno == EPIPE && s->cmd.state != CMD_NONE) {
		command_refused(&s->cmd, &s->b.wr);
		return GO_ON;
	}
	s->b.out.pos = s->b.out.len;	/* nowhere to go: dropped, wiped later */
	return output_failed(s, errno);
}

/* Silence that loses the connection, ms: max(-L, 2 x the peer's interval). */
static int64_t
loss_ms(const struct session *s)
{
	unsigned limit = s->opt->loss;

	if (limit < 2 * s->c.peer_interval)
		limit = 2 * s->c.peer_interval;
	return secs_ms(limit);
}

/* until, or t if sooner. */
static int64_t
sooner(int64_t until, int64_t t)
{
	return t < until ? t : until;
}

/* The next moment a timer of the connection falls due (ms; INT64_MAX). */
static int64_t
conn_timers(struct session *s, int64_t t)
{
	int64_t until = INT64_MAX;
	const struct conn *c = &s->c;

	if (tx_keying(c)) {
		until = c->last_sealed + secs_ms(s->opt->interval);
		if (written_count(&s->b.wr) > s->st.ack_sent)
			until = sooner(until, s->st.ack_wait == 0 ? t :
			    s->st.ack_wait + ACK_MS);
	}
	if (!rx_over(c) && !c->rx_eof) {
		until = sooner(until, c->last_heard + loss_ms(s));
		if (s->rep.chat && !c->quiet_said)
			until = sooner(until, c->last_heard + QUIET_MS);
	}
	/* A partial line waits LINE_WAIT_MS for more. */
	if (c->tx_state == TX_OPEN && !s->opt->bflag &&
	    buf_pending(&s->b.in) > 0)
		until = sooner(until, s->st.input_at + LINE_WAIT_MS);
	/* REKEYs opened too fast: wait for REKEY_WAKE more of them. */
	if (c->rekey_held && rx_record_waiting(&s->b.rxb))
		until = sooner(until, c->rekey_budget_at + 1 +
		    (REKEY_WAKE * 1000 - c->rekey_budget) / REKEY_PER_SEC);
	return until;
}

/* Milliseconds until the next timer (-w, rekey, liveness ...); -1: none. */
static int
poll_timeout(struct session *s, int64_t t)
{
	int64_t until = conn_timers(s, t), d;

	if (s->opt->timeout >= 0)
		until = sooner(until, s->last_activity +
		    secs_ms(s->opt->timeout));
	/*
	 * A full txb or errq rekeys when it drains, and a REKEY waits for the
	 * peer's KEY 0 (its arrival wakes poll): waiting is not a timer.
	 */
	if (tx_keying(&s->c) && s->c.tx.data_records > 0 &&
	    s->opt->rekey_secs != 0 && s->c.pk.count > 0 &&
	    tx_room(&s->rep, &s->b)) {
		d = s->c.tx.first_data + secs_ms(s->opt->rekey_secs);
		until = sooner(until, d);
	}
	if (s->rejoin != NULL && !s->is_a && s->rm.window != 0)
		until = sooner(until, s->rejoin_next);
	if (command_waiting(&s->cmd, &s->c))
		return 10;
	/* The progress line's clock runs while nothing moves. */
	if (report_ticks(&s->rep))
		until = sooner(until, t + PROGRESS_MS);
	/* poll's timeout stops while the machine sleeps: look again. */
	if (until != INT64_MAX)
		until = sooner(until, t + REKEY_CHECK_MS);
	if (until == INT64_MAX)
		return -1;
	d = until - t;
	return d < 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
}

static void
set_pollfds(struct session *s, struct pollfd pfd[POLL_COUNT])
{
	const struct bufs *b = &s->b;

	pfd[POLL_STDIN].fd = s->c.tx_state == TX_OPEN &&
	    buf_room(&s->b.in, IN_CAP / 2) >= stdin_room(&s->chat) ?
	    input_fd(s) : -1;
	pfd[POLL_STDIN].events = POLLIN;
	/* After the peer's EOF, while ours is due, a reset must still wake us. */
	pfd[POLL_NETOUT].fd = buf_pending(&b->txb) > 0 ||
	    (s->c.rx_eof && !tx_over(&s->c)) ? s->net : -1;
	pfd[POLL_NETOUT].events = buf_pending(&b->txb) > 0 ? POLLOUT : 0;
	pfd[POLL_NETIN].fd = !s->c.rx_eof && s->c.rx_errno == 0 &&
	    !rx_over(&s->c) && buf_room(&s->b.rxb, LEN_LEN + MAX_RECORD) > 0 ?
	    s->net : -1;
	pfd[POLL_NETIN].events = POLLIN;
	/* Time we are not ready to read is no silence of the peer's (7.3). */
	if (pfd[POLL_NETIN].fd == -1)
		s->c.last_heard = now_ms();
	pfd[POLL_STDERR].fd = buf_pending(&s->rep.q) > 0 ? s->rep.fd : -1;
	pfd[POLL_STDERR].events = POLLOUT;
	/* In one file, a record's hex line goes before its plaintext. */
	pfd[POLL_STDOUT].fd = buf_pending(&b->out) > 0 &&
	    !(s->rep.shared && buf_pending(&s->rep.q) > 0) ? output_fd(s) : -1;
	pfd[POLL_STDOUT].events = POLLOUT;
	/* A serving listener's word that it wrote what we gave it. */
	/* ... and a serving child's resumed connections, handed over. */
	pfd[POLL_ACKS].fd = b->wr.acked < b->wr.raw || s->rm.window != 0 ?
	    b->wr.ack_fd : -1;
	pfd[POLL_ACKS].events = POLLIN;
}

/*
 * How the streams stand at an end (doc/PROTOCOL.md 9.1, 9.3): each
 * complete, cut, or neither (nothing of it sealed or opened).
 */
static int
ours_complete(const struct session *s)
{
	/* No ACK says 0 bytes: only DONE confirms an empty stream. */
	return s->st.closed && (s->st.peer_done ||
	    (s->st.sealed > 0 && s->st.acked == s->st.sealed));
}

static int
ours_cut(const struct session *s)
{
	return s->st.sealed > 0 && !ours_complete(s);
}

static int
peers_complete(const struct session *s)
{
	return s->st.peer_closed &&
	    written_count(&s->b.wr) == s->c.recv_bytes;
}

static int
peers_cut(const struct session *s)
{
	return s->c.recv_bytes > 0 && !s->st.peer_closed;
}

/* The unit of n bytes as put_size shows it: 0 for B, 1 for KiB ... */
static int
size_unit(uint64_t n)
{
	int u = 0;

	for (; n >= 1024 && u < 4; n /= 1024)
		u++;
	return u;
}

/* "10.2 of 19.1 MiB", "312 B of 1.5 KiB"; "10.2 MiB" when total is -1. */
static char *
put_part(char *p, uint64_t part, int64_t total)
{
	char *end;

	if (total < 0)
		return put_size(p, part);
	end = put_size(p, part);
	if (size_unit(part) == size_unit(total))
		end = strrchr(p, ' ');	/* the unit once, after total */
	end = stpcpy(end, " of ");
	return put_size(end, total);
}

/* Our stream's length: S once it has ended, else stdin's size, or -1. */
static int64_t
our_total(const struct session *s)
{
	if (s->st.closed)
		return s->st.sealed;
	return s->rep.in_size >= 0 && s->cmd.state == CMD_NONE ?
	    s->rep.in_size : -1;
}

/*
 * The session ends with the peer's END (section 9.3) or a lost
 * connection (9.4): its line, by the streams' states.  what is the
 * peer's phrase or the cause; lost says which table.
 */
static enum status
report_end(struct session *s, const char *what, int lost)
{
	const char *name = s->chat.view.peer;
	char c[64], r[32], sent[32];

	/* "after C of T" for an END, "C confirmed" for a loss. */
	if (lost)
		put_size(c, s->st.acked);
	else
		put_part(c, s->st.acked, our_total(s));
	put_size(r, written_count(&s->b.wr));
	put_size(sent, s->st.sealed);
	if (ours_complete(s) && peers_complete(s)) {
		if (lost)
			note_always(&s->rep, "connection lost after both "
			    "streams were complete");
		else
			note_always(&s->rep, "%s %s after both streams were "
			    "complete", name, what);
		flush_errq(&s->rep);
		return EXIT_OK;
	}
	if (lost && ours_cut(s) && peers_cut(s))
		return session_fail(&s->rep, EXIT_FAIL, "connection lost (%s): "
		    "%s sent, %s confirmed, %s received%s", what, sent, c, r,
		    s->lost_end);
	if (lost && ours_cut(s))
		return session_fail(&s->rep, EXIT_FAIL, "connection lost while "
		    "sending (%s): %s sent, %s confirmed%s", what, sent, c,
		    s->lost_end);
	if (lost && peers_cut(s))
		return session_fail(&s->rep, EXIT_FAIL, "connection lost while "
		    "receiving (%s): %s received%s", what, r, s->lost_end);
	if (lost)
		return session_fail(&s->rep, EXIT_FAIL, "connection lost (%s)%s",
		    what, s->lost_end);
	if (ours_cut(s) && peers_cut(s))
		return session_fail(&s->rep, EXIT_FAIL, "transfer cut: %s %s "
		    "after %s confirmed and %s received", name, what, c, r);
	if (ours_cut(s))
		return session_fail(&s->rep, EXIT_FAIL, "upload cut: the "
		    "receiver %s after %s", what, c);
	if (peers_cut(s))
		return session_fail(&s->rep, EXIT_FAIL, "download cut: the "
		    "sender %s after %s", what, r);
	return session_fail(&s->rep, EXIT_FAIL, "%s %s", name, what);
}

/* The peer's END text as shown: printable ASCII, anything else '?'. */
static void
end_text(const struct end *e, char *out)
{
	size_t i;

	for (i = 0; e->text[i] != '\0'; i++)
		out[i] = e->text[i] >= 0x20 && e->text[i] < 0x7f ?
		    e->text[i] : '?';
	out[i] = '\0';
}

/*
 * The peer's END in words (section 9.3): in a chat, a line of its own;
 * elsewhere the phrase in report_end's line.
 */
static enum status
peer_stopped(struct session *s)
{
	static const char *const chat[] = { NULL, "interrupted the chat",
	    "was terminated (%s)", "'s input failed (%s)",
	    "'s output failed (%s)", "'s command was killed (%s)",
	    "'s command stopped reading",
	    "timed out after %u s without progress", "rejected our stream (%s)",
	    "stopped (%s)" };
	static const char *const phrase[] = { NULL, "was interrupted",
	    "was terminated (%s)", "could not read its input (%s)",
	    "could not write its output (%s)", "had its command killed (%s)",
	    "had its command stop reading",
	    "timed out after %u s without progress", "rejected our stream (%s)",
	    "stopped (%s)" };
	const struct end *e = &s->c.peer_end;
	char text[END_TEXT_MAX + 1], what[2 * END_TEXT_MAX];
	const char *fmt;

	end_text(e, text);
	if (e->reason < END_INTERRUPTED || e->reason > END_OTHER)
		(void)snprintf(what, sizeof(what), "stopped (reason %d)",
		    e->reason);
	else {
		fmt = s->rep.chat ? chat[e->reason] : phrase[e->reason];
		if (e->reason == END_TIMEOUT)
			(void)snprintf(what, sizeof(what), fmt, e->value);
		else
			(void)snprintf(what, sizeof(what), fmt, text);
	}
	if (!s->rep.chat)
		return report_end(s, what, 0);
	if (!ours_complete(s) || !peers_complete(s))
		return session_fail(&s->rep, EXIT_FAIL, "%s%s%s",
		    s->chat.view.peer, what[0] == '\'' ? "" : " ", what);
	note_always(&s->rep, "%s%s%s", s->chat.view.peer,
	    what[0] == '\'' ? "" : " ", what);
	flush_errq(&s->rep);
	return EXIT_OK;
}

/*
 * The connection is lost (section 7.3) for cause: the session waits to
 * be resumed (RESUMING) if it may be (8.6: a window, no END either way,
 * not both streams complete), else it ends by 9.4.
 */
static enum status
conn_lost(struct session *s, const char *cause)
{
	if ((s->rm.window == 0 && !s->opt->renew) || s->rejoin == NULL ||
	    s->c.rx_state == RX_ENDED || s->end.reason != END_NONE ||
	    (ours_complete(s) && peers_complete(s)))
		return report_end(s, cause, 1);
	(void)snprintf(s->lost_why, sizeof(s->lost_why), "%s", cause);
	s->lost_at = now_ms();
	return RESUMING;
}

/*
 * Has the session ended, seen from the two directions' states?  EXIT_OK
 * or a failure's status once it has, GO_ON while it goes on.  An end
 * other than both DONEs is decided once the peer's opened bytes are
 * written (or cannot be), so that the line tells what was.
 */
static enum status
session_over(struct session *s)
{
	const struct conn *c = &s->c;
	char cause[64];

	/* Both DONEs passed: no need to wait for the peer's FIN. */
	if (c->tx_state == TX_SHUT && c->rx_state == RX_DONE)
		return buf_pending(&s->rep.q) == 0 ? EXIT_OK : GO_ON;
	if (c->rx_state == RX_DONE && c->tx_state != TX_FAILED)
		return GO_ON;		/* our DONE is still on its way */
	/* The peer's stream goes on, unless it ended, failed or was cut. */
	if (!rx_over(c) && c->rx_errno == 0 &&
	    (!c->rx_eof || rx_record_waiting(&s->b.rxb)))
		return GO_ON;
	if (buf_pending(&s->b.out) > 0 && output_fd(s) != -1)
		return GO_ON;
	if (c->rx_state == RX_ENDED)
		return peer_stopped(s);
	if (c->rx_errno != 0 || c->rx_state == RX_DONE)
		(void)snprintf(cause, sizeof(cause), "%s", strerror(c->rx_errno
		    != 0 ? c->rx_errno : c->tx_errno));
	else
		(void)snprintf(cause, sizeof(cause), "closed by %s",
		    s->chat.view.peer);
	return conn_lost(s, cause);
}

/* A line about the connection: the chat's, or a -v note. */
static void __attribute__((format(printf, 2, 3)))
conn_note(struct session *s, const char *fmt, ...)
{
	char line[NOTE_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->rep.chat)
		chat_note(&s->rep, "%s", line);
	else
		note(&s->rep, "%s", line);
	flush_errq(&s->rep);
}

/*
 * The connection is gone (lost, or replaced): closed, its keys and
 * receive keys erased, its unopened bytes dropped (section 7.3).
 */
static void
conn_drop(struct session *s)
{
	if (s->net != -1)
		close(s->net);
	s->net = -1;
	direction_free(&s->c.tx);
	direction_free(&s->c.rx);
	recv_keys_free(&s->c.rk);
	s->b.rxb.pos = s->b.rxb.len = 0;
	s->b.txb.pos = s->b.txb.len = 0;
}

/*
 * The peer's bytes we opened and did not write are dropped: they come
 * again from W, the resume point.  Those already handed to a command's
 * pipe or a serving listener, not yet written, cannot be taken back:
 * skipped when they come again (st.skip).
 */
static void
resume_point(struct session *s)
{
	struct buf *out = &s->b.out;
	uint64_t w;

	OPENSSL_cleanse(out->data + out->pos, buf_pending(out));
	out->len = out->pos;
	w = written_count(&s->b.wr);
	s->st.skip = s->b.wr.payload - w;
	s->c.recv_bytes = w;
}

/*
 * A connection on net, its state fresh but for what the caller keeps: KEY
 * 0 is our first record, then a PING if our interval is not the default;
 * the peer's is the default until its PING; its REKEY budget is full.
 */
static void
conn_fresh(struct session *s, int net)
{
	struct conn *c = &s->c;

	s->net = net;
	c->rk.due = 1;
	c->ping_due = s->opt->interval != DEF_INTERVAL;
	c->peer_interval = DEF_INTERVAL;
	c->last_sealed = c->last_heard = c->rekey_budget_at = now_ms();
	c->rekey_budget = REKEY_BURST * 1000;
}

/*
 * Key both directions with the handshake's first secrets; the session
 * keeps its id and resumption secret; the key set is wiped.
 */
static void
conn_keys(struct session *s, int is_a, struct keyset *ks)
{
	direction_init(&s->c.tx, is_a ? ks->c2s : ks->s2c, 1);
	direction_init(&s->c.rx, is_a ? ks->s2c : ks->c2s, 0);
	s->is_a = is_a;
	memcpy(s->rm.sid, ks->sid, SID_LEN);
	s->rm.gen = 0;
	s->rm.has_prev = 0;
	s->rm.window = s->rejoin != NULL ? ks->window : 0;
	memcpy(s->rm.rs, ks->rs, SECRET_LEN);
	OPENSSL_cleanse(ks, sizeof(*ks));
}

/* rs(g) moves on with the resume (section 8.4); the key set is wiped. */
static void
resumable_next(struct resumable *rm, int is_a, struct rejoin *j)
{
	if (!is_a && !j->old) {
		memcpy(rm->prev, rm->rs, SECRET_LEN);
		rm->has_prev = 1;
	}
	if (is_a || !j->old)
		rm->gen++;
	memcpy(rm->rs, j->ks.rs, SECRET_LEN);
	OPENSSL_cleanse(&j->ks, sizeof(j->ks));
}

/*
 * The session moves to the connection j brought (sections 8.4, 8.5):
 * fresh keys and connection state, the streams as they were.  Our KEY 0
 * goes first, then our resume point; our input, if it had ended, ends
 * again after what is sealed again.
 */
static void
conn_resumed(struct session *s, struct rejoin *j)
{
	struct conn *c = &s->c;
	uint64_t n[6] = { c->sent_records, c->sent_bytes, c->recv_records,
	    c->rekeys_sent, c->rekeys_recv, 0 };
	enum tx_state was = c->tx_state == TX_FAILED ? c->tx_failed_in :
	    c->tx_state;

	conn_drop(s);
	resume_point(s);
	n[5] = c->recv_bytes;
	OPENSSL_cleanse(c, sizeof(*c));
	c->sent_records = n[0], c->sent_bytes = n[1], c->recv_records = n[2];
	c->rekeys_sent = n[3], c->rekeys_recv = n[4], c->recv_bytes = n[5];
	conn_fresh(s, j->fd);
	direction_init(&c->tx, s->is_a ? j->ks.c2s : j->ks.s2c, 1);
	direction_init(&c->rx, s->is_a ? j->ks.s2c : j->ks.c2s, 0);
	resumable_next(&s->rm, s->is_a, j);
	c->tx_state = was == TX_OPEN ? TX_OPEN : TX_DRAINING;
	c->resumed = c->resume_ack = 1;
	s->st.ack_wait = 0;
	s->lost_at = 0;
	conn_note(s, "reconnected to %s (nothing lost)", s->chat.view.peer);
}

/* "5 min", "90 s": a window as 9.4 words it. */
static void
window_text(char *p, size_t cap, unsigned secs)
{
	if (secs % 60 == 0)
		(void)snprintf(p, cap, "%u min", secs / 60);
	else
		(void)snprintf(p, cap, "%u s", secs);
}

/*
 * One try of the role's for the next connection, into j (rm NULL: for a
 * new session, -K); then the signals that end a session are let in
 * (open): with no connection, no END can say it, and the process ends
 * by the signal.  GO_ON to go on, with or without j's connection.
 */
static enum status
rejoin_try(struct session *s, const struct resumable *rm, int64_t until,
    struct rejoin *j, const sigset_t *open)
{
	memset(j, 0, sizeof(*j));
	j->fd = -1;
	j->status = GO_ON;
	s->rejoin(s->rejoin_arg, rm, until, j);
	if (j->fd != -1 || j->status != GO_ON)
		return j->fd != -1 ? GO_ON : j->status;
	(void)os_poll(NULL, 0, 0, open);
	if (restore.signal != 0) {
		s->die_signal = restore.signal;
		restore.signal = 0;
		return report_end(s, s->lost_why, 1);
	}
	return GO_ON;
}

/*
 * A new session on the connection j brought (section 8.9, -K): our
 * stream starts again with the bytes the old one had not confirmed (from
 * A to S), then the rest of our input; the peer's starts afresh: what we
 * had opened and not written of the old one is dropped.
 */
static void
session_renewed(struct session *s, struct rejoin *j)
{
	struct conn *c = &s->c;
	struct buf *in = &s->b.in, *out = &s->b.out;
	int ended = (c->tx_state == TX_FAILED ? c->tx_failed_in :
	    c->tx_state) != TX_OPEN, pipe;
	size_t kept;

	OPENSSL_cleanse(out->data + out->pos, buf_pending(out));
	out->len = out->pos;
	in->pos -= in->keep;
	in->keep = 0;
	kept = s->st.kept_most;
	memset(&s->st, 0, sizeof(s->st));
	s->st.retain = s->opt->retain;
	s->st.kept_most = kept;
	pipe = s->b.wr.pipe_fd;		/* -e's command runs on */
	written_begin(&s->b.wr, 0, -1);
	s->b.wr.pipe_fd = pipe;
	OPENSSL_cleanse(c, sizeof(*c));
	conn_fresh(s, j->fd);
	c->tx_state = ended ? TX_DRAINING : TX_OPEN;
	conn_keys(s, s->is_a, &j->ks);	/* -K: the connector's */
	s->lost_at = 0;
	s->lost_end[0] = '\0';
}

/*
 * -K (section 8.9): the session cannot be resumed (why), so a new one
 * starts, with the password kept for it, tried each second until a
 * handshake succeeds; the peer may then see up to the retain cap again.
 */
static enum status
session_renew(struct session *s, const sigset_t *open, const char *why)
{
	char sent[32], line[NOTE_MAX];
	struct rejoin j;
	enum status st;

	put_size(sent, s->st.sealed - s->st.acked);
	(void)snprintf(line, sizeof(line), "connection to %s lost (%s); %s; a "
	    "new session, %s unconfirmed sent again", s->chat.view.peer,
	    s->lost_why, why, sent);
	if (s->rep.chat)		/* it may double lines: always said */
		conn_note(s, "%s", line);
	else {
		note_always(&s->rep, "%s", line);
		flush_errq(&s->rep);
	}
	do
		if ((st = rejoin_try(s, NULL, 0, &j, open)) != GO_ON)
			return st;
	while (j.fd == -1);
	session_renewed(s, &j);
	conn_note(s, "a new session with %s", s->chat.view.peer);
	return GO_ON;
}

/*
 * The connection is lost and the session may be resumed (section 8.6):
 * the role brings the next connection within the window, or the session
 * ends by 9.4, saying why it was not resumed (or, with -K, a new session
 * begins).
 */
static enum status
resume_wait(struct session *s, const sigset_t *open)
{
	int64_t until = s->lost_at + secs_ms(s->rm.window);
	struct rejoin j;
	enum status st;
	char w[32];

	conn_drop(s);
	if (s->rm.window == 0)		/* -K without resuming */
		return session_renew(s, open, "resuming is off");
	conn_note(s, "connection to %s lost (%s); %s", s->chat.view.peer,
	    s->lost_why, s->is_a ? "reconnecting" :
	    "waiting for it to reconnect");
	for (;;) {
		if ((st = rejoin_try(s, &s->rm, until, &j, open)) != GO_ON)
			return st;
		if (j.fd != -1) {
			conn_resumed(s, &j);
			return GO_ON;
		}
		if (j.gone || now_ms() >= until)
			break;
	}
	window_text(w, sizeof(w), s->rm.window);
	if (j.gone)
		(void)snprintf(s->lost_end, sizeof(s->lost_end), "; %s no "
		    "longer holds the session", s->chat.view.peer);
	else
		(void)snprintf(s->lost_end, sizeof(s->lost_end), "; not "
		    "resumed within %s", w);
	if (s->opt->renew)
		return session_renew(s, open, s->lost_end + 2);
	return report_end(s, s->lost_why, 1);
}

/*
 * A lone listener's other connections, while the session's lives: a
 * RESUME may come before we notice the loss (section 8.3: the listener
 * commits, the old connection goes).  The connector only dials after.
 */
static int
rejoin_look(struct session *s, int64_t t)
{
	struct rejoin j;

	if (s->rejoin == NULL || s->is_a || s->rm.window == 0 ||
	    t < s->rejoin_next)
		return 0;
	s->rejoin_next = t + REJOIN_LOOK_MS;
	memset(&j, 0, sizeof(j));
	j.fd = -1;
	j.status = GO_ON;
	s->rejoin(s->rejoin_arg, &s->rm, 0, &j);
	if (j.fd != -1)
		conn_resumed(s, &j);
	return j.fd != -1;
}

/* Once the connector shows it holds rs(g), rs(g - 1) goes (8.4). */
static void
resumable_proved(struct session *s)
{
	if (s->rm.has_prev && s->c.rx_state != RX_KEY0) {
		OPENSSL_cleanse(s->rm.prev, sizeof(s->rm.prev));
		s->rm.has_prev = 0;
	}
}

/* Silence past the loss limit loses the connection (section 7.3). */
static enum status
check_silence(struct session *s, int64_t t)
{
	char cause[64];

	if (rx_over(&s->c) || s->c.rx_eof)
		return GO_ON;
	if (t - s->c.last_heard >= loss_ms(s)) {
		(void)snprintf(cause, sizeof(cause), "no word from %s for %lld "
		    "s", s->chat.view.peer, (long long)loss_ms(s) / 1000);
		return conn_lost(s, cause);
	}
	if (s->rep.chat && !s->c.quiet_said &&
	    t - s->c.last_heard >= QUIET_MS) {
		chat_note(&s->rep, "no word from %s for %d s",
		    s->chat.view.peer, QUIET_MS / 1000);
		s->c.quiet_said = 1;
	}
	return GO_ON;
}

/* Serve the descriptors poll found ready, in the slots' order. */
static enum status
serve_ready(struct session *s, const struct pollfd pfd[POLL_COUNT])
{
	enum status status;

	if (pfd[POLL_STDIN].revents && (status = read_stdin(s)) != GO_ON)
		return status;
	if (pfd[POLL_NETOUT].revents)
		write_net(s);
	if (pfd[POLL_NETIN].revents)
		read_net(s);
	if (pfd[POLL_STDERR].revents)
		write_stderr(s);
	if (pfd[POLL_ACKS].revents)
		written_read_acks(&s->b.wr);
	if (pfd[POLL_STDOUT].revents)
		return write_stdout(s);
	return GO_ON;
}

/*
 * The peer has no more to say (doc/PROTOCOL.md section 7).  A chat at a
 * terminal is over: what was entered still goes, then our CLOSE; a line
 * typed but not entered is not sent.  Other input is sent to its end.
 */
static void
peer_closed(struct session *s)
{
	s->chat.peer_ended = s->c.tx_state == TX_OPEN;
	if (s->stdin_tty)
		tx_input_ended(&s->c);
	editor_hide(&s->chat);	/* a line typed but not entered stays unsent */
}

/* Open the records that came; the peer's CLOSE among them ends a chat. */
static enum status
receive_step(struct session *s)
{
	int was_open = !rx_closed(&s->c);
	enum status status = process_rx(&s->c, &s->b, &s->st, &s->rep);

	if (was_open && rx_closed(&s->c))
		peer_closed(s);
	return status;
}

/*
 * A serving listener holds a last line without its newline until our
 * stdout ends: once the peer's stream is all handed to it, ours ends, so
 * that it writes that line and acknowledges it, and DONE can go.
 */
static void
output_over(struct session *s)
{
	struct written *w = &s->b.wr;

	if (w->acks && !w->ended && rx_closed(&s->c) &&
	    buf_pending(&s->b.out) == 0) {
		(void)shutdown(output_fd(s), SHUT_WR);
		w->ended = 1;
	}
}

/*
 * One round's work before poll: receive, the command, send.  A failure
 * here ends the session with our END; session_over's ends need none.
 */
static enum status
session_step(struct session *s)
{
	enum status status;

	if ((status = receive_step(s)) != GO_ON ||
	    (status = command_step(&s->cmd, &s->c, &s->b, &s->rep,
	    &s->end)) != GO_ON)
		return end_session(s, status);
	output_over(s);
	if ((status = fill_tx(&s->c, &s->b, &s->st, &s->rep, s->opt, s->pad,
	    s->cmd.feed == FEED_REFUSED)) != GO_ON)
		return end_session(s, status);
	if (s->c.tx_state == TX_DONE && buf_pending(&s->b.txb) == 0)
		tx_done_sent(&s->c, s->net);
	return session_over(s);
}

/*
 * SIGINT, SIGTERM or SIGHUP came (section 9.2): END says so and the
 * process ends by the signal, at conn_end.  A side that has sealed DONE
 * sends nothing more; its DONE stands.
 */
static enum status
caught_signal(struct session *s, int sig)
{
	size_t rec = LEN_LEN + MAX_RECORD;
	char name[32];

	restore.signal = 0;
	signal_name(name, sig);
	if (sig == SIGINT && !s->chat.interrupted)	/* ^C typed: said */
		chat_note(&s->rep, "you interrupted the chat");
	end_set(s, sig == SIGINT ? END_INTERRUPTED : END_TERMINATED,
	    sig == SIGINT ? 0 : sig, sig == SIGINT ? "" : name);
	s->die_signal = sig;
	/*
	 * DONE instead of END, if it may be sealed (fill_tx had no room),
	 * after a KEY that is due (5.1), as fill_tx would.
	 */
	if (s->c.tx_state == TX_CLOSED && rx_closed(&s->c) &&
	    buf_pending(&s->b.out) == 0 && s->cmd.feed != FEED_REFUSED &&
	    written_count(&s->b.wr) == s->c.recv_bytes &&
	    buf_room(&s->b.txb, 2 * rec) >= 2 * rec) {
		if (s->c.rk.due && s->c.rk.announced <= MAX_KEY_INDEX)
			send_key(&s->c, &s->rep, &s->b.txb);
		send_record(&s->c, &s->rep, &s->b.txb, TYPE_DONE, NULL, 0, 0);
		tx_done_sealed(&s->c);
	}
	if (s->c.tx_state == TX_DONE && write_full(s->net, s->b.txb.data +
	    s->b.txb.pos, buf_pending(&s->b.txb), now_ms() + END_FLUSH_MS) == 0) {
		s->b.txb.pos = s->b.txb.len;
		tx_done_sent(&s->c, s->net);
		if (s->c.rx_state == RX_DONE) {	/* the session is complete */
			s->die_signal = 0;
			return EXIT_OK;
		}
	}
	flush_errq(&s->rep);
	return end_session(s, EXIT_FAIL);
}

/* One wait in poll, and what it brings; GO_ON while the session goes on. */
static enum status
engine_round(struct session *s, const sigset_t *open)
{
	struct pollfd pfd[POLL_COUNT];
	enum status status;
	int64_t t;
	int n;

	editor_show(&s->chat, s->c.tx_state == TX_OPEN);
	set_pollfds(s, pfd);
	n = os_poll(pfd, POLL_COUNT, poll_timeout(s, now_ms()), open);
	if (restore.signal != 0)
		return caught_signal(s, restore.signal);
	if (n == -1 && errno != EINTR)
		return end_session(s, session_fail(&s->rep, EXIT_FAIL,
		    "poll: %s", strerror(errno)));
	if (n == -1) {
		report_resized(&s->rep);	/* SIGWINCH */
		return GO_ON;
	}
	t = now_ms();
	if (rejoin_look(s, t))
		return GO_ON;		/* poll's news were the old connection's */
	/* No DATA moved for -w seconds: keepalives are not progress. */
	if (s->opt->timeout >= 0 &&
	    t - s->last_activity >= secs_ms(s->opt->timeout)) {
		end_set(s, END_TIMEOUT, s->opt->timeout, "");
		return end_session(s, session_fail(&s->rep, EXIT_FAIL,
		    "timed out: no progress for %d seconds", s->opt->timeout));
	}
	/* A lost connection is closed at once: no END. */
	if ((status = check_silence(s, t)) != GO_ON)
		return status;
	if ((status = serve_ready(s, pfd)) != GO_ON)
		return end_session(s, status);
	progress_show(&s->rep, s->c.sent_bytes, s->c.recv_bytes, 0);
	return GO_ON;
}

static enum status
readwrite(struct session *s)
{
	sigset_t open;
	enum status status;
	uint64_t acked;

	s->last_activity = now_ms();
	os_signals_hold(&open);
	restore.signal = 0;
	restore.caught_by_engine = 1;
	do {
		acked = s->st.acked;
		if ((status = session_step(s)) == GO_ON)
			status = engine_round(s, &open);
		if (status == RESUMING)
			status = resume_wait(s, &open);
		resumable_proved(s);
		/* The peer has written more of ours: progress for -w. */
		if (s->st.acked != acked)
			s->last_activity = now_ms();
	} while (status == GO_ON);
	restore.caught_by_engine = 0;
	os_signals_release(&open);
	return status;
}

/* ---------------------------------------------------------------------- */
/* §21 Sessions */
/* Sessions. */

#define NBUFS	5

static int
same_file(int fd1, int fd2)
{
	struct stat st1, st2;

	return fstat(fd1, &st1) == 0 && fstat(fd2, &st2) == 0 &&
	    st1.st_dev == st2.st_dev && st1.st_ino == st2.st_ino;
}

/*
 * The session's buffers, i of NBUFS, and each one's size: stdin's holds
 * the retained bytes too (-B).
 */
static struct buf *
session_buf(struct session *s, size_t i, size_t *cap)
{
	const size_t caps[NBUFS] = { s->opt->retain + IN_CAP, TX_CAP, RX_CAP,
	    OUT_CAP, ERRQ_CAP };
	struct buf *list[NBUFS] = { &s->b.in, &s->b.txb, &s->b.rxb, &s->b.out,
	    &s->rep.q };

	if (cap != NULL)
		*cap = caps[i];
	return list[i];
}

/* What the report shows, from the options and the descriptors. */
static void
report_alloc(struct report *r, const struct options *opt, int edit)
{
	struct stat st;

	r->fd = STDERR_FILENO;
	r->hex = !opt->qflag;
	r->all_hex = opt->xflag;
	r->verbose = opt->vflag;
	r->secs = handshake_secs(opt);	/* the same bound: -w, or 30 */
	r->progress = opt->vflag && isatty(STDERR_FILENO) && !edit;
	r->in_size = fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) ?
	    st.st_size : -1;
	/* -e: pipes to a command, and so not stdout's file. */
	r->shared = !opt->qflag && opt->command == NULL &&
	    same_file(STDOUT_FILENO, STDERR_FILENO);
}

static void
session_alloc(struct session *s, const struct options *opt)
{
	struct buf *b;
	size_t i, cap;

	memset(s, 0, sizeof(*s));
	s->opt = opt;
	s->stdin_tty = isatty(STDIN_FILENO);
	s->chat.edit = chat_terminal(opt);
	s->chat.fd = STDOUT_FILENO;
	s->hex_tty = isatty(STDERR_FILENO);
	s->out_tty = isatty(STDOUT_FILENO);
	report_alloc(&s->rep, opt, s->chat.edit);
	/* A chat's lines all look alike on the wire; files go unpadded. */
	s->pad = opt->pad != 0 ? opt->pad :
	    s->stdin_tty && !opt->bflag ? DEF_PAD_CHAT : 1;
	if (opt->command != NULL)	/* -e: pipes to a command, no terminal */
		s->stdin_tty = s->chat.edit = s->out_tty = 0;
	s->number = 1;
	s->one_session = !opt->kflag;
	for (i = 0; i < NBUFS; i++) {
		b = session_buf(s, i, &cap);
		if ((b->data = malloc(cap)) == NULL)
			err(EXIT_FAIL, "malloc");
		b->cap = cap;
	}
	/* Keys in c, plaintext in in and out; the rest is ciphertext. */
	lock_secrets(s, sizeof(*s));
	lock_secrets(s->b.in.data, s->b.in.cap);
	lock_secrets(s->b.out.data, s->b.out.cap);
	s->net = -1;
	s->cmd.from = s->cmd.to = s->cmd.chan = -1;
}

/*
 * Who the peer is on the terminal, in front of its lines: -n NAME, else
 * the host as given to a connector, else the peer's address.
 */
static void
view_begin(struct session *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV];
	const char *name = s->opt->name ? s->opt->name :
	    s->opt->lflag ? NULL : s->opt->host;

	if (name == NULL) {
		strcpy(host, "peer");
		if (getpeername(s->net, (struct sockaddr *)&ss, &len) == 0)
			addr_text((struct sockaddr *)&ss, len, host, port);
		name = host;
	}
	chat_begin(&s->chat, name);
}

static void
chat_ready(struct session *s)
{
	chat_note(&s->rep, "chat with %s secured: type a line and Enter to "
	    "send, ^D to end", s->chat.view.peer);
}

static void
chat_ended(struct session *s, enum status status)
{
	if (status != EXIT_OK)
		return;			/* the failure's line says what happened */
	if (s->chat.peer_ended)
		chat_note(&s->rep, "%s ended the chat", s->chat.view.peer);
	else
		chat_note(&s->rep, "you ended the chat");
}

/*
 * A new connection on socket net, with stdin, stdout and stderr.  The
 * chat's editor starts here, before the handshake, so that keys typed
 * meanwhile are its; conn_end stops it.
 */
static void
conn_begin(struct session *s, int net)
{
	conn_fresh(s, net);
	memset(&s->st, 0, sizeof(s->st));
	s->st.retain = s->opt->retain;
	memset(&s->end, 0, sizeof(s->end));
	written_begin(&s->b.wr, 0, -1);
	report_begin(&s->rep, s->hex_tty);
	view_begin(s);
	s->chat.peer_ended = 0;
	editor_start(&s->chat, STDIN_FILENO);
	s->rep.chat = s->chat.edit;
	chat_report(&s->chat, &s->rep, s->out_tty);
}

/*
 * The connection is over: the chat's terminal as it was, the socket
 * closed, its keys, its plaintext and its state wiped, so that nothing of
 * it waits in memory for the next one.
 */
static void
conn_end(struct session *s)
{
	size_t i;

	if (editor_stop(&s->chat)) {
		chat_note(&s->rep, "the line being typed was not sent");
		flush_errq(&s->rep);
	}
	conn_drop(s);
	OPENSSL_cleanse(&s->c, sizeof(s->c));
	/* The session ends with its last connection (9.5). */
	OPENSSL_cleanse(&s->rm, sizeof(s->rm));
	s->lost_at = 0;
	s->lost_end[0] = '\0';
	OPENSSL_cleanse(&s->chat.view, sizeof(s->chat.view));
	memset(&s->cmd, 0, sizeof(s->cmd));
	s->cmd.from = s->cmd.to = s->cmd.chan = -1;
	/* The retained plaintext too (9.5): the ACKs did not wipe it. */
	OPENSSL_cleanse(s->b.in.data, s->b.in.used);
	OPENSSL_cleanse(s->b.out.data, s->b.out.used);
	for (i = 0; i < NBUFS; i++) {
		session_buf(s, i, NULL)->pos = session_buf(s, i, NULL)->len = 0;
		session_buf(s, i, NULL)->keep = session_buf(s, i, NULL)->used = 0;
	}
	/* Ended by a signal (caught_signal): now that nothing is left. */
	if (s->die_signal != 0)
		die_by_signal(s->die_signal);
}

static void
session_free(struct session *s)
{
	size_t i;

	conn_end(s);
	for (i = 0; i < NBUFS; i++)
		free(session_buf(s, i, NULL)->data);
}

/*
 * What was authenticated before a failure still reaches stdout, within
 * -w; after a signal, or to a command, within a grace: a reader that
 * reads no more must not keep a signalled process alive.
 */
static void
deliver_rest(struct session *s, enum status status)
{
	struct buf *out = &s->b.out;
	int64_t until = s->die_signal != 0 ? now_ms() + END_FLUSH_MS :
	    s->cmd.state != CMD_NONE ? deadline_in(COMMAND_GRACE) :
	    io_deadline(s->opt);

	if (s->out_tty && s->cmd.state == CMD_NONE)
		end_terminal(&s->chat, out, until);
	else if (status != EXIT_OK && output_fd(s) != -1)
		(void)write_full(output_fd(s), out->data + out->pos,
		    buf_pending(out), until);
}

/* With -v, the session's figures. */
static void
session_figures(struct session *s)
{
	const struct conn *c = &s->c;

	note(&s->rep, "sent %llu record%s (%llu byte%s), received %llu "
	    "record%s (%llu byte%s), rekeys %llu sent, %llu received, at "
	    "most %zu byte%s unconfirmed",
	    (unsigned long long)c->sent_records, plural(c->sent_records),
	    (unsigned long long)c->sent_bytes, plural(c->sent_bytes),
	    (unsigned long long)c->recv_records, plural(c->recv_records),
	    (unsigned long long)c->recv_bytes, plural(c->recv_bytes),
	    (unsigned long long)c->rekeys_sent,
	    (unsigned long long)c->rekeys_recv, s->st.kept_most,
	    plural(s->st.kept_most));
}

/*
 * Before the first byte from the network: the pre-auth filter (kind
 * SANDBOX_PREAUTH or SANDBOX_LISTENER), then the test hook that shows it.
 */
static void
sandbox_preauth(const struct options *opt, int kind)
{
	sandbox_enter(opt, kind);
	test_stop("preauth");
}

/* After the handshake: key both directions and move the data. */
static enum status
session_traffic(struct session *s, int is_a, struct keyset *ks)
{
	enum status status;

	conn_keys(s, is_a, ks);
	if (s->opt->command != NULL && (status = command_start(&s->cmd,
	    &s->b.wr, &s->rep, s->opt->launcher, s->net, s->number)) != GO_ON)
		return status;
	/*
	 * On top of the pre-auth one; a -k -m 1 listener's stays as it is,
	 * and so does a connector's or a lone listener's that may be resumed
	 * (or renewed, -K): it connects or accepts again.  A serving child
	 * gets its resumed connections from its listener (recvmsg).
	 */
	if (s->one_session && (s->opt->kflag ||
	    (s->rm.window == 0 && !s->opt->renew)))
		sandbox_enter(s->opt, SANDBOX_SESSION);
	note(&s->rep, "handshake done");
	chat_ready(s);
	status = readwrite(s);
	progress_show(&s->rep, s->c.sent_bytes, s->c.recv_bytes, 1);
	deliver_rest(s, status);
	status = command_finish(&s->cmd, &s->b.wr, &s->rep,
	    s->opt->vflag || s->opt->lflag, status);
	chat_ended(s, status);
	session_figures(s);
	flush_errq(&s->rep);
	return status;
}

/* ---------------------------------------------------------------------- */
/* §22 Sockets */
/* Sockets. */

/*
 * Each line is a record: do not hold it back for coalescing.  A socket
 * that refuses is fatal where it is the process's one connection (a
 * connector's: why is NULL); an accepted one is that connection's
 * trouble, not the listener's: it is closed, why[0..len) says so for the
 * listener to log its way, and -1 returned.
 */
static int
tune_socket(int fd, char *why, size_t len)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
		return 0;
	if (why == NULL)
		err(EXIT_FAIL, "setsockopt TCP_NODELAY");
	(void)snprintf(why, len, "setsockopt TCP_NODELAY: %s; connection "
	    "closed", strerror(errno));
	close(fd);
	return -1;
}

static int
bind_one(const struct addrinfo *ai, int v6only)
{
	int fd, one = 1, saved;

	if ((fd = os_socket(ai, 0)) == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &v6only, sizeof(v6only)) == -1) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, 16) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Bind the first address that works; -1 with errno set if none does. */
static int
listen_family(const struct options *opt, int family)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((e = getaddrinfo(opt->host, opt->port, &hints, &res)) != 0)
		errx(EXIT_FAIL, "%s port %s: %s", opt->host ? opt->host : "*",
		    opt->port, gai_strerror(e));
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = bind_one(ai, opt->family == AF_INET6);
	freeaddrinfo(res);
	return fd;
}

static int
listen_socket(const struct options *opt, char port[NI_MAXSERV])
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST];
	int fd;

	/* With no host, IPv6's wildcard takes IPv4 connections too. */
	if (opt->host == NULL && opt->family == AF_UNSPEC) {
		if ((fd = listen_family(opt, AF_INET6)) == -1)
			fd = listen_family(opt, AF_INET);
	} else
		fd = listen_family(opt, opt->family);
	if (fd == -1)
		err(EXIT_FAIL, "listen on %s port %s",
		    opt->host ? opt->host : "*", opt->port);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		err(EXIT_FAIL, "getsockname");
	addr_text((struct sockaddr *)&ss, len, host, port);
	/* At a terminal, always: a port picked with 0 is known only here. */
	if (opt->vflag || isatty(STDERR_FILENO))
		say("listening on %s port %s", host, port);
	return fd;
}

/* What accept_one gives besides the connection. */
struct accepted {
	struct sockaddr_storage ss;	/* the peer's address */
	socklen_t len;
	int	 shortage;		/* no connection: wait a second */
	char	 why[128];		/* no connection: for the log, or "" */
};

/*
 * Accept one connection, tuned; -1 if none came.  Each listener logs
 * a->why its own way.  What accept's errno means: a broken listening
 * socket is our bug (exit); a shortage of descriptors or memory passes
 * (a->shortage); anything else (EAGAIN, a client that gave up) is no
 * one's trouble, and not logged.
 */
static int
accept_one(int lfd, struct accepted *a)
{
	int fd;

	a->len = sizeof(a->ss);
	a->shortage = 0;
	a->why[0] = '\0';
	if ((fd = os_accept(lfd, (struct sockaddr *)&a->ss, &a->len)) != -1)
		return tune_socket(fd, a->why, sizeof(a->why)) == 0 ? fd : -1;
	if (errno == EBADF || errno == EINVAL || errno == ENOTSOCK ||
	    errno == EFAULT)
		err(EXIT_FAIL, "accept");
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
	    errno == ENOMEM) {
		(void)snprintf(a->why, sizeof(a->why), "accept: %s",
		    strerror(errno));
		a->shortage = 1;
	}
	return -1;
}

/*
 * Has the peer closed or reset the connection fd?  Bytes waiting to be
 * read are not a close.  (poll and FIONREAD: a connector's filter has no
 * recv.)
 */
static int
socket_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = 0;

	if (poll(&p, 1, 0) <= 0)
		return 0;
	if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
		return 1;
	return ioctl(fd, FIONREAD, &n) == -1 || n == 0;
}

/* Connect to one address by the deadline; -1 with errno set on failure. */
static int
connect_one(const struct addrinfo *ai, int64_t deadline)
{
	socklen_t len = sizeof(int);
	int fd, e = 0;

	if ((fd = os_socket(ai, 1)) == -1)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		e = errno;
	else if (wait_fd(fd, POLLOUT, deadline) == -1)
		e = errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		e = errno;
	if (e == 0)
		return fd;
	close(fd);
	errno = e;
	return -1;
}

/*
 * Connect to one of res's addresses, in order; with -w, while refused, try
 * them all again until the deadline (a listener not there yet is waited
 * for).  tried[0..cap) gets the addresses tried.  -1 with errno set on
 * failure.
 */
static int
connect_any(const struct options *opt, const struct addrinfo *res,
    char *tried, size_t cap)
{
	const struct addrinfo *ai;
	char host[NI_MAXHOST], port[NI_MAXSERV];
	int64_t deadline = opt->timeout >= 0 ? deadline_in(opt->timeout) :
	    INT64_MAX;
	size_t used;
	int fd = -1, retries = 0;

	for (;;) {
		for (ai = res, used = 0; ai != NULL && fd == -1;
		    ai = ai->ai_next) {
			addr_text(ai->ai_addr, ai->ai_addrlen, host, port);
			if (used < cap)
				used += snprintf(tried + used, cap - used,
				    "%s%s", used ? ", " : "", host);
			fd = connect_one(ai, deadline);
		}
		if (fd != -1 || errno != ECONNREFUSED || opt->timeout < 0 ||
		    now_ms() + CONNECT_RETRY_MS >= deadline)
			return fd;
		if (retries++ == 0 && opt->vflag)
			warnx("connection refused; trying again for up to %d "
			    "seconds", opt->timeout);
		(void)poll(NULL, 0, CONNECT_RETRY_MS);
	}
}

/* Say why connecting failed (e); the addresses tried, if not the host. */
static void
connect_failed(const struct options *opt, char *tried, int e)
{
	const char *lp, *rp;

	if (strcmp(tried, opt->host) == 0)
		tried[0] = '\0';
	lp = *tried ? " (" : "";
	rp = *tried ? ")" : "";
	errno = e;
	if (e == ETIMEDOUT)
		warnx("timed out connecting to %s%s%s%s port %s", opt->host,
		    lp, tried, rp, opt->port);
	else
		warn("connect to %s%s%s%s port %s", opt->host, lp, tried, rp,
		    opt->port);
}

/*
 * The host's addresses, once: a connector may connect again under its
 * filter, which has no resolver.  NULL, said, if there are none.
 */
static struct addrinfo *
connect_resolve(const struct options *opt)
{
	struct addrinfo hints, *res;
	int e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = opt->family;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(opt->host, opt->port, &hints, &res)) != 0) {
		warnx("%s port %s: %s", opt->host, opt->port, gai_strerror(e));
		return NULL;
	}
	return res;
}

/* Connect to one of res's addresses; on failure say why and return -1. */
static int
connect_socket(const struct options *opt, const struct addrinfo *res)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV], tried[256] = "";
	int fd, e;

	fd = connect_any(opt, res, tried, sizeof(tried));
	e = errno;
	if (fd == -1) {
		connect_failed(opt, tried, e);
		return -1;
	}
	(void)tune_socket(fd, NULL, 0);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		err(EXIT_FAIL, "getpeername");
	addr_text((struct sockaddr *)&ss, len, host, port);
	if (opt->vflag)
		warnx("connected to %s port %s", host, port);
	return fd;
}

/* ---------------------------------------------------------------------- */
/* §23 The password */
/* The password: from a file, or asked for on the terminal. */

/* The length of p[0..n) without one trailing "\n" or "\r\n". */
static size_t
chomp(const char *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\n') {
		n--;
		if (n > 0 && p[n - 1] == '\r')
			n--;
	}
	return n;
}

static size_t
read_passfile(const char *path, char *pass, size_t cap)
{
	struct stat st;
	size_t len = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1)
		err(EXIT_FAIL, "%s", path);
	/* As ssh does for a private key: another user may have read it. */
	if (S_ISREG(st.st_mode) && (st.st_mode & (S_IRWXG | S_IRWXO)))
		errx(EXIT_FAIL, "%s is accessible by group or others "
		    "(mode %04o); fix it with: chmod 600 %s", path,
		    (unsigned)st.st_mode & 07777, path);
	while (len < cap && (r = read(fd, pass + len, cap - len)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			OPENSSL_cleanse(pass, cap);
			err(EXIT_FAIL, "%s", path);
		}
		len += r;
	}
	close(fd);
	if (len == cap) {
		OPENSSL_cleanse(pass, cap);
		errx(EXIT_FAIL, "%s: password file is larger than %d bytes",
		    path, MAX_PASSFILE);
	}
	return len;
}

/* The terminal to ask on, opened before a filter forbids open. */
static int
tty_open(int code)
{
	int fd;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1)
		errx(EXIT_FAIL, "no terminal to ask for the %s; use -p passfile",
		    code ? "code" : "password");
	return fd;
}

/*
 * Ask on the terminal fd (-1: open it; closed here either way).  A
 * one-time code is shown as typed (echo): one typo spends it, and it is
 * worthless once used.
 */
static size_t
read_tty_password(int fd, char *pass, size_t cap, const char *why,
    const char *prompt, int echo)
{
	size_t len = 0;
	ssize_t r;

	if (fd == -1)
		fd = tty_open(echo);
	if (!echo && keys_quiet(fd) == -1)
		err(EXIT_FAIL, "/dev/tty");
	if (why != NULL)
		(void)write_full(fd, why, strlen(why), INT64_MAX);
	(void)write_full(fd, prompt, strlen(prompt), INT64_MAX);
	while (len < cap && (len == 0 || pass[len - 1] != '\n')) {
		if ((r = read(fd, pass + len, cap - len)) == 0)
			break;
		if (r > 0)
			len += r;
		else if (errno != EINTR)
			break;
	}
	if (!echo)
		(void)write_full(fd, "\n", 1, INT64_MAX);
	restore_tty();
	close(fd);
	if (len == cap) {
		OPENSSL_cleanse(pass, cap);
		errx(EXIT_FAIL, "password is longer than %d bytes",
		    MAX_PASSFILE);
	}
	return len;
}

/*
 * -g: a code to read out, CODE_DIGITS decimal digits from RAND_bytes
 * (39.9 bits), shown in groups of four.  SPAKE2 gives an attacker one
 * guess per connection, and the listener burns the code at the first
 * wrong one, so the odds of a guess are 1 in 10^12.
 */
static size_t
new_code(char code[CODE_DIGITS + 1])
{
	uint8_t r[5];
	uint64_t v;
	size_t i;

	do {			/* below 10^12, to keep the digits uniform */
		if (RAND_bytes(r, sizeof(r)) != 1)
			crypto_fail("RAND_bytes");
		for (v = 0, i = 0; i < sizeof(r); i++)
			v = v << 8 | r[i];
	} while (v >= 1000000000000ULL);
	OPENSSL_cleanse(r, sizeof(r));
	for (i = CODE_DIGITS; i-- > 0; v /= 10)
		code[i] = '0' + v % 10;
	code[CODE_DIGITS] = '\0';
	return CODE_DIGITS;
}

/*
 * A typed code: its digits, whatever separates them, moved down in place.
 * Returns the number of digits, or 0 if pass[0..len) is not a code.
 */
static size_t
code_digits(char *pass, size_t len)
{
	size_t i, n = 0;

	/* n <= i throughout: the digits move down, never past the input. */
	for (i = 0; i < len; i++) {
		if (pass[i] >= '0' && pass[i] <= '9')
			pass[n++] = pass[i];
		else if (pass[i] != ' ' && pass[i] != '-')
			return 0;
	}
	return n == CODE_DIGITS ? n : 0;
}

enum pw_result { PW_OK, PW_EMPTY, PW_NOT_CODE };

/*
 * What was read, pass[0..*len), made a password: one trailing newline
 * dropped, and for a code (-g) only its digits kept.  On PW_OK *len is the
 * password's length and the bytes after it are wiped; otherwise all of
 * pass[0..*len) is.  No terminal, no file: fuzz/password_fuzz.c calls it.
 */
static enum pw_result
password_parse(char *pass, size_t *len, int code)
{
	size_t read = *len, text = chomp(pass, read), n = text;

	if (n > 0 && code)
		n = code_digits(pass, n);
	if (n > 0) {
		OPENSSL_cleanse(pass + n, read - n);
		*len = n;
		return PW_OK;
	}
	OPENSSL_cleanse(pass, read);
	*len = 0;
	return text > 0 ? PW_NOT_CODE : PW_EMPTY;
}

/*
 * Fill pass (cap > MAX_PASSFILE) and return the password's length, or
 * with code a one-time code's digits.  why, if not NULL, is said on the
 * terminal before the prompt; tty is the terminal if open, else -1.
 */
static size_t
read_password(const struct options *opt, char *pass, size_t cap,
    const char *why, int code, int tty)
{
	size_t len;

	if (opt->passfile != NULL)
		len = read_passfile(opt->passfile, pass, cap);
	else
		len = read_tty_password(tty, pass, cap, why,
		    code ? "Code: " : "Password: ", code);
	switch (password_parse(pass, &len, code)) {
	case PW_OK:
		return len;
	case PW_EMPTY:
		errx(EXIT_FAIL, "%s: the password is empty",
		    opt->passfile ? opt->passfile : "/dev/tty");
	case PW_NOT_CODE:
		break;
	}
	errx(EXIT_FAIL, "a one-time code is %d digits", CODE_DIGITS);
}

/*
 * A password read from a file before a greeting asked for a code (the
 * connector without -g): its digits, as read_password would keep them.
 */
static size_t
password_as_code(char *pass, size_t len)
{
	if (password_parse(pass, &len, 1) != PW_OK)
		errx(EXIT_FAIL, "a one-time code is %d digits", CODE_DIGITS);
	return len;
}

/* ---------------------------------------------------------------------- */
/* §24 Serving one connection */
/* One greeted connection, for a lone listener and a serving many's child. */

/* "A" and the session's id, not secret, to the listener on ctl. */
static void
serve_said(int ctl, const struct keyset *ks)
{
	uint8_t m[1 + SID_LEN] = { 'A' };

	memcpy(m + 1, ks->sid, SID_LEN);
	if (write(ctl, m, sizeof(m)) != sizeof(m)) {
		/* the parent is gone, and so will we be */
	}
}

/*
 * One connection whose HELLO came whole (in): the check and the answer,
 * then the session.  who prefixes the lines about a failed check ("" in a
 * serving child, whose lines its listener prefixes; NULL: the caller
 * says them).
 * *res says how the check went; ctl, if not -1, learns it at once, as "A"
 * (authenticated), "P" (a checked password failed), "M" (malformed) or
 * "F" (the connection failed), before the connection closes, so that the
 * peer's next connection meets its penalty.  A dead parent kills us too:
 * no error to handle.
 */
static int
serve_connection(struct session *s, struct pake *pk, struct greeted *in,
    const char *who, int ctl, enum hs_result *res)
{
	struct keyset ks;

	*res = listener_answer(s->net, pk, in,
	    deadline_in(handshake_secs(s->opt)), &ks);
	BN_clear_free(in->y);
	in->y = NULL;
	/* "A" with the session's id, which the listener looks RESUMEs up by. */
	if (ctl != -1 && *res == HS_OK)
		serve_said(ctl, &ks);
	else if (ctl != -1 && write(ctl, &"APMF"[*res == HS_OK ? 0 :
	    *res == HS_WRONG ? 1 : *res == HS_MALFORMED ? 2 : 3], 1) != 1) {
		/* the parent is gone, and so will we be */
	}
	/* No next handshake here: w is of no use. */
	if (s->one_session && (ctl != -1 || *res == HS_OK || *res == HS_WRONG))
		pake_clear_w(pk);
	if (who == NULL && (*res == HS_WRONG || *res == HS_MALFORMED))
		return EXIT_AUTH;
	switch (*res) {
	case HS_OK:
		return session_traffic(s, 0, &ks);
	case HS_WRONG:
		return session_fail(&s->rep, EXIT_AUTH, "%s%s", who,
		    WRONG_PASSWORD_MSG);
	case HS_MALFORMED:
		return session_fail(&s->rep, EXIT_AUTH, "%s%s", who,
		    BAD_POINT_MSG);
	default:
		return session_fail(&s->rep, EXIT_FAIL, "%shandshake: %s",
		    who ? who : "", strerror(errno));
	}
}

/* ---------------------------------------------------------------------- */
/* §25 Serving many */
/*
 * The listener's accept path (doc/PROTOCOL.md section 2.7), for every
 * listener, and serving many: -k with -m above 1, no -g.
 *
 * The listener process accepts, weighs the source address (penalties,
 * the limits on pending connections and failed checks) and either
 * refuses the connection at once, in words (a REFUSAL), or greets it at
 * once.  A greeted connection is pending: a descriptor, its greeting's
 * scalar y and the bytes of the connector's message so far, for at most
 * the greeting's wait; no process, no password work.  Only a whole HELLO
 * whose share is plausible goes further: a lone listener checks it
 * itself, serving many forks a child for it, which checks it and runs the
 * session exactly as a lone listener does, so one session's keys and
 * plaintext never share an address space with another's: the listener
 * process holds w and the greetings' y (each erased once its child has
 * it), never a session key.  Each child hands its stdout and stderr to
 * the parent through pipes, and the parent, their one writer, moves whole
 * lines only into its queues for stdout and stderr, so that no line of
 * one session is cut by another's.  A third channel, ctl, a socket pair,
 * carries one byte that says how the check went; the other way, it
 * carries what stdout has taken of the child's output (kids_acked), so
 * that the child confirms only what was written.
 */

/*
 * A child's life, as its listener sees it.  Each transition is one
 * function, named here, and it alone changes the counters the transition
 * involves: sv->checks (KID_CHECK only), sv->sessions (KID_SESSION only)
 * and src->kids (any state but KID_FREE), src->checking (KID_CHECK, and
 * KID_KILLED until its result).
 *
 *   KID_FREE --kid_spawn: forked for a whole HELLO--> KID_CHECK
 *   KID_CHECK --kid_authed: "A" on ctl--> KID_SESSION
 *   KID_CHECK --kid_kill: past its deadline--> KID_KILLED
 *   KID_CHECK or KID_KILLED --kid_failed: "P", "M" or "F" on ctl, or
 *       exited without a word--> KID_FAILED
 *   any but KID_FREE --kid_done: exited, its pipes drained--> KID_FREE
 *
 * A failed check costs its address once, in kid_failed; a killed child
 * pays when its exit or its last word comes.
 */
enum kid_state { KID_FREE, KID_CHECK, KID_SESSION, KID_KILLED, KID_FAILED };

/* A pipe from a child and the part of a line that came through it. */
struct lines {
	int	 fd;			/* -1 once at EOF */
	size_t	 max;			/* b's cap: longer lines go in pieces */
	struct buf b;
};

struct rate {				/* log lines about one thing, a minute */
	int64_t	 start;
	unsigned shown, hidden;
};

/*
 * Lines about an address are limited apart: its failed password checks
 * (always named once a minute), its other failures, its refusals.
 */
enum { LOG_CHECKED, LOG_FAILED, LOG_REFUSED, LOG_KINDS };

struct source {
	uint8_t	 key[16];		/* IPv4 as ::ffff:a.b.c.d, IPv6: /64 */
	int	 used;
	int	 good;			/* a handshake succeeded from here */
	int	 exempt;		/* -X: no penalty, no limit */
	unsigned kids;			/* its children; a lone listener's
					   session: 1 */
	unsigned checking;		/* those whose check has no result */
	unsigned pending;		/* its greeted connections */
	unsigned fails;			/* failures since last forgiven */
	int64_t	 last_fail, until;	/* ms: refused until `until` */
	int64_t	 seen;			/* ms: last connection, for reuse */
	struct rate log[LOG_KINDS];
	char	 host[INET6_ADDRSTRLEN];
};

/* A greeted connection; fd -1: a free entry. */
struct pending {
	int	 fd;
	struct source *src;
	struct greeted in;		/* y and greeting; the HELLO once whole */
	uint8_t	 msg[HS_MAX];		/* the connector's message so far */
	size_t	 got;
	int	 ready;			/* a plausible HELLO waits for a check */
	unsigned gen;			/* -g: the code it was greeted for */
	int64_t	 since, until;		/* ms: greeted, closed at */
	char	 port[NI_MAXSERV];
};

/*
 * Its stdout's bytes, on their way through outq (see kid_queued): two
 * marks, so that an acknowledgement is never put off by newer lines.
 */
struct ack_mark {
	uint64_t end;			/* outq's offset at the line's end */
	uint64_t taken;			/* the child's bytes up to there */
};

struct kid {
	enum kid_state state;
	pid_t	 pid;
	int	 ctl;			/* "A", "P", "M" or "F", then EOF at exit;
					   to it, what stdout took of its bytes */
	int	 checked;		/* "P": its lines are a checked failure's */
	int	 reaped, wstatus;	/* exited, and how */
	struct lines out, err;
	uint64_t taken;			/* its stdout's bytes moved into outq */
	struct ack_mark mark[2];
	int	 marks;
	uint64_t acked, ack_sent;	/* its bytes written; and told */
	uint8_t	 sid[SID_LEN];		/* its session's, from its "A" */
	struct source *resumer;		/* of the last RESUME handed to it, */
	uint8_t	 resumer_key[16];	/* while its entry holds this address */
	struct source *src;
	int64_t	 started;		/* ms */
	unsigned long number;		/* the session number */
	char	 port[NI_MAXSERV];
};

/* -X: an address or network that penalties and limits spare. */
struct exempt {
	uint8_t	 key[16];		/* as source_key makes it, full */
	int	 bits;			/* prefix length, of the 128 */
};

struct server {
	const struct options *opt;
	struct pake *pk;		/* w: a child clears its copy */
	const uint8_t *salt;
	unsigned gen;			/* -g: codes spent so far */
	unsigned code_checks;		/* -g: checks allowed now ... */
	int64_t	 code_refill;		/* ... and when one more is, ms */
	int	 lfd;
	int	 accepting;		/* lfd is polled */
	int	 devnull;		/* a child's stdin */
	int	 one_file;		/* stdout and stderr are one file */
	int	 wiped;			/* children get zeros for our buffers */
	pid_t	 pid;			/* the listener's, for its children */
	struct kid *kids;		/* none for a lone listener */
	size_t	 nkids;
	unsigned sessions, checks;
	unsigned long accepted;
	int64_t	 accept_after;		/* ms: after a shortage of fds */
	struct pending *pend;		/* npend of them */
	size_t	 npend, used;
	struct pending *ready;		/* a lone listener's next HELLO */
	int	 no_new;		/* greet with NO_NEW: a session is on */
	const struct resumable *rm;	/* a lone listener's, while it may be
					   resumed; NULL: none */
	struct rejoin *resumed;		/* where a RESUME that passed goes */
	struct source *src;		/* SOURCES of them */
	struct exempt *exempt;		/* -X */
	size_t	 nexempt;
	struct rate log;		/* lines about peers, everywhere */
	struct rate fails;		/* checked passwords failed (shown) */
	struct buf outq, errq;		/* whole lines for stdout, stderr */
	int64_t	 sweep;			/* ms: the next once-a-second round */
	uint64_t out_written;		/* bytes of outq stdout took, ever */
	struct pollfd *pfd;
};

/* The queue for stderr lines: stderr's own, or stdout's if one file. */
static struct buf *
err_queue(struct server *sv)
{
	return sv->one_file ? &sv->outq : &sv->errq;
}

/* Append n bytes to q if they fit whole; 0 if they did not. */
static int
queue_put(struct buf *q, const void *p, size_t n)
{
	if (buf_room(q, n) < n)
		return 0;
	memcpy(q->data + q->len, p, n);
	q->len += n;
	return 1;
}

/*
 * n, or less so that p[0..n) does not end inside a UTF-8 character.  A
 * lead byte is looked for among the last four only: text that is not
 * UTF-8 is cut where it is.
 */
static size_t
utf8_boundary(const uint8_t *p, size_t n)
{
	size_t i, need;

	for (i = n; i > 0 && n - i < 4; i--) {
		if ((p[i - 1] & 0xc0) == 0x80)
			continue;		/* a continuation byte */
		need = p[i - 1] >= 0xf0 ? 4 : p[i - 1] >= 0xe0 ? 3 :
		    p[i - 1] >= 0xc0 ? 2 : 1;
		return n - (i - 1) < need ? i - 1 : n;
	}
	return n;
}

/*
 * fmt as one line in line[0..cap), cap > 4: cut short if need be, at a
 * character's boundary, and ended by a newline.  Returns its length, 0
 * if fmt could not be formatted.
 */
static size_t __attribute__((format(printf, 3, 0)))
line_format(char *line, size_t cap, const char *fmt, va_list ap)
{
	int r = vsnprintf(line, cap - 1, fmt, ap);
	size_t n;

	if (r < 0)
		return 0;
	n = (size_t)r < cap - 2 ? (size_t)r : cap - 2;
	if ((size_t)r > n)
		n = utf8_boundary((const uint8_t *)line, n);
	line[n++] = '\n';
	return n;
}

/* A new minute for r: its count of hidden lines, if any, is due. */
static unsigned
rate_roll(struct rate *r, int64_t t)
{
	unsigned hidden = 0;

	if (t - r->start >= MINUTE_MS) {
		hidden = r->hidden;
		r->start = t;
		r->shown = r->hidden = 0;
	}
	return hidden;
}

/* Queue a line for stderr, dropped if stderr is that far behind. */
static void __attribute__((format(printf, 2, 3)))
sv_line(struct server *sv, const char *fmt, ...)
{
	char line[NOTE_MAX];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = line_format(line, sizeof(line), fmt, ap);
	va_end(ap);
	(void)queue_put(err_queue(sv), line, n);
}

/*
 * May a line of this kind about a peer from src be logged?  LOG_BURST a
 * minute per address and kind, LOG_GLOBAL in all; the rest are counted,
 * and the count said when the minute is over.  An address whose password
 * check failed is named once a minute whatever the global budget, so that
 * throw-away addresses cannot spend it to hide a guesser.
 */
static int
log_allowed(struct server *sv, struct source *src, int kind, int64_t t)
{
	struct rate *r = &src->log[kind];
	unsigned hidden;

	if ((hidden = rate_roll(&sv->log, t)) > 0)
		sv_line(sv, "secchat: and %u more lines about peers in the "
		    "last minute", hidden);
	if ((hidden = rate_roll(r, t)) > 0)
		sv_line(sv, "secchat: and %u more from %s in the last minute",
		    hidden, src->host);
	if (r->shown >= LOG_BURST) {
		if (r->hidden++ == 0)
			sv_line(sv, "secchat: %s: over %d lines like this a "
			    "minute, counting the rest", src->host, LOG_BURST);
		return 0;
	}
	if (sv->log.shown >= LOG_GLOBAL &&
	    (kind != LOG_CHECKED || r->shown > 0)) {
		if (sv->log.hidden++ == 0)
			sv_line(sv, "secchat: over %d lines about peers this "
			    "minute, counting the rest", LOG_GLOBAL);
		return 0;
	}
	r->shown++;
	sv->log.shown++;
	return 1;
}

/* Say the counts of lines held back whose minute is over. */
static void
log_summaries(struct server *sv, int64_t t)
{
	struct source *s;
	unsigned hidden;
	size_t i;
	int kind;

	for (i = 0; i < SOURCES; i++)
		for (kind = 0, s = &sv->src[i]; kind < LOG_KINDS; kind++)
			if (s->used && s->log[kind].hidden > 0 &&
			    (hidden = rate_roll(&s->log[kind], t)) > 0)
				sv_line(sv, "secchat: and %u more from %s in "
				    "the last minute", hidden, s->host);
	if (sv->log.hidden > 0 && (hidden = rate_roll(&sv->log, t)) > 0)
		sv_line(sv, "secchat: and %u more lines about peers in the "
		    "last minute", hidden);
}

/* A line about a peer, rate-limited: "secchat: HOST port P: what". */
static void __attribute__((format(printf, 5, 6)))
peer_log(struct server *sv, struct source *src, const char *port, int kind,
    const char *fmt, ...)
{
	char what[NOTE_MAX - 80];
	va_list ap;

	if (!log_allowed(sv, src, kind, now_ms()))
		return;
	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	sv_line(sv, "secchat: %s port %s: %s", src->host, port, what);
}

/* IPv4 (also v4-mapped) counts by address, IPv6 by its /64. */
static void
source_key(const struct sockaddr *sa, uint8_t key[16])
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &s4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key, &s6->sin6_addr, 16);
		if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			memset(key + 8, 0, 8);
	}
}


/* Is the address sa in the -X list? */
static int
exempt_match(const struct server *sv, const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	uint8_t key[16];
	size_t i;
	int b, whole, rest;

	source_key(sa, key);
	if (sa->sa_family == AF_INET6)		/* the whole address here */
		memcpy(key, &s6->sin6_addr, 16);
	for (i = 0; i < sv->nexempt; i++) {
		b = sv->exempt[i].bits;
		whole = b / 8;
		rest = b % 8;
		if (memcmp(key, sv->exempt[i].key, whole) == 0 && (rest == 0 ||
		    ((key[whole] ^ sv->exempt[i].key[whole]) &
		    (0xff00 >> rest)) == 0))
			return 1;
	}
	return 0;
}

/* The record of an address, if it has one. */
static struct source *
source_lookup(struct server *sv, const struct sockaddr *sa)
{
	uint8_t key[16];
	size_t i;

	source_key(sa, key);
	for (i = 0; i < SOURCES; i++)
		if (sv->src[i].used && memcmp(sv->src[i].key, key, 16) == 0)
			return &sv->src[i];
	return NULL;
}

/*
 * The entry a new address takes: a free one, or else the one seen longest
 * ago that no connection or child holds, preferring one that never
 * succeeded and serves no penalty.  A crowd of new addresses forgets
 * other strangers first, never the mark of an address that succeeded
 * while a stranger's entry can go.
 */
static struct source *
source_victim(struct server *sv, int64_t t)
{
	struct source *s, *best = NULL;
	size_t i;
	int rank, best_rank = 4;

	for (i = 0; i < SOURCES; i++) {
		s = &sv->src[i];
		if (!s->used)
			return s;
		if (s->kids > 0 || s->pending > 0)
			continue;
		rank = s->good ? 2 : s->until > t ? 1 : 0;
		if (rank < best_rank || (rank == best_rank &&
		    s->seen < best->seen)) {
			best = s;
			best_rank = rank;
		}
	}
	return best;
}

/* A new record for the address sa (host, as text); NULL if none is free. */
static struct source *
source_new(struct server *sv, const struct sockaddr *sa, const char *host,
    int64_t t)
{
	struct source *s;
	size_t n;

	if ((s = source_victim(sv, t)) == NULL)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->used = 1;
	source_key(sa, s->key);
	s->exempt = exempt_match(sv, sa);
	s->seen = t;
	/* Numeric, so it fits; a scope beyond that is cut, for the log only. */
	n = strnlen(host, sizeof(s->host) - 1);
	memcpy(s->host, host, n);
	s->host[n] = '\0';
	return s;
}

/*
 * A failed handshake from src: after PEN_FREE of them, each refuses the
 * address for twice as long as the last, up to PEN_CAP_MS; PEN_QUIET_MS
 * without a failure forgives them all.
 */
static void
penalise(struct source *src, int64_t t)
{
	unsigned n;
	int64_t ms;

	if (src->exempt)
		return;
	if (t - src->last_fail >= PEN_QUIET_MS)
		src->fails = 0;
	src->fails++;
	src->last_fail = t;
	if (src->fails <= PEN_FREE)
		return;
	n = src->fails - PEN_FREE - 1;
	ms = n >= 20 ? PEN_CAP_MS : (int64_t)PEN_FIRST_MS << n;
	src->until = t + (ms < PEN_CAP_MS ? ms : PEN_CAP_MS);
}

/* Seconds from t to the later time u, rounded up. */
static unsigned
secs_until(int64_t u, int64_t t)
{
	return u > t ? (unsigned)((u - t + 999) / 1000) : 0;
}

/*
 * May src have a password checked now?  0, or the refusal's reason and
 * *secs.  Its own penalty first; then, while FAIL_CAP checked passwords
 * have failed this minute, addresses that have failed before and never
 * succeeded wait for the next minute: a guesser is slowed, a newcomer
 * (no failure yet) is not refused.  -g allows CODE_CHECKS checks at once
 * in all, one more each CODE_REFILL_MS, so that no flood spends codes
 * faster.  Nothing here spends anything.
 */
static enum refusal_reason
check_refused(struct server *sv, struct source *src, int64_t t,
    unsigned *secs)
{
	if (src->exempt)
		return 0;
	(void)rate_roll(&sv->fails, t);
	if (src->until > t) {
		*secs = secs_until(src->until, t);
		return REF_PENALTY;
	}
	if (sv->fails.shown >= FAIL_CAP && !src->good && src->fails > 0) {
		*secs = secs_until(sv->fails.start + MINUTE_MS, t);
		return REF_GUESS_LIMIT;
	}
	while (sv->code_checks < CODE_CHECKS && t >= sv->code_refill) {
		sv->code_checks++;
		sv->code_refill += CODE_REFILL_MS;
	}
	if (sv->code_checks == CODE_CHECKS)	/* full: no credit saved up */
		sv->code_refill = t + CODE_REFILL_MS;
	if (sv->opt->gflag && sv->code_checks == 0) {
		*secs = secs_until(sv->code_refill, t);
		return REF_GUESS_LIMIT;
	}
	return 0;
}

/*
 * How a check went, for its address: a success marks it good and forgives
 * it; a checked password that failed and a malformed HELLO are penalised,
 * only the first counts against FAIL_CAP; a broken connection costs
 * nothing.  -g: a check spends the code, good or bad.
 */
static void
check_result(struct server *sv, struct source *src, enum hs_result res,
    int64_t t)
{
	if (res == HS_OK) {
		src->good = 1;
		src->fails = 0;
		src->until = 0;
	} else if (res == HS_WRONG || res == HS_MALFORMED)
		penalise(src, t);
	if (res == HS_WRONG) {
		(void)rate_roll(&sv->fails, t);
		sv->fails.shown++;
	}
	if (sv->opt->gflag && (res == HS_OK || res == HS_WRONG))
		sv->gen++;
}

/*
 * Memory for other sessions' plaintext in transit: a child forked later
 * gets zeros there from the kernel (MADV_WIPEONFORK), without copying or
 * wiping a page; on a kernel without it, sv->wiped is 0 and the child
 * wipes.  Locked, as a session's own buffers are, as far as
 * RLIMIT_MEMLOCK allows.
 */
static void *
wiped_alloc(struct server *sv, size_t n)
{
	void *p;

	if ((p = mmap(NULL, n, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		return NULL;
	if (madvise(p, n, MADV_WIPEONFORK) == -1)
		sv->wiped = 0;
	lock_secrets(p, n);
	return p;
}

/* A line buffer's mapping: whole pages. */
static size_t
lines_alloc(const struct lines *l)
{
	return (l->b.cap + 4095) & ~(size_t)4095;
}

static int
lines_open(struct server *sv, struct lines *l, int fd, size_t max)
{
	l->fd = fd;
	l->b.pos = l->b.len = 0;
	l->max = max;
	l->b.cap = max;
	return (l->b.data = wiped_alloc(sv, lines_alloc(l))) == NULL ? -1 : 0;
}

/* Close the pipe and let the buffer go, wiped first if wipe. */
static void
lines_free(struct lines *l, int wipe)
{
	if (l->fd != -1)
		close(l->fd);
	l->fd = -1;
	if (l->b.data != NULL) {
		if (wipe)
			OPENSSL_cleanse(l->b.data, l->b.cap);
		(void)munmap(l->b.data, lines_alloc(l));
	}
	l->b.data = NULL;
}

/* Close a child's pipes and forget what they carried. */
static void
kid_forget(struct kid *k, int wipe)
{
	if (k->ctl != -1)
		close(k->ctl);
	k->ctl = -1;
	lines_free(&k->out, wipe);
	lines_free(&k->err, wipe);
}

/* Forget a pending connection: y erased; the socket closed if close_fd. */
static void
pending_free(struct server *sv, struct pending *p, int close_fd)
{
	if (close_fd)
		close(p->fd);
	BN_clear_free(p->in.y);
	p->src->pending--;
	if (sv->ready == p)		/* its slot may take another one */
		sv->ready = NULL;
	OPENSSL_cleanse(p, sizeof(*p));
	p->fd = -1;
	sv->used--;
}

/* Refuse a pending connection in words, then forget it. */
static void
pending_refuse(struct server *sv, struct pending *p,
    enum refusal_reason reason, unsigned secs)
{
	struct refusal rf;

	make_refusal(&rf, reason, secs);
	if (write(p->fd, &rf, sizeof(rf)) != sizeof(rf)) {
		/* 12 bytes fit in a socket's buffer: the peer is gone */
	}
	pending_free(sv, p, 1);
}

/*
 * In a new child: nothing of the other sessions' plaintext in transit,
 * none of their pipes or connections, nor the listening socket, nor the
 * other greetings' y.
 */
static void
kid_isolate(struct server *sv, struct kid *self)
{
	size_t i;

	for (i = 0; i < sv->nkids; i++)
		if (sv->kids[i].state != KID_FREE || &sv->kids[i] == self)
			kid_forget(&sv->kids[i], !sv->wiped);
	for (i = 0; i < sv->npend; i++)
		if (sv->pend[i].fd != -1)
			pending_free(sv, &sv->pend[i], 1);
	if (!sv->wiped) {
		OPENSSL_cleanse(sv->outq.data, sv->outq.cap);
		OPENSSL_cleanse(sv->errq.data, sv->errq.cap);
	}
	close(sv->lfd);
}

/*
 * A RESUME passed its checks (tr: GREETING || RESUME || RESUMED): the
 * RESUMED to the connection fd, which j then holds.  73 bytes fit in a
 * socket's buffer: if they do not go, the peer is gone; j's keys are
 * wiped, and -1.
 */
static int
resumed_send(struct rejoin *j, int fd, const uint8_t tr[TR_LEN])
{
	if (write(fd, tr + TR_RESUMED, sizeof(struct resumed)) !=
	    (ssize_t)sizeof(struct resumed)) {
		OPENSSL_cleanse(&j->ks, sizeof(j->ks));
		return -1;
	}
	j->fd = fd;
	return 0;
}

/*
 * A connection the listener handed a serving child (section 8.7), with
 * its GREETING and RESUME: checks 2 to 5 of 8.3 here, then RESUMED (j
 * gets it) or a REFUSAL; a failed proof or a malformed key goes back to
 * the listener on the channel ("R", "r") for the address's penalty.
 */
static void
kid_resumed(struct written *w, const struct resumable *rm, struct rejoin *j)
{
	uint8_t tr[TR_LEN];
	enum refusal_reason why = REF_NO_SESSION;
	struct refusal rf;
	int fd = w->handed_fd;

	w->handed_fd = -1;
	memcpy(tr, w->handed, HANDOVER_LEN);
	if (rm->window != 0)
		why = resume_check(rm, tr, &j->ks, &j->old);
	if (why == 0) {
		if (resumed_send(j, fd, tr) == -1)
			close(fd);
	} else {
		make_refusal(&rf, why, 0);
		if (write(fd, &rf, sizeof(rf)) != sizeof(rf) ||
		    (why != REF_NO_SESSION && write(w->ack_fd,
		    why == REF_MALFORMED ? "r" : "R", 1) != 1)) {
			/* the peer, or the listener, is gone */
		}
		close(fd);
	}
	OPENSSL_cleanse(tr, sizeof(tr));
}

/*
 * A serving child's next connection: one its listener hands over, on
 * the channel, by until (0: one look at what came already).
 */
static void
kid_rejoin(void *arg, const struct resumable *rm, int64_t until,
    struct rejoin *j)
{
	struct written *w = arg;
	int64_t t;

	until = rejoin_span(until);
	for (;;) {
		if (w->handed_fd != -1)
			kid_resumed(w, rm, j);
		if (j->fd != -1 || until == 0 || (t = now_ms()) >= until)
			return;
		if (w->ack_fd == -1)	/* the listener is gone: so are we */
			(void)poll(NULL, 0, (int)(until - t));
		else if (wait_fd(w->ack_fd, POLLIN, until) == 0)
			written_read_acks(w);
	}
}

/* The child: its pipes as stdout and stderr, then the connection p. */
static void __attribute__((noreturn))
kid_main(struct server *sv, struct kid *k, struct pending *p, int ctl,
    int out, int err)
{
	struct session s;
	struct options opt = *sv->opt;
	struct greeted in = p->in;	/* y is ours now, not the entry's */
	enum hs_result res;
	int net = p->fd, status, hex_tty = isatty(STDERR_FILENO);
	int out_tty = isatty(STDOUT_FILENO);	/* the listener's, before ours */

	/* Our pipes, not the caller's fds: nothing to restore at exit. */
	restore.flags[0] = restore.flags[1] = restore.flags[2] = -1;
	/* The listener's end is ours; it may have come before the prctl. */
	if (os_die_with_parent() == -1 || getppid() != sv->pid)
		_exit(EXIT_FAIL);
	p->fd = -1;
	p->in.y = NULL;
	kid_isolate(sv, k);
	/* The listener's filter forbids open: its /dev/null is ours. */
	if (dup2(sv->devnull, STDIN_FILENO) == -1 ||
	    dup2(out, STDOUT_FILENO) == -1 || dup2(err, STDERR_FILENO) == -1 ||
	    fcntl(STDOUT_FILENO, F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(STDERR_FILENO, F_SETFL, O_NONBLOCK) == -1)
		_exit(EXIT_FAIL);
	close(sv->devnull);
	close(out);
	close(err);
	/* Without -e our input is /dev/null: nothing to retain (-B). */
	if (opt.command == NULL)
		opt.retain = 0;
	session_alloc(&s, &opt);
	s.hex_tty = hex_tty;		/* the listener's stderr, through us */
	s.out_tty = out_tty;		/* its stdout: the peer's text inert */
	s.number = k->number;
	s.one_session = 1;
	conn_begin(&s, net);
	/* Written is what the listener wrote of our stdout (kids_acked). */
	if (fcntl(ctl, F_SETFL, O_NONBLOCK) == -1)
		_exit(EXIT_FAIL);
	written_begin(&s.b.wr, sv->opt->command == NULL, ctl);
	s.rejoin = kid_rejoin;		/* its resumes come through us (8.7) */
	s.rejoin_arg = &s.b.wr;
	sandbox_preauth(sv->opt, SANDBOX_PREAUTH);
	status = serve_connection(&s, sv->pk, &in, "", ctl, &res);
	/*
	 * The keys go now; the buffers, with the process, to the kernel,
	 * which zeroes pages before they serve anyone else: wiping 900 KiB
	 * of mostly untouched pages would cost more than the handshake.
	 * Nothing to restore or flush, and libcrypto's teardown is work.
	 */
	direction_free(&s.c.tx);
	direction_free(&s.c.rx);
	OPENSSL_cleanse(&s.c, sizeof(s.c));
	OPENSSL_cleanse(&s.rm, sizeof(s.rm));
	if (s.die_signal != 0)		/* its END sent (caught_signal) */
		die_by_signal(s.die_signal);
	_exit(status);
}

/*
 * Fork a child for the pending connection p, whose HELLO is whole; p is
 * forgotten either way, and y with it here: the child has its copy.
 */
static void
kid_spawn(struct server *sv, struct kid *k, struct pending *p, int64_t t)
{
	/* ctl, out, err: our end, the child's end */
	int fds[3][2], n, i;

	memset(k, 0, sizeof(*k));
	k->ctl = k->out.fd = k->err.fd = -1;
	/*
	 * ctl carries messages both ways; out is a socket that the child can
	 * shut down (see output_over) and still hold as stdout.
	 */
	for (n = 0; n < 3 && (n == 0 ? os_socketpair(SOCK_SEQPACKET, fds[n]) :
	    n == 1 ? os_socketpair(SOCK_STREAM, fds[n]) :
	    os_pipe(fds[n])) == 0; n++)
		;
	if (n < 3 || lines_open(sv, &k->out, -1, MERGE_CAP) == -1 ||
	    lines_open(sv, &k->err, -1, MERGE_ERR_CAP) == -1 ||
	    (k->pid = fork()) == -1) {
		sv_line(sv, "secchat: serving %s port %s: %s", p->src->host,
		    p->port, strerror(errno));
		kid_forget(k, 0);
		close_pipes(fds, n);
		pending_free(sv, p, 1);
		return;
	}
	k->number = ++sv->accepted;
	if (k->pid == 0)
		kid_main(sv, k, p, fds[0][1], fds[1][1], fds[2][1]);
	k->out.fd = fds[1][0];
	k->err.fd = fds[2][0];
	k->ctl = fds[0][0];
	for (i = 0; i < 3; i++) {
		close(fds[i][1]);
		(void)fcntl(fds[i][0], F_SETFL, O_NONBLOCK);
	}
	k->state = KID_CHECK;
	k->src = p->src;
	k->started = t;
	snprintf(k->port, sizeof(k->port), "%s", p->port);
	k->src->kids++;
	k->src->checking++;
	sv->checks++;
	pending_free(sv, p, 1);
}

/* KID_CHECK -> KID_SESSION: authenticated, the address forgiven. */
static void
kid_authed(struct server *sv, struct kid *k, int64_t t)
{
	sv->checks--;
	sv->sessions++;
	k->src->checking--;
	check_result(sv, k->src, HS_OK, t);
	k->state = KID_SESSION;
}

/* KID_CHECK -> KID_KILLED: its check slot freed now, not at its exit. */
static void
kid_kill(struct server *sv, struct kid *k, const char *why)
{
	(void)kill(k->pid, SIGKILL);
	sv->checks--;
	k->state = KID_KILLED;
	peer_log(sv, k->src, k->port, LOG_FAILED, "%s", why);
}

/*
 * KID_CHECK or KID_KILLED -> KID_FAILED: the address is charged for what
 * failed (res, from ctl or the exit status).
 */
static void
kid_failed(struct server *sv, struct kid *k, enum hs_result res, int64_t t)
{
	if (k->state == KID_CHECK)
		sv->checks--;
	else if (k->state != KID_KILLED)
		return;
	k->state = KID_FAILED;
	k->checked = res == HS_WRONG;
	k->src->checking--;
	check_result(sv, k->src, res, t);
}

/*
 * Any state but KID_FREE -> KID_FREE: the child has exited and its pipes
 * are drained.  A check that said nothing fails now (a password was
 * checked if it exited 3); a session frees its -m slot.
 */
static void
kid_done(struct server *sv, struct kid *k, int64_t t)
{
	int status = WIFEXITED(k->wstatus) ? WEXITSTATUS(k->wstatus) : -1;

	if (k->state == KID_SESSION)
		sv->sessions--;
	if (k->state == KID_CHECK && WIFSIGNALED(k->wstatus))
		peer_log(sv, k->src, k->port, LOG_FAILED, "handshake ended by "
		    "signal %d", WTERMSIG(k->wstatus));
	kid_failed(sv, k, status == EXIT_AUTH ? HS_WRONG : HS_IO, t);
	k->src->kids--;
	kid_forget(k, 1);
	k->state = KID_FREE;
}

static struct kid *
free_kid(struct server *sv)
{
	size_t i;

	for (i = 0; i < sv->nkids; i++)
		if (sv->kids[i].state == KID_FREE)
			return &sv->kids[i];
	return NULL;
}

/*
 * DONE means written (doc/PROTOCOL.md section 7.1): a child may confirm
 * its peer's stream only once stdout has taken it, so the listener tells
 * each child, over ctl, how many of its stdout's bytes stdout has taken.
 * n more of them are in outq now, ending at outq's offset out_written +
 * pending; the second mark moves with each line until the first is due.
 */
static void
kid_queued(struct server *sv, struct kid *k, size_t n)
{
	int i = k->marks < 2 ? k->marks++ : 1;

	k->taken += n;
	k->mark[i].end = sv->out_written + buf_pending(&sv->outq);
	k->mark[i].taken = k->taken;
}

/* What stdout has taken, told to each child whose bytes those were. */
static void
kids_acked(struct server *sv)
{
	struct kid *k;
	uint8_t v[8];
	size_t i;

	for (i = 0; i < sv->nkids; i++) {
		k = &sv->kids[i];
		while (k->marks > 0 && k->mark[0].end <= sv->out_written) {
			k->acked = k->mark[0].taken;
			k->mark[0] = k->mark[1];
			k->marks--;
		}
		if (k->acked == k->ack_sent || k->ctl == -1)
			continue;
		put_u64(v, k->acked);
		/* Not now (its socket full): the next round says it. */
		if (write(k->ctl, v, sizeof(v)) == sizeof(v))
			k->ack_sent = k->acked;
	}
}

/*
 * Move what a child's pipe gave into a queue, whole lines only.  A line
 * longer than l->max goes in pieces, each ended with a newline and none
 * ending inside a UTF-8 character, and so does a last line without one:
 * the next line in the queue starts whole.  From a child not in a
 * session, its "secchat: " lines name the peer and are rate-limited like
 * the listener's own lines about peers.
 */
static void
lines_move(struct server *sv, struct kid *k, struct lines *l, struct buf *q,
    int is_err)
{
	static const char tag[] = "secchat: ";
	char pre[INET6_ADDRSTRLEN + NI_MAXSERV + 16];
	uint8_t *p, *nl;
	size_t n, skip, m, add;

	while ((n = buf_pending(&l->b)) > 0) {
		p = l->b.data + l->b.pos;
		add = 0;			/* the newline a piece gets */
		if ((nl = memchr(p, '\n', n)) != NULL)
			n = nl - p + 1;
		else if (n == l->max)
			n = utf8_boundary(p, n), add = 1;
		else if (l->fd == -1)
			add = 1;
		else
			break;
		m = skip = 0;
		if (is_err && n + add > sizeof(tag) - 1 &&
		    memcmp(p, tag, sizeof(tag) - 1) == 0) {
			if (k->state != KID_SESSION &&
			    !log_allowed(sv, k->src, k->checked ? LOG_CHECKED :
			    LOG_FAILED, now_ms()))
				goto next;
			m = snprintf(pre, sizeof(pre), "%s%s port %s: ", tag,
			    k->src->host, k->port);
			skip = sizeof(tag) - 1;
		}
		if (buf_room(q, m + n - skip + add) < m + n - skip + add)
			break;
		(void)queue_put(q, pre, m);
		(void)queue_put(q, p + skip, n - skip);
		(void)queue_put(q, "\n", add);
		if (!is_err)
			kid_queued(sv, k, n);
 next:
		OPENSSL_cleanse(p, n);
		l->b.pos += n;
	}
}

/*
 * Read a child's pipe into its line buffer, if there is room.  Once the
 * child has exited (gone), an empty pipe is as good as its EOF: a command
 * it left behind may hold the pipe open, but the session is over.
 */
static void
lines_read(struct lines *l, int gone)
{
	ssize_t r;

	if (l->fd == -1)
		return;
	if (l->b.pos > 0) {		/* the start of a line, to the front */
		memmove(l->b.data, l->b.data + l->b.pos, buf_pending(&l->b));
		l->b.len -= l->b.pos;
		l->b.pos = 0;
	}
	if (l->b.len >= l->max)
		return;
	r = read(l->fd, l->b.data + l->b.len, l->max - l->b.len);
	if (r > 0)
		l->b.len += r;
	else if (r == 0 || gone || (errno != EAGAIN && errno != EINTR)) {
		close(l->fd);
		l->fd = -1;
	}
}

/* The control pipe: how the handshake went, then EOF at exit. */
static void
kid_ctl(struct server *sv, struct kid *k)
{
	uint8_t m[1 + SID_LEN];
	char c;
	ssize_t r;

	r = read(k->ctl, m, sizeof(m));
	c = r > 0 ? m[0] : 0;
	if (r == sizeof(m) && c == 'A' && k->state == KID_CHECK) {
		memcpy(k->sid, m + 1, SID_LEN);
		kid_authed(sv, k, now_ms());
	} else if (r == 1 && (c == 'R' || c == 'r') && k->resumer != NULL &&
	    k->resumer->used && memcmp(k->resumer->key, k->resumer_key,
	    sizeof(k->resumer_key)) == 0)	/* a RESUME it refused (8.7) */
		check_result(sv, k->resumer, c == 'R' ? HS_WRONG : HS_MALFORMED,
		    now_ms());
	else if (r == 1 && (c == 'P' || c == 'M' || c == 'F'))
		kid_failed(sv, k, c == 'P' ? HS_WRONG : c == 'M' ?
		    HS_MALFORMED : HS_IO, now_ms());
	else if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
		close(k->ctl);
		k->ctl = -1;
	}
}

/* Collect exited children; one whose pipes are drained is done. */
static void
reap_kids(struct server *sv, int64_t t)
{
	struct kid *k;
	size_t i;
	pid_t pid;
	int st;

	if (sv->nkids == 0)	/* a lone listener: a -e command is the session's */
		return;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (i = 0; i < sv->nkids; i++)
			if (sv->kids[i].state != KID_FREE &&
			    sv->kids[i].pid == pid) {
				sv->kids[i].reaped = 1;
				sv->kids[i].wstatus = st;
			}
	for (i = 0; i < sv->nkids; i++) {
		k = &sv->kids[i];
		if (k->state == KID_FREE || !k->reaped)
			continue;
		if (k->ctl != -1)
			kid_ctl(sv, k);
		lines_move(sv, k, &k->out, &sv->outq, 0);
		lines_move(sv, k, &k->err, err_queue(sv), 1);
		lines_read(&k->out, 1);
		lines_read(&k->err, 1);
		lines_move(sv, k, &k->out, &sv->outq, 0);
		lines_move(sv, k, &k->err, err_queue(sv), 1);
		if (buf_pending(&k->out.b) == 0 && buf_pending(&k->err.b) == 0 &&
		    k->out.fd == -1 && k->err.fd == -1)
			kid_done(sv, k, t);
	}
}

/*
 * Write a queue's head to fd; the bytes written.  stdout's failure ends
 * the listener (and so its children, none of which has confirmed what
 * stdout did not take).
 */
static size_t
queue_write(struct buf *q, int fd, int fatal)
{
	ssize_t r;

	if ((r = write(fd, q->data + q->pos, buf_pending(q))) > 0) {
		OPENSSL_cleanse(q->data + q->pos, r);	/* plaintext, written */
		q->pos += r;
		return r;
	}
	if (r == -1 && errno != EAGAIN && errno != EINTR) {
		if (fatal)
			err(EXIT_FAIL, "write to stdout");
		q->pos = q->len = 0;		/* stderr is for people */
	}
	return 0;
}

/* Kill the checks past their deadline: the child's own clock failed. */
static void
kill_late(struct server *sv, int64_t t)
{
	int64_t late = (handshake_secs(sv->opt) + 5) * 1000LL;
	size_t i;

	for (i = 0; i < sv->nkids; i++)
		if (sv->kids[i].state == KID_CHECK &&
		    t - sv->kids[i].started > late)
			kid_kill(sv, &sv->kids[i],
			    "killed: handshake past its deadline");
}

/* The line logged about a refusal. */
static void
refusal_log(struct server *sv, struct source *src, const char *port,
    enum refusal_reason why, unsigned secs)
{
	if (why == REF_PENALTY)
		peer_log(sv, src, port, LOG_REFUSED, "refused for %u s more "
		    "after %u failed handshakes", secs, src->fails);
	else if (why == REF_GUESS_LIMIT && sv->opt->gflag)
		peer_log(sv, src, port, LOG_REFUSED, "refused for %u s: at "
		    "most %d code checks at once, one more each %d s", secs,
		    CODE_CHECKS, CODE_REFILL_MS / 1000);
	else if (why == REF_GUESS_LIMIT)
		peer_log(sv, src, port, LOG_REFUSED, "refused for %u s: %d "
		    "failed password checks in the last minute from all "
		    "addresses", secs, FAIL_CAP);
	else if (why == REF_BUSY)
		peer_log(sv, src, port, LOG_REFUSED, "refused: %d connections "
		    "pending from this address", PENDING_PER_SOURCE);
	else if (why == REF_CODE_SPENT)
		peer_log(sv, src, port, LOG_REFUSED, "refused: a HELLO for a "
		    "spent code");
	else if (why == REF_NO_NEW)
		peer_log(sv, src, port, LOG_REFUSED, "refused: serving another "
		    "session");
}

/* The wait a new greeting announces: 60 s (or -w), 2 s under load. */
static unsigned
greeting_wait(const struct server *sv)
{
	unsigned rest = WAIT_REST;

	if (sv->opt->timeout >= 0 && sv->opt->timeout < WAIT_REST)
		rest = sv->opt->timeout;
	if (sv->used > sv->npend / 2 && rest > WAIT_LOAD)
		return WAIT_LOAD;
	return rest;
}

/*
 * The pending connection to shed for a new one: the oldest that is no
 * whole HELLO, preferring one from an address that never succeeded and
 * is not exempt.
 */
static struct pending *
pending_oldest(struct server *sv)
{
	struct pending *p, *best = NULL;
	size_t i;
	int rank, best_rank = 3;

	for (i = 0; i < sv->npend; i++) {
		p = &sv->pend[i];
		if (p->fd == -1)
			continue;
		rank = p->ready ? 2 : p->src->good || p->src->exempt ? 1 : 0;
		if (rank < best_rank || (rank == best_rank &&
		    p->since < best->since)) {
			best = p;
			best_rank = rank;
		}
	}
	return best;
}

/* A free entry; the table full, the oldest is closed without a word. */
static struct pending *
pending_slot(struct server *sv)
{
	struct pending *p;
	size_t i;

	if (sv->used < sv->npend) {
		for (i = 0; i < sv->npend; i++)
			if (sv->pend[i].fd == -1)
				return &sv->pend[i];
	}
	p = pending_oldest(sv);
	peer_log(sv, p->src, p->port, LOG_FAILED, "closed: the oldest of %zu "
	    "pending connections", sv->npend);
	pending_free(sv, p, 1);
	return p;
}

/* Greet the new connection fd from src at once: it is pending. */
static void
pending_greet(struct server *sv, int fd, struct source *src,
    const char *port, int64_t t)
{
	unsigned wait = greeting_wait(sv);
	struct pending *p = pending_slot(sv);

	p->in.y = make_greeting(sv->pk, &p->in.g, (sv->opt->gflag ?
	    FLAG_CODE : 0) | (sv->no_new ? FLAG_NO_NEW : 0), wait,
	    sv->opt->iterations, sv->salt);
	put_window(p->in.g.window, sv->opt->window);
	/* 114 bytes into a new socket's buffer: they fit, or it is gone. */
	if (write(fd, &p->in.g, sizeof(p->in.g)) != sizeof(p->in.g)) {
		BN_clear_free(p->in.y);
		memset(p, 0, sizeof(*p));
		p->fd = -1;
		close(fd);
		return;
	}
	p->fd = fd;
	p->src = src;
	p->gen = sv->gen;
	p->since = t;
	p->until = t + secs_ms(wait);
	snprintf(p->port, sizeof(p->port), "%s", port);
	src->pending++;
	sv->used++;
}

/*
 * A whole HELLO (section 2.3, steps 1 to 4): refused for a spent code, a
 * penalty or a limit, or as malformed; else it waits for its check.
 */
static void
pending_hello(struct server *sv, struct pending *p, int64_t t)
{
	enum refusal_reason why = 0;
	unsigned secs = 0;

	if (p->in.g.flags & FLAG_NO_NEW)
		why = REF_NO_NEW;
	else if (sv->opt->gflag && p->gen != sv->gen)
		why = REF_CODE_SPENT;
	else if ((why = check_refused(sv, p->src, t, &secs)) == 0 &&
	    !share_plausible(sv->pk, p->in.h.pA)) {
		peer_log(sv, p->src, p->port, LOG_FAILED, "%s", BAD_POINT_MSG);
		check_result(sv, p->src, HS_MALFORMED, t);
		pending_refuse(sv, p, REF_MALFORMED, 0);
		return;
	}
	if (why != 0) {
		refusal_log(sv, p->src, p->port, why, secs);
		pending_refuse(sv, p, why, secs);
		return;
	}
	p->ready = 1;
	if (sv->nkids == 0 && sv->ready == NULL)
		sv->ready = p;
}

/* Serving many: the child whose session has sid (its "A" said it). */
static struct kid *
kid_of_session(struct server *sv, const uint8_t sid[SID_LEN])
{
	size_t i;

	for (i = 0; i < sv->nkids; i++)
		if (sv->kids[i].state == KID_SESSION && sv->kids[i].ctl != -1 &&
		    memcmp(sv->kids[i].sid, sid, SID_LEN) == 0)
			return &sv->kids[i];
	return NULL;
}

/*
 * A lone listener checks a RESUME itself: RESUMED, and the connection
 * goes to its session (sv->resumed); or a refusal, and a failed proof
 * costs the address as a checked password does, a malformed key as a
 * malformed HELLO.  The session is not touched by a refusal.
 */
static void
pending_check_resume(struct server *sv, struct pending *p, uint8_t *tr,
    int64_t t)
{
	enum refusal_reason why;

	why = resume_check(sv->rm, tr, &sv->resumed->ks, &sv->resumed->old);
	if (why == 0)		/* the connection is the session's, or closed */
		pending_free(sv, p, resumed_send(sv->resumed, p->fd, tr) == -1);
	else {
		peer_log(sv, p->src, p->port, why == REF_MALFORMED ?
		    LOG_FAILED : LOG_CHECKED, "resume refused: %s",
		    why == REF_MALFORMED ? "a malformed key" : "proof rejected");
		/* A -g code is not spent by it: a penalty only. */
		check_result(sv, p->src, why == REF_MALFORMED ||
		    sv->opt->gflag ? HS_MALFORMED : HS_WRONG, t);
		pending_refuse(sv, p, why, 0);
	}
}

/*
 * A whole RESUME (section 8.3), unless a penalty refuses its address:
 * an unknown sid is refused here (NO_SESSION); a lone listener checks it
 * against its session while that may be resumed, serving many hands the
 * connection with its GREETING and RESUME to the child that holds the
 * session (8.7, SCM_RIGHTS over their channel), which checks it, answers
 * and says a refusal back for the address's penalty.
 */
static void
pending_resume(struct server *sv, struct pending *p, int64_t t)
{
	const struct resume *m = (const struct resume *)p->msg;
	uint8_t tr[TR_LEN];
	enum refusal_reason why;
	struct kid *k = NULL;
	unsigned secs = 0;

	if ((why = check_refused(sv, p->src, t, &secs)) != 0) {
		refusal_log(sv, p->src, p->port, why, secs);
		pending_refuse(sv, p, why, secs);
		return;
	}
	if (sv->nkids > 0 ? (k = kid_of_session(sv, m->sid)) == NULL :
	    sv->rm == NULL || sv->resumed == NULL || sv->resumed->fd != -1 ||
	    memcmp(sv->rm->sid, m->sid, SID_LEN) != 0) {
		peer_log(sv, p->src, p->port, LOG_REFUSED, "refused: no "
		    "session to resume");
		check_result(sv, p->src, HS_MALFORMED, t);	/* 8.3 */
		pending_refuse(sv, p, REF_NO_SESSION, 0);
		return;
	}
	memcpy(tr, &p->in.g, sizeof(p->in.g));
	memcpy(tr + TR_RESUME, p->msg, sizeof(*m));
	if (k == NULL)
		pending_check_resume(sv, p, tr, t);
	else if (os_send_fds(k->ctl, tr, HANDOVER_LEN, &p->fd, 1) ==
	    HANDOVER_LEN) {
		k->resumer = p->src;
		memcpy(k->resumer_key, p->src->key, sizeof(k->resumer_key));
		pending_free(sv, p, 1);	/* the child has its own descriptor */
	} else				/* its channel is full: try again */
		pending_refuse(sv, p, REF_BUSY, 1);
	OPENSSL_cleanse(tr, sizeof(tr));
}

/* A message that is not a HELLO nor a RESUME: logged, closed. */
static void
pending_unwanted(struct server *sv, struct pending *p, enum hs_parse v)
{
	char line[NOTE_MAX];

	hs_unwanted_line(line, sizeof(line), v, p->msg);
	peer_log(sv, p->src, p->port, LOG_FAILED, "%s", line);
	pending_free(sv, p, 1);
}

/*
 * Read what the connector sent, as far as its message goes.  A connection
 * closed before its message is whole is no failure: it costs nothing.
 */
static void
pending_read(struct server *sv, struct pending *p, int64_t t)
{
	unsigned kinds = KIND_BIT(KIND_HELLO) | KIND_BIT(KIND_RESUME);
	enum hs_parse v;
	size_t need = 0;
	ssize_t r;

	while ((v = hs_parse(p->msg, p->got, kinds, &need)) == HSP_MORE) {
		if ((r = read(p->fd, p->msg + p->got, need - p->got)) > 0) {
			p->got += r;
			continue;
		}
		if (r == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (p->got > 0)
			peer_log(sv, p->src, p->port, LOG_FAILED, "%s",
			    r == 0 ? "peer closed the connection during the "
			    "handshake" : strerror(errno));
		pending_free(sv, p, 1);
		return;
	}
	if (v != HSP_WHOLE)
		pending_unwanted(sv, p, v);
	else if (p->msg[HDR_LEN - 1] == KIND_RESUME)
		pending_resume(sv, p, t);
	else {
		memcpy(&p->in.h, p->msg, sizeof(p->in.h));
		pending_hello(sv, p, t);
	}
}

/* Close the pending connections whose wait has passed. */
static void
pending_expire(struct server *sv, int64_t t)
{
	struct pending *p;
	size_t i;

	for (i = 0; i < sv->npend; i++) {
		p = &sv->pend[i];
		if (p->fd == -1 || p->until > t)
			continue;
		peer_log(sv, p->src, p->port, LOG_FAILED, "timed out during "
		    "handshake");
		pending_free(sv, p, 1);
	}
}

/*
 * Serving many: the whole HELLOs waiting, each to a child, while room.
 * One check at a time per address (but -X's): the next one waits for the
 * result, and its penalty, so that a guesser's HELLOs in flight are not
 * checked past it.
 */
static void
pending_start(struct server *sv, int64_t t)
{
	struct pending *p;
	enum refusal_reason why;
	unsigned secs = 0;
	struct kid *k;
	size_t i;

	for (i = 0; i < sv->npend && sv->nkids > 0; i++) {
		p = &sv->pend[i];
		if (p->fd == -1 || !p->ready ||
		    (p->src->checking > 0 && !p->src->exempt))
			continue;
		if ((why = check_refused(sv, p->src, t, &secs)) != 0) {
			refusal_log(sv, p->src, p->port, why, secs);
			pending_refuse(sv, p, why, secs);
			continue;
		}
		if (sv->checks >= CHECKS_MAX || sv->sessions + sv->checks >=
		    sv->opt->max_sessions || (k = free_kid(sv)) == NULL)
			return;
		kid_spawn(sv, k, p, t);
	}
}

/*
 * Accept one connection: refuse it in words (a penalty, a limit: an
 * address that has a record only, so that refusals make none and evict
 * none), or greet it.
 */
static int
accept_pending(struct server *sv)
{
	struct accepted a;
	char host[NI_MAXHOST], port[NI_MAXSERV];
	struct sockaddr *sa = (struct sockaddr *)&a.ss;
	struct source *src;
	enum refusal_reason why = 0;
	struct refusal rf;
	unsigned secs = 0;
	int64_t t;
	int fd;

	if ((fd = accept_one(sv->lfd, &a)) == -1) {
		if (a.why[0] != '\0')		/* whole lines, through errq */
			sv_line(sv, "secchat: %s", a.why);
		if (a.shortage)
			sv->accept_after = now_ms() + 1000;
		return 0;
	}
	t = now_ms();
	addr_text(sa, a.len, host, port);
	if (sv->nkids == 0 && sv->opt->vflag)
		sv_line(sv, "secchat: connection from %s port %s", host, port);
	if ((src = source_lookup(sv, sa)) != NULL) {
		src->seen = t;
		why = check_refused(sv, src, t, &secs);
		if (why == 0 && !src->exempt &&
		    src->pending >= PENDING_PER_SOURCE)
			why = REF_BUSY, secs = 1;
	} else if ((src = source_new(sv, sa, host, t)) == NULL)
		why = REF_BUSY, secs = 1;	/* every record is in use */
	if (why == 0) {
		pending_greet(sv, fd, src, port, t);
		return 1;
	}
	if (src != NULL)
		refusal_log(sv, src, port, why, secs);
	make_refusal(&rf, why, secs);
	if (write(fd, &rf, sizeof(rf)) != sizeof(rf)) {
		/* 12 bytes fit in a new socket's buffer: the peer is gone */
	}
	close(fd);
	return 1;
}

/*
 * The poll set: listener, stdout, stderr, then ctl, out, err per child,
 * then the pending connections.  Returns poll's timeout.
 */
static int
serve_pollfds(struct server *sv, int64_t t)
{
	struct pollfd *p = sv->pfd;
	struct kid *k;
	size_t i;
	int soon = 0;

	p[0].fd = sv->accepting && t >= sv->accept_after &&
	    (sv->nkids == 0 || sv->sessions < sv->opt->max_sessions) ?
	    sv->lfd : -1;
	p[1].fd = buf_pending(&sv->outq) > 0 ? STDOUT_FILENO : -1;
	p[2].fd = buf_pending(&sv->errq) > 0 ? STDERR_FILENO : -1;
	p[0].events = POLLIN;
	p[1].events = p[2].events = POLLOUT;
	for (i = 0, p += 3; i < sv->nkids; i++, p += 3) {
		k = &sv->kids[i];
		soon |= k->reaped;
		p[0].fd = k->state != KID_FREE ? k->ctl : -1;
		p[1].fd = k->state != KID_FREE &&
		    buf_pending(&k->out.b) < k->out.max ? k->out.fd : -1;
		p[2].fd = k->state != KID_FREE &&
		    buf_pending(&k->err.b) < k->err.max ? k->err.fd : -1;
		p[0].events = p[1].events = p[2].events = POLLIN;
	}
	for (i = 0; i < sv->npend; i++, p++) {
		p->fd = sv->pend[i].ready ? -1 : sv->pend[i].fd;
		p->events = POLLIN;
	}
	/* A reaped child waits for room in a queue; else 4 times a second. */
	return soon ? 10 : 250;
}

/* After poll: the queues, the children, the pending, then new ones. */
static void
serve_events(struct server *sv, int64_t t)
{
	struct pollfd *p = sv->pfd;
	struct kid *k;
	size_t i;

	if (p[1].revents)
		sv->out_written += queue_write(&sv->outq, STDOUT_FILENO, 1);
	if (p[2].revents)
		(void)queue_write(&sv->errq, STDERR_FILENO, 0);
	/* Children first: a failure they tell of meets the next try. */
	for (i = 0, p += 3; i < sv->nkids; i++, p += 3) {
		k = &sv->kids[i];
		if (k->state == KID_FREE)
			continue;
		if (p[0].revents && k->ctl != -1)
			kid_ctl(sv, k);
		if (p[1].revents)
			lines_read(&k->out, 0);
		if (p[2].revents)
			lines_read(&k->err, 0);
		lines_move(sv, k, &k->out, &sv->outq, 0);
		lines_move(sv, k, &k->err, err_queue(sv), 1);
	}
	for (i = 0; i < sv->npend; i++, p++)
		if (p->revents && sv->pend[i].fd != -1 && !sv->pend[i].ready)
			pending_read(sv, &sv->pend[i], t);
	/* A burst of connections is taken in one go. */
	for (i = 0; sv->pfd[0].revents && i < 64 && accept_pending(sv); i++)
		;
}

/*
 * One round of the listener process: wait for something (not at all
 * unless wait), then do it.
 */
static void
serve_round(struct server *sv, int wait)
{
	int64_t t = now_ms();
	int timeout;

	reap_kids(sv, t);
	kids_acked(sv);
	pending_start(sv, t);
	pending_expire(sv, t);
	if (t >= sv->sweep) {
		log_summaries(sv, t);
		kill_late(sv, t);
		sv->sweep = t + 1000;
	}
	timeout = serve_pollfds(sv, t);
	if (!wait)
		timeout = 0;
	if (poll(sv->pfd, 3 + 3 * sv->nkids + sv->npend, timeout) == -1) {
		if (errno != EINTR)
			err(EXIT_FAIL, "poll");
		return;
	}
	serve_events(sv, now_ms());
}

/*
 * A lone listener's next connection: greeted, its HELLO whole and
 * plausible; the other pending ones, and the lines queued about them,
 * stay.
 */
static struct pending *
serve_next(struct server *sv)
{
	struct pending *p;
	size_t i;

	sv->accepting = 1;
	while ((p = sv->ready) == NULL) {
		/* a whole HELLO came while the first was in hand */
		for (i = 0; i < sv->npend && p == NULL; i++)
			if (sv->pend[i].fd != -1 && sv->pend[i].ready)
				p = &sv->pend[i];
		if (p != NULL)
			break;
		serve_round(sv, 1);
	}
	sv->ready = NULL;
	if (sv->opt->gflag)
		sv->code_checks--;		/* spent by the check */
	return p;
}

/*
 * A lone listener's session begins: the other pending connections are
 * refused (NO_NEW) and no more accepted until it ends; the lines queued
 * are written first.
 */
static void
serve_pause(struct server *sv)
{
	size_t i;

	sv->accepting = 0;
	sv->ready = NULL;
	for (i = 0; i < sv->npend; i++)
		if (sv->pend[i].fd != -1)
			pending_refuse(sv, &sv->pend[i], REF_NO_NEW, 0);
	if (buf_pending(&sv->outq) > 0)
		(void)write_full(STDOUT_FILENO, sv->outq.data + sv->outq.pos,
		    buf_pending(&sv->outq), io_deadline(sv->opt));
	if (buf_pending(&sv->errq) > 0)
		(void)write_full(STDERR_FILENO, sv->errq.data + sv->errq.pos,
		    buf_pending(&sv->errq), deadline_in(handshake_secs(sv->opt)));
	sv->outq.pos = sv->outq.len = sv->errq.pos = sv->errq.len = 0;
}

static void
queue_alloc(struct server *sv, struct buf *q)
{
	q->cap = QUEUE_CAP;
	q->pos = q->len = 0;
	if ((q->data = wiped_alloc(sv, q->cap)) == NULL)
		err(EXIT_FAIL, "mmap");
}

/*
 * -X's list: addresses and networks, "ADDR" or "ADDR/BITS", separated
 * by commas; an IPv4 one as an IPv4-mapped IPv6 network.
 */
static void
exempt_parse(struct server *sv, const char *list)
{
	char item[INET6_ADDRSTRLEN + 8], *slash;
	struct exempt *e;
	size_t n;
	int v4;

	for (; list != NULL && *list != '\0'; list += n + (list[n] == ',')) {
		n = strcspn(list, ",");
		if (n == 0 || n >= sizeof(item) || (sv->exempt = realloc(
		    sv->exempt, (sv->nexempt + 1) * sizeof(*e))) == NULL)
			errx(EXIT_USAGE, "-X: not an address or network: %.*s",
			    (int)n, list);
		e = &sv->exempt[sv->nexempt++];
		memcpy(item, list, n);
		item[n] = '\0';
		if ((slash = strchr(item, '/')) != NULL)
			*slash++ = '\0';
		memset(e->key, 0, 16);
		e->key[10] = e->key[11] = 0xff;
		v4 = inet_pton(AF_INET, item, e->key + 12) == 1;
		if (!v4 && inet_pton(AF_INET6, item, e->key) != 1)
			errx(EXIT_USAGE, "-X: not an address: %s", item);
		/* The digits checked before they are read: no overflow. */
		if (slash != NULL && (strspn(slash, "0123456789") !=
		    strlen(slash) || *slash == '\0' || strlen(slash) > 3 ||
		    atoi(slash) > (v4 ? 32 : 128)))
			errx(EXIT_USAGE, "-X: bad prefix length: /%s", slash);
		e->bits = slash == NULL ? 128 : atoi(slash) + (v4 ? 96 : 0);
	}
}

/* Children at most: sessions, checks, and those dying (0: -g or -m 1). */
static size_t
kids_max(const struct options *opt)
{
	return opt->kflag && opt->max_sessions > 1 && !opt->gflag ?
	    opt->max_sessions + 2 * CHECKS_MAX : 0;
}

/*
 * Three descriptors a child, the pending connections, and our own: the
 * open-files limit is raised to what that needs, as far as the hard limit
 * allows, or the listener says what it must be (poll would refuse the
 * set, EINVAL).  At least PENDING_MIN pending connections.
 */
static void
files_limit(const struct options *opt)
{
	unsigned long long least = 3 * kids_max(opt) + 64 + PENDING_MIN;
	unsigned long long want = least - PENDING_MIN + PENDING_MAX;
	struct rlimit nofile;

	if (getrlimit(RLIMIT_NOFILE, &nofile) == -1)
		err(EXIT_FAIL, "getrlimit");
	if (nofile.rlim_cur >= want)
		return;
	if (nofile.rlim_max != RLIM_INFINITY && nofile.rlim_max < least)
		errx(EXIT_FAIL, "-m %u needs an open-files limit of %llu, and "
		    "it is %llu: raise it (ulimit -n %llu) or lower -m",
		    opt->max_sessions, least,
		    (unsigned long long)nofile.rlim_max, least);
	if (nofile.rlim_max == RLIM_INFINITY || nofile.rlim_max > want)
		nofile.rlim_cur = want;
	else
		nofile.rlim_cur = nofile.rlim_max;
	if (nofile.rlim_cur < least || setrlimit(RLIMIT_NOFILE, &nofile) == -1)
		err(EXIT_FAIL, "setting the open-files limit to %llu for -m %u",
		    (unsigned long long)nofile.rlim_cur, opt->max_sessions);
}

/* How many connections may be pending, within the open-files limit. */
static size_t
pending_room(size_t nkids)
{
	struct rlimit nofile;
	rlim_t other = 3 * nkids + 64;

	if (getrlimit(RLIMIT_NOFILE, &nofile) == -1)
		err(EXIT_FAIL, "getrlimit");
	if (nofile.rlim_cur < other + PENDING_MIN)
		errx(EXIT_FAIL, "an open-files limit of %llu is too low: %llu "
		    "needed (ulimit -n)", (unsigned long long)nofile.rlim_cur,
		    (unsigned long long)(other + PENDING_MIN));
	return nofile.rlim_cur - other < PENDING_MAX ?
	    nofile.rlim_cur - other : PENDING_MAX;
}

/*
 * Set up a listener process on lfd: nkids children at most (0: a lone
 * listener, which checks and serves in itself).
 */
static void
server_init(struct server *sv, const struct options *opt, struct pake *pk,
    const uint8_t *salt, int lfd, size_t nkids)
{
	size_t i;

	memset(sv, 0, sizeof(*sv));
	sv->opt = opt;
	sv->pk = pk;
	sv->salt = salt;
	sv->lfd = lfd;
	sv->pid = getpid();
	sv->one_file = same_file(STDOUT_FILENO, STDERR_FILENO);
	sv->nkids = nkids;
	sv->code_checks = CODE_CHECKS;
	sv->code_refill = now_ms() + CODE_REFILL_MS;
	exempt_parse(sv, opt->exempt);
	if (fcntl(lfd, F_SETFL, O_NONBLOCK) == -1 ||	/* accept in bursts */
	    listen(lfd, BACKLOG_MANY) == -1)
		err(EXIT_FAIL, "listen");
	sv->npend = pending_room(nkids);
	if ((nkids > 0 && (sv->kids = calloc(nkids, sizeof(*sv->kids))) ==
	    NULL) || (sv->src = calloc(SOURCES, sizeof(*sv->src))) == NULL ||
	    (sv->pend = calloc(sv->npend, sizeof(*sv->pend))) == NULL ||
	    (sv->pfd = calloc(3 + 3 * nkids + sv->npend,
	    sizeof(*sv->pfd))) == NULL)
		err(EXIT_FAIL, "calloc");
	for (i = 0; i < sv->npend; i++)
		sv->pend[i].fd = -1;
	sv->wiped = 1;
	queue_alloc(sv, &sv->outq);
	queue_alloc(sv, &sv->errq);
}

/* A lone listener is done: its pending connections and memory go. */
static void
server_free(struct server *sv)
{
	size_t i;

	for (i = 0; i < sv->npend; i++)
		if (sv->pend[i].fd != -1)
			pending_free(sv, &sv->pend[i], 1);
	free(sv->pend);
	free(sv->src);
	free(sv->pfd);
	free(sv->kids);
	free(sv->exempt);
	(void)munmap(sv->outq.data, sv->outq.cap);
	(void)munmap(sv->errq.data, sv->errq.cap);
}

/* -k with -m above 1 (and no -g): serve until killed. */
static void __attribute__((noreturn))
listener_many(const struct options *opt, struct pake *pk,
    const uint8_t salt[SALT_LEN], int lfd)
{
	struct server sv;

	server_init(&sv, opt, pk, salt, lfd, kids_max(opt));
	if (isatty(STDIN_FILENO) && opt->command == NULL)
		warnx("stdin is not read: with -m above 1, sessions send "
		    "nothing (-m 1 to chat)");
	if ((sv.devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		err(EXIT_FAIL, "/dev/null");
	/* No exec, no open from here; the children start under it too. */
	sandbox_enter(opt, SANDBOX_SERVER);
	test_stop("server");
	sv.accepting = 1;
	for (;;)
		serve_round(&sv, 1);
}

/* ---------------------------------------------------------------------- */
/* §26 The two roles */
/* The two roles. */

/*
 * The listener's password key, once its socket listens: connectors that
 * come meanwhile wait in the backlog.  With -g, a new code, shown.
 */
static void
listener_key(const struct options *opt, const char *port, struct pake *pk,
    uint8_t salt[SALT_LEN])
{
	char pass[MAX_PASSFILE + 2] = "", why[128];
	uint8_t w[SCALAR_LEN];
	size_t len;

	lock_secrets(pass, sizeof(pass));
	lock_secrets(pk, sizeof(*pk));
	if (opt->gflag) {
		len = new_code(pass);
		warnx("one-time code %.4s-%.4s-%.4s: type it at \"secchat -g\" "
		    "on the other side (port %s); one try", pass, pass + 4,
		    pass + 8, port);
	} else {
		(void)snprintf(why, sizeof(why), "secchat: listening on port "
		    "%s; connections wait for the password.\n", port);
		len = read_password(opt, pass, sizeof(pass), why, 0, -1);
	}
	if (RAND_bytes(salt, SALT_LEN) != 1)
		crypto_fail("RAND_bytes");
	if (opt->vflag)
		warnx("deriving the password's key (%lu iterations)",
		    (unsigned long)opt->iterations);
	if (derive_w(pass, len, salt, opt->iterations, w) == -1) {
		OPENSSL_cleanse(pass, sizeof(pass));
		errx(EXIT_FAIL, "password and salt give w = 0; try again");
	}
	OPENSSL_cleanse(pass, sizeof(pass));
	pake_init(pk, w);
	OPENSSL_cleanse(w, sizeof(w));
}

/*
 * The lines about a lone listener's check that failed, through its
 * budget of lines about peers; then -g's word about the code.
 */
static void
listener_checked(struct server *sv, struct source *src, const char *port,
    enum hs_result res)
{
	if (res == HS_WRONG)
		peer_log(sv, src, port, LOG_CHECKED, "%s", WRONG_PASSWORD_MSG);
	else if (res == HS_MALFORMED)
		peer_log(sv, src, port, LOG_FAILED, "%s", BAD_POINT_MSG);
	serve_pause(sv);		/* written now: the order of lines */
	if (sv->opt->gflag && res == HS_WRONG)
		warnx("the one-time code is burnt%s",
		    sv->opt->kflag ? "; a new one:" : "");
	else if (sv->opt->gflag && res == HS_OK && sv->opt->kflag)
		warnx("the one-time code has been used; a new one:");
}

/*
 * A lone listener's session looks for its next connection (section 8.6):
 * its pending connections served, new ones greeted with NO_NEW, until a
 * RESUME passes or until (0: one look, no wait).
 */
static void
listener_rejoin(void *arg, const struct resumable *rm, int64_t until,
    struct rejoin *j)
{
	struct server *sv = arg;
	int64_t by = rejoin_span(until);

	sv->rm = rm;
	sv->resumed = j;
	sv->no_new = sv->accepting = 1;
	do
		serve_round(sv, until != 0);
	while (j->fd == -1 && now_ms() < by);
	sv->rm = NULL;
	sv->resumed = NULL;
}

/*
 * One connection of a lone listener: its whole HELLO checked, then the
 * session; the address's record learns how the check went.
 */
static enum status
listener_one(struct server *sv, struct session *s, enum hs_result *res)
{
	struct pending *p = serve_next(sv);
	struct source *src = p->src;
	struct greeted in = p->in;
	char port[NI_MAXSERV];
	int fd = p->fd;
	enum status status;

	snprintf(port, sizeof(port), "%s", p->port);
	p->in.y = NULL;			/* in's now */
	pending_free(sv, p, 0);
	serve_pause(sv);
	conn_begin(s, fd);
	s->rejoin = listener_rejoin;
	s->rejoin_arg = sv;
	src->kids++;		/* its record stays its own: resumes accept */
	status = serve_connection(s, sv->pk, &in, NULL, -1, res);
	src->kids--;
	conn_end(s);
	sv->no_new = 0;
	/*
	 * The last chat's queued keys are gone (restore_tty); those typed
	 * while the next one is set up are kept for it, shown once, as for
	 * the first.
	 */
	if (sv->opt->kflag && chat_terminal(sv->opt))
		(void)keys_raw(STDIN_FILENO, KEYS_AHEAD);
	/* Held by kids above, src is still its record. */
	check_result(sv, src, *res, now_ms());
	listener_checked(sv, src, port, *res);
	return status;
}

/*
 * Listener: listen, derive the password's key once, then serve one
 * connection, or each with -k.  A connection that fails before its
 * password is checked is logged, and the listener goes on.  A -g code is
 * spent by its check: a wrong one exits 3, or with -k makes a new code,
 * as does the end of a session.
 */
static int
listener(const struct options *opt)
{
	struct server sv;
	struct session s;
	struct pake pk;
	uint8_t salt[SALT_LEN];
	char port[NI_MAXSERV];
	enum hs_result res;
	int lfd, status = EXIT_OK;

	lfd = listen_socket(opt, port);
	if (opt->kflag && opt->max_sessions > 1 && !opt->gflag)
		files_limit(opt);	/* before the password is asked for */
	listener_key(opt, port, &pk, salt);
	/* A code is guessed once at a time: -g serves one by one. */
	if (opt->kflag && opt->max_sessions > 1 && !opt->gflag)
		listener_many(opt, &pk, salt, lfd);
	if (chat_terminal(opt))
		(void)keys_raw(STDIN_FILENO, KEYS_AHEAD);
	server_init(&sv, opt, &pk, salt, lfd, 0);
	session_alloc(&s, opt);
	/*
	 * Before the first connection, one filter for all of them (-k); a
	 * lone session enters its own on top after its handshake.
	 */
	sandbox_preauth(opt, SANDBOX_LISTENER);
	for (s.number = 1;; s.number++) {
		if (s.number > 1 && opt->kflag && chat_terminal(opt)) {
			say("waiting for the next chat on port %s; ^D ends "
			    "the listener", port);
			if (chat_wait_next(lfd, STDIN_FILENO) == -1) {
				status = EXIT_OK;	/* the user's end */
				break;
			}
		}
		if (test_hook("secrets"))	/* the last one is wiped by now */
			warnx("test: accepting");
		status = listener_one(&sv, &s, &res);
		if (res != HS_OK && res != HS_WRONG)
			continue;		/* no password was checked */
		if (!opt->kflag)
			break;
		if (opt->gflag) {
			pake_free(&pk);
			listener_key(opt, port, &pk, salt);
		}
	}
	session_free(&s);
	server_free(&sv);
	pake_free(&pk);
	close(lfd);
	return status;
}

/*
 * The connector's secret, once a greeting has said which (section 2.6):
 * asked for now, or read from a file already (a code if the greeting
 * wants one).  Then the chat's keys are raw: typed ahead, shown once.
 */
static size_t
connector_secret(const struct options *opt, const struct greeting *g,
    char *pass, size_t cap, size_t len, int tty)
{
	int code = g->flags & FLAG_CODE;

	if (len == 0)
		len = read_password(opt, pass, cap, NULL, code, tty);
	else if (code && !opt->gflag)
		len = password_as_code(pass, len);
	if (chat_terminal(opt))
		(void)keys_raw(STDIN_FILENO, KEYS_AHEAD);
	return len;
}

/*
 * Connect, and read the greeting (section 2.6, step 1); a listener that
 * is busy for now is waited for, within the handshake's deadline.
 */
static enum status
connector_greeted(struct report *r, const struct options *opt,
    const struct addrinfo *res, int *fd, struct greeting *g)
{
	int64_t deadline = deadline_in(handshake_secs(opt));
	unsigned busy;
	enum status st;

	for (;;) {
		if ((*fd = connect_socket(opt, res)) == -1)
			return EXIT_FAIL;
		st = connector_greeting(r, opt, *fd, g, deadline, &busy);
		if (busy == 0)
			return st;
		close(*fd);
		*fd = -1;
		note(r, "%s is busy; trying again in %u s", opt->host, busy);
		flush_errq(r);
		(void)poll(NULL, 0, secs_ms(busy));
	}
}

/*
 * A new connection whose greeting comes after w is ready (section 2.6,
 * step 5): its HELLO goes at once.  With a new salt or count, w again
 * from the kept password; a new code's greeting is an old code's end.
 */
static enum status
connector_again(struct report *r, const struct options *opt,
    const struct addrinfo *res, int *fd, struct greeting *g, const char *pass,
    size_t len, struct pake *pk)
{
	struct greeting old = *g;
	enum status st;

	if (*fd != -1)
		close(*fd);
	if ((st = connector_greeted(r, opt, res, fd, g)) != GO_ON)
		return st;
	if (memcmp(old.salt, g->salt, SALT_LEN) == 0 &&
	    memcmp(old.iterations, g->iterations, 4) == 0)
		return GO_ON;
	if (g->flags & FLAG_CODE)
		return session_fail(r, EXIT_FAIL, "%s refused the connection: "
		    "%s", opt->host, refusal_why(REF_CODE_SPENT));
	pake_free(pk);
	return connector_pake(r, pass, len, g, pk);
}

/*
 * Connector: connect, then ask (section 2.6).  The slow step, w, comes
 * between the greeting and the HELLO; if the listener did not wait for it
 * (a short wait, a closed connection), a new connection's greeting is
 * answered at once.  *fdp: the connection, if the handshake succeeded.
 */
static enum status
connector_handshake(struct report *r, const struct options *opt,
    const struct addrinfo *res, char *pass, size_t cap, size_t *lenp, int tty,
    int *fdp, struct keyset *ks)
{
	size_t len = *lenp;
	struct greeting g;
	struct pake pk;
	int fd = -1, tries = 0;
	int64_t greeted;
	enum status st;

	if ((st = connector_greeted(r, opt, res, &fd, &g)) != GO_ON)
		goto fail;
	greeted = now_ms();
	if (g.wait < WAIT_TYPED) {	/* it would be closed before w is ready */
		close(fd);
		fd = -1;
	}
	len = connector_secret(opt, &g, pass, cap, len, tty);
	if ((st = connector_pake(r, pass, len, &g, &pk)) != GO_ON)
		goto fail;
	while (fd == -1 || socket_closed(fd) ||
	    now_ms() - greeted >= secs_ms(g.wait)) {
		if (tries++ == HELLO_TRIES) {
			st = session_fail(r, EXIT_FAIL, "could not reach %s with "
			    "the handshake ready (%d tries)", opt->host,
			    HELLO_TRIES);
			break;
		}
		if ((st = connector_again(r, opt, res, &fd, &g, pass, len,
		    &pk)) != GO_ON)
			break;
		greeted = now_ms();
	}
	if (st == GO_ON)
		st = connector_hello(r, opt, fd, &pk, &g,
		    deadline_in(handshake_secs(opt)), ks);
	pake_free(&pk);
 fail:
	*lenp = len;
	/* -K keeps it, locked, for a new session (section 8.9). */
	if (!opt->renew)
		OPENSSL_cleanse(pass, cap);
	if (st != GO_ON && fd != -1)
		close(fd);
	*fdp = fd;
	return st;
}

/* What a connector needs to dial again (section 8.6), and with -K the
   password for a new session (8.9). */
struct redial {
	const struct options *opt;
	const struct addrinfo *res;
	struct report *r;
	char	*pass;
	size_t	 cap, len;
};

/*
 * A new connection and its first message by deadline: -1 if none came
 * (*again: a refusal's seconds to wait), else the socket with the
 * greeting in g.  A message no listener sends here ends the session.
 */
static int
redial_greeted(struct redial *d, int64_t deadline, struct greeting *g,
    unsigned *again, int *status)
{
	const struct addrinfo *ai;
	uint8_t m[HS_MAX];
	int fd = -1, st;

	for (ai = d->res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = connect_one(ai, deadline);
	if (fd == -1)
		return -1;
	(void)tune_socket(fd, NULL, 0);
	st = resume_read(d->r, fd, KIND_BIT(KIND_GREETING) |
	    KIND_BIT(KIND_REFUSAL), m, deadline);
	if (st == 0 && m[HDR_LEN - 1] == KIND_GREETING) {
		memcpy(g, m, sizeof(*g));
		return fd;
	}
	if (st == 0 && m[HDR_LEN] >= REF_PENALTY && m[HDR_LEN] <= REF_GUESS_LIMIT)
		*again = refusal_secs(m);
	else if (st > 0)
		*status = st;
	close(fd);
	return -1;
}

/*
 * The connector's next connection (section 8.6): an attempt at once,
 * then one a second (or when a refusal says), each within 10 s, until
 * one brings a greeting and our RESUME on it is answered.
 */
static void
connector_rejoin(void *arg, const struct resumable *rm, int64_t until,
    struct rejoin *j)
{
	struct redial *d = arg;
	int64_t t = now_ms(), next = t + RESUME_EVERY_MS;
	struct greeting g;
	unsigned again = 0;
	int fd, st;

	if (rm == NULL) {		/* -K: a new session, asking nothing */
		st = connector_handshake(d->r, d->opt, d->res, d->pass, d->cap,
		    &d->len, -1, &fd, &j->ks);
		if (st == GO_ON)
			j->fd = fd;
		else if (st != EXIT_FAIL)
			j->status = st;
		else
			(void)poll(NULL, 0, RESUME_EVERY_MS);
		return;
	}
	fd = redial_greeted(d, until < t + 10000 ? until : t + 10000, &g,
	    &again, &j->status);
	if (fd != -1) {
		st = connector_resume(d->r, d->opt->host, fd, &g, rm, &j->ks,
		    &again, &j->gone);
		if (st == GO_ON) {
			j->fd = fd;
			return;
		}
		close(fd);
		if (st != RETRY && again == 0 && !j->gone)
			j->status = st;
	}
	if (again > 0)
		next = t + secs_ms(again);
	next = next < until ? next : until;
	if (j->status == GO_ON && !j->gone && (t = now_ms()) < next)
		(void)poll(NULL, 0, (int)(next - t));
}

/*
 * pass[0..cap): the password read from a file already (len), or to ask
 * for on the terminal, opened now.  The filter comes before the first
 * network byte: the host is resolved first, and connections made under
 * it (section 2.6, step 5).
 */
static int
connector(const struct options *opt, char *pass, size_t cap, size_t len)
{
	struct addrinfo *res;
	struct session s;
	struct keyset ks;
	struct redial d;
	int fd, status, tty = -1;

	if ((res = connect_resolve(opt)) == NULL) {
		OPENSSL_cleanse(pass, cap);
		return EXIT_FAIL;
	}
	if (len == 0 && opt->passfile == NULL)
		tty = tty_open(opt->gflag);
	session_alloc(&s, opt);
	sandbox_preauth(opt, SANDBOX_CONNECTOR);
	status = connector_handshake(&s.rep, opt, res, pass, cap, &len, tty,
	    &fd, &ks);
	if (status == GO_ON) {
		conn_begin(&s, fd);
		d.opt = opt;
		d.res = res;
		d.r = &s.rep;
		d.pass = pass;
		d.cap = cap;
		d.len = len;
		s.rejoin = connector_rejoin;
		s.rejoin_arg = &d;
		status = session_traffic(&s, 1, &ks);
	}
	freeaddrinfo(res);
	session_free(&s);
	OPENSSL_cleanse(pass, cap);	/* kept for -K until now */
	return status;
}

/* ---------------------------------------------------------------------- */
/* §27 Options and main */
/* Process setup. */

static void
on_signal(int sig)
{
	/*
	 * In a session's poll (the only place these signals are let in),
	 * the engine seals END and ends by the signal itself.  Elsewhere
	 * (a prompt, a handshake, a serving parent): at once.
	 */
	if (restore.caught_by_engine && sig != SIGQUIT) {
		restore.signal = sig;
		return;
	}
	restore_fds();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* poll() needs non-blocking fds; a terminal is left as the shell has it. */
static void
set_nonblocking(void)
{
	int fd;

	/* Read every flag first: two fds may share one open file. */
	for (fd = 0; fd < 3; fd++)
		restore.flags[fd] = isatty(fd) ? -1 : fcntl(fd, F_GETFL);
	for (fd = 0; fd < 3; fd++)
		if (restore.flags[fd] != -1 && fcntl(fd, F_SETFL,
		    restore.flags[fd] | O_NONBLOCK) == -1)
			err(EXIT_FAIL, "fcntl");
}

static void
setup_process(void)
{
	struct sigaction sa;
	int fd;

	/* Keys must never land on disk in a core file. */
	if (os_no_core_dumps() == -1)
		err(EXIT_FAIL, "disabling core dumps");
	/* A closed stdin reads as empty; a closed stdout would lose data. */
	if (fcntl(STDOUT_FILENO, F_GETFL) == -1)
		errx(EXIT_FAIL, "stdout is closed");
	while (fcntl(STDIN_FILENO, F_GETFL) == -1 ||
	    fcntl(STDERR_FILENO, F_GETFL) == -1) {
		if ((fd = open("/dev/null", O_RDWR)) == -1)
			err(EXIT_FAIL, "/dev/null");
		if (fd > STDERR_FILENO) {
			close(fd);
			break;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		err(EXIT_FAIL, "sigaction");
	sa.sa_handler = on_signal;
	if (sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1 ||
	    sigaction(SIGQUIT, &sa, NULL) == -1)
		err(EXIT_FAIL, "sigaction");
	set_nonblocking();
	if (atexit(restore_fds) != 0)
		errx(EXIT_FAIL, "atexit");
}

/*
 * The terminal's character set, for wcwidth: the locale's; with none set
 * (C, POSIX), UTF-8, as terminals now are.  Only LC_CTYPE changes.
 */
static void
terminal_locale(void)
{
	const char *l = setlocale(LC_CTYPE, "");

	if (l == NULL || strcmp(l, "C") == 0 || strcmp(l, "POSIX") == 0)
		(void)setlocale(LC_CTYPE, "C.UTF-8");
}

static void
usage_to(FILE *f)
{
	fprintf(f, "usage: secchat [-46bgKqvx] [-a interval] [-B MiB] "
	    "[-e command] [-i iterations]\n"
	    "               [-L limit] [-n name] [-P size] [-p passfile] "
	    "[-r messages]\n"
	    "               [-R seconds] [-W window] [-w timeout] host port\n"
	    "       secchat -l [-46bgkqvx] [-a interval] [-B MiB] "
	    "[-e command] [-i iterations]\n"
	    "               [-L limit] [-m sessions] [-n name] [-P size] "
	    "[-p passfile]\n"
	    "               [-r messages] [-R seconds] [-W window] "
	    "[-w timeout]\n"
	    "               [-X list] [host] port\n"
	    "       secchat -h | -V\n");
}

/* -h: the synopsis, then one line per option (secchat.1 has the details). */
static void
help(void)
{
	usage_to(stdout);
	printf("\n"
	    "  -4            IPv4 addresses only\n"
	    "  -6            IPv6 addresses only\n"
	    "  -a interval   keepalive after that many quiet seconds "
	    "(default %d)\n"
	    "  -B MiB        keep that much unacknowledged data (default %d)\n"
	    "  -b            bulk mode: 16 KiB records, not one per line\n"
	    "  -e command    connect the peer to command's stdin and stdout\n"
	    "  -g            a one-time code: made by -l, asked for by the other\n"
	    "  -h            print this help and exit (also --help)\n"
	    "  -i iterations PBKDF2 count a listener announces (default %d)\n"
	    "  -K            a new session when resuming is impossible "
	    "(keeps the password)\n"
	    "  -k            with -l: keep serving connections (see -m)\n"
	    "  -L limit      connection lost after that many silent seconds "
	    "(default %d)\n"
	    "  -l            listen on port (and host's address) instead\n"
	    "  -m sessions   with -k: that many at once (default %d)\n"
	    "  -n name       the peer's name in the chat (default: host)\n"
	    "  -P size       pad data records to a multiple of size bytes\n"
	    "  -p passfile   the password from passfile, not the terminal\n"
	    "  -q            quiet: no hex display of the records\n"
	    "  -R seconds    rekey that long after a key's first data "
	    "(default %d)\n"
	    "  -r messages   rekey after that many data records (default %d)\n"
	    "  -V            print the version and exit (also --version)\n"
	    "  -v            verbose: addresses, rekeys, a summary\n"
	    "  -W window     resume a lost connection within that many "
	    "seconds\n"
	    "                (default %d; 0: never)\n"
	    "  -w timeout    give up after that many seconds without progress\n"
	    "  -x            full hex of each record on a terminal too\n"
	    "  -X list       with -l: addresses/networks spared by penalties\n",
	    DEF_INTERVAL, DEF_RETAIN_MIB, DEF_ITER, DEF_LOSS, DEF_SESSIONS,
	    DEF_REKEY_SECS, DEF_REKEY_MSGS, DEF_WINDOW);
}

static void __attribute__((noreturn))
usage(void)
{
	usage_to(stderr);
	exit(EXIT_USAGE);
}

static void __attribute__((noreturn))
usage_error(const char *why)
{
	warnx("%s", why);
	usage();
}

/* A decimal number in [min, max], or a usage error naming the option. */
static long long
parse_number(const char *s, long long min, long long max, int option)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno == ERANGE ||
	    v < min || v > max) {
		warnx("-%c takes a number from %lld to %lld, not \"%s\"",
		    option, min, max, s);
		usage();
	}
	return v;
}

/* The numbers: -a, -B, -i, -L, -m, -P, -r, -R, -W, -w.  0 if ch is none. */
static int
option_number(struct options *opt, int ch, const char *arg)
{
	switch (ch) {
	case 'a':
		opt->interval = parse_number(arg, 1, MAX_INTERVAL, ch);
		break;
	case 'B':
		opt->retain = (size_t)parse_number(arg, 1, MAX_RETAIN_MIB, ch) <<
		    20;
		break;
	case 'L':
		opt->loss = parse_number(arg, MIN_LOSS, MAX_LOSS, ch);
		break;
	case 'i':
		opt->iterations = parse_number(arg, MIN_ITER, MAX_ITER, ch);
		break;
	case 'm':
		opt->max_sessions = parse_number(arg, 1, MAX_SESSIONS, ch);
		break;
	case 'P':
		opt->pad = parse_number(arg, 1, MAX_PAYLOAD, ch);
		break;
	case 'r':
		opt->rekey_msgs = parse_number(arg, 0, 1000000000, ch);
		break;
	case 'R':
		opt->rekey_secs = parse_number(arg, 0, 1000000000, ch);
		break;
	case 'W':
		opt->window = parse_number(arg, 0, MAX_WINDOW, ch);
		break;
	case 'w':
		opt->timeout = parse_number(arg, 1, 1000000000, ch);
		break;
	default:
		return 0;
	}
	return 1;
}

/* One option from getopt_long, or a usage error; -h and -V exit here. */
static void
option(struct options *opt, int ch, char *argv[])
{
	switch (ch) {
	case '4':
	case '6':
		if (opt->family != AF_UNSPEC &&
		    opt->family != (ch == '4' ? AF_INET : AF_INET6))
			usage_error("-4 and -6 exclude each other");
		opt->family = ch == '4' ? AF_INET : AF_INET6;
		break;
	case 'b': opt->bflag = 1; break;
	case 'e': opt->command = optarg; break;
	case 'g': opt->gflag = 1; break;
	case 'h': help(); exit(EXIT_OK);
	case 'V':
		printf("secchat %s\n", PROGRAM_VERSION);
		exit(EXIT_OK);
	case 'k': opt->kflag = 1; break;
	case 'K': opt->renew = 1; break;
	case 'l': opt->lflag = 1; break;
	case 'n': opt->name = optarg; break;
	case 'p': opt->passfile = optarg; break;
	case 'q': opt->qflag = 1; break;
	case 'v': opt->vflag = 1; break;
	case 'x': opt->xflag = 1; break;
	case 'X': opt->exempt = optarg; break;
	case ':':
		warnx("-%c needs an argument", optopt);
		usage();
	default:
		if (option_number(opt, ch, optarg))
			break;
		if (optopt != 0)
			warnx("unknown option -%c", optopt);
		else
			warnx("unknown option %s", argv[optind - 1]);
		usage();
	}
}

/* What one option says of another; mflag: -m was given. */
static void
options_check(const struct options *opt, int mflag)
{
	if (opt->kflag && !opt->lflag)
		usage_error("-k needs -l");
	if (mflag && !opt->kflag)
		usage_error("-m needs -k");
	if (opt->gflag && opt->lflag && opt->passfile)
		usage_error("a listener's -g makes the password: no -p");
	if (opt->renew && opt->lflag)
		usage_error("-K is a connector's");
	if (opt->renew && opt->gflag)
		usage_error("-K needs a password: a one-time code serves once");
}

/* A usage error that names its operand: "port abc: unknown service". */
static void __attribute__((noreturn))
operand_error(const char *what, const char *arg, const char *why)
{
	warnx("%s%s%s: %s", what, *what != '\0' ? " " : "", arg, why);
	usage();
}

/*
 * "host:8080", "[::1]:8080": one operand that should have been two (an
 * IPv6 address has more than one colon, and no brackets with a port).
 */
static int
host_and_port(const char *s)
{
	const char *colon = strrchr(s, ':');

	if (colon == NULL || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return 0;
	return s[0] == '[' ? colon > s && colon[-1] == ']' :
	    strchr(s, ':') == colon;
}

/*
 * A port: 1 to 65535 (0 with -l: the system picks one), or a TCP service
 * name.  getaddrinfo would take 70000 as 4464.
 */
static void
check_port(const char *port, int lflag)
{
	long v;

	if (*port != '\0' && strspn(port, "0123456789") == strlen(port)) {
		errno = 0;
		v = strtol(port, NULL, 10);
		if (errno == ERANGE || v > 65535 || v < (lflag ? 0 : 1))
			operand_error("port", port, lflag ? "out of range "
			    "(0 to 65535)" : "out of range (1 to 65535)");
		return;
	}
	if (getservbyname(port, "tcp") != NULL)
		return;
	if (host_and_port(port))
		operand_error("", port, "give host and port as two arguments");
	if (strpbrk(port, ".:") != NULL)	/* an address */
		usage_error("missing port");
	operand_error("port", port, "unknown service");
}

/* The operands: host and port, or with -l [host] port. */
static void
options_operands(struct options *opt, int argc, char *argv[])
{
	size_t len;

	if (argc == 1 && host_and_port(argv[0]))
		operand_error("", argv[0], "give host and port as two "
		    "arguments");
	if (argc == 0 || (argc == 1 && !opt->lflag))
		usage_error(argc == 0 && !opt->lflag ? "missing host and port" :
		    "missing port");
	if (argc > 2)
		usage_error("too many arguments");
	/* "[::1]", as in URLs, is the address ::1. */
	if (argc == 2 && argv[0][0] == '[' &&
	    (len = strlen(argv[0])) > 2 && argv[0][len - 1] == ']') {
		argv[0][len - 1] = '\0';
		argv[0]++;
	}
	opt->host = argc == 2 ? argv[0] : NULL;
	opt->port = argv[argc - 1];
	check_port(opt->port, opt->lflag);
}

/*
 * The peer's name in the chat has NAME_MAX_W bytes at most: a longer one
 * is cut at a character's start, and we say so when it would be shown.
 */
static void
options_name(struct options *opt)
{
	static char cut[NAME_MAX_W + 1];
	const char *name = opt->name ? opt->name :
	    opt->lflag ? NULL : opt->host;
	size_t n;

	if (name == NULL || strlen(name) <= NAME_MAX_W)
		return;
	for (n = NAME_MAX_W; n > 0 && (name[n] & 0xc0) == 0x80; n--)
		;
	memcpy(cut, name, n);
	cut[n] = '\0';
	if (opt->name != NULL || isatty(STDOUT_FILENO))
		warnx("the name \"%s\" is over %d bytes: the chat shows \"%s\"",
		    name, NAME_MAX_W, cut);
	opt->name = cut;
}

static void
parse_options(int argc, char *argv[], struct options *opt)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, mflag = 0;

	memset(opt, 0, sizeof(*opt));
	opt->family = AF_UNSPEC;
	opt->iterations = DEF_ITER;
	opt->rekey_msgs = DEF_REKEY_MSGS;
	opt->rekey_secs = DEF_REKEY_SECS;
	opt->max_sessions = DEF_SESSIONS;
	opt->timeout = -1;
	opt->interval = DEF_INTERVAL;
	opt->loss = DEF_LOSS;
	opt->window = DEF_WINDOW;
	opt->retain = (size_t)DEF_RETAIN_MIB << 20;
#ifdef SECCHAT_DEBUG	/* a debugging build (make tests/secchat-debug) */
	opt->sandbox = getenv("SECCHAT_NO_SANDBOX") == NULL;
#else
	opt->sandbox = 1;
#endif
	opt->launcher = -1;
	/* getopt's own messages would name argv[0]: ours say "secchat: ". */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":46a:B:be:ghi:kKL:lm:n:P:p:qr:R:VvW:w:xX:",
	    longopts, NULL)) != -1) {
		option(opt, ch, argv);
		mflag |= ch == 'm';
	}
	options_check(opt, mflag);
	options_operands(opt, argc - optind, argv + optind);
	options_name(opt);
}

/*
 * Environment variables that change what libcrypto or the resolver do:
 * every OPENSSL_* (OPENSSL_ia32cap can switch AES-NI off for table-based
 * AES; OPENSSL_CONF, OPENSSL_MODULES, OPENSSL_ENGINES load code and
 * settings) and glibc's resolver options and host aliases.
 */
static const char *const env_cleared[] = {
	"HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "RESOLV_HOST_CONF",
	"RESOLV_MULTI", "RESOLV_REORDER", "RESOLV_SPOOF_CHECK",
	"RESOLV_ADD_TRIM_DOMAINS", "RESOLV_OVERRIDE_TRIM_DOMAINS",
};

static int
env_is_cleared(const char *entry)
{
	size_t n = strcspn(entry, "="), i;

	if (strncmp(entry, "OPENSSL_", 8) == 0)
		return 1;
	for (i = 0; i < sizeof(env_cleared) / sizeof(env_cleared[0]); i++)
		if (strlen(env_cleared[i]) == n &&
		    strncmp(entry, env_cleared[i], n) == 0)
			return 1;
	return 0;
}

/*
 * Drop those variables.  libcrypto reads the CPU capabilities in its
 * constructor, before main, so if there were any the program starts over
 * without them.
 */
static void
clean_environment(char *argv[])
{
	char **r, **w;

	for (r = w = environ; *r != NULL; r++)
		if (!env_is_cleared(*r))
			*w++ = *r;
	if (w == r)
		return;
	*w = NULL;
	os_reexec(argv);
	err(EXIT_FAIL, "restarting without OPENSSL_* and resolver variables");
}

#ifndef SECCHAT_NO_MAIN
int
main(int argc, char *argv[])
{
	struct options opt;
	char pass[MAX_PASSFILE + 2] = "";	/* set: mlock reads it */
	size_t pass_len;

	os_set_progname();
	clean_environment(argv);
	/* No openssl.cnf, no OPENSSL_CONF: libcrypto as built, nothing else. */
	if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1)
		crypto_fail("OPENSSL_init_crypto");
	if (test_hook("startup")) {	/* what libcrypto and we start with */
		char **e;

		printf("%s\n", OPENSSL_info(OPENSSL_INFO_CPU_SETTINGS));
		for (e = environ; *e != NULL; e++)
			printf("%s\n", *e);
		return EXIT_OK;
	}
	parse_options(argc, argv, &opt);
	lock_secrets(pass, sizeof(pass));
	if (!opt.sandbox)
		warnx("warning: SECCHAT_NO_SANDBOX is set: no syscall sandbox "
		    "(for debugging only)");
	setup_process();
	tzset();	/* the zone file is read now, not under the sandbox */
	/* -e's launcher, before the password and any key exist. */
	if (opt.command != NULL)
		opt.launcher = launcher_start(opt.command);
	if (isatty(STDOUT_FILENO))
		terminal_locale();
	if (opt.lflag)
		return listener(&opt);
	/* A file is read now, a person asked once the listener has greeted. */
	pass_len = opt.passfile == NULL ? 0 :
	    read_password(&opt, pass, sizeof(pass), NULL, opt.gflag, -1);
	return connector(&opt, pass, sizeof(pass), pass_len);
}
#endif
