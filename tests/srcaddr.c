/*
 * LD_PRELOAD shim for tests: connect(2) from the source address in
 * $SECCHAT_TEST_SOURCE (an IPv4 or IPv6 address), so that a real
 * connector can be one of many addresses on loopback (127.0.0.0/8, or an
 * IPv6 prefix routed to lo inside a network namespace).  Never installed.
 */
#define _GNU_SOURCE
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	static int (*real)(int, const struct sockaddr *, socklen_t);
	const char *src = getenv("SECCHAT_TEST_SOURCE");
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	int one = 1;

	if (real == NULL)
		real = (int (*)(int, const struct sockaddr *, socklen_t))
		    dlsym(RTLD_NEXT, "connect");
	if (src != NULL && sa->sa_family == AF_INET) {
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		if (inet_pton(AF_INET, src, &s4.sin_addr) == 1)
			(void)bind(fd, (struct sockaddr *)&s4, sizeof(s4));
	} else if (src != NULL && sa->sa_family == AF_INET6) {
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		(void)setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof(one));
		if (inet_pton(AF_INET6, src, &s6.sin6_addr) == 1)
			(void)bind(fd, (struct sockaddr *)&s6, sizeof(s6));
	}
	return real(fd, sa, len);
}
