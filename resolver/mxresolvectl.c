/* mxresolvectl.c -- the command-line client of the daemon's control socket
 *
 * Joins its arguments into one request line, sends it, and prints the reply
 * (see control.h for the protocol): the lines after "ok" go to stdout and
 * exit 0; an "error: ..." reply goes to stderr and exits 1; a usage error,
 * a socket that cannot be reached or a connection that closes without a
 * reply exits 2.  It links nothing of the daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MXRCTL_DEFAULT_SOCKET "/run/mxresolved/mxresolved.ctl"
#define MXRCTL_LINE_MAX 1024 /* the daemon's limit; longer lines are refused locally */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: mxresolvectl [-s SOCKET] COMMAND...\n"
	        "\n"
	        "commands:\n"
	        "  stats                                   counters of the server and the cache\n"
	        "  cache dump [SUFFIX]                     list cached entries (under SUFFIX)\n"
	        "  cache lookup NAME TYPE                  show one entry and its records\n"
	        "  cache flush NAME [TYPE]                 remove NAME's entries (of TYPE)\n"
	        "  cache flush --suffix SUFFIX             remove every entry at or under SUFFIX\n"
	        "  cache flush --partition general|mail|dnsbl\n"
	        "                                          empty one partition\n"
	        "\n"
	        "The socket is -s SOCKET, else $MXRESOLVECTL_SOCKET, else " MXRCTL_DEFAULT_SOCKET ".\n");
}

/* Write all of buf; returns 0 or -1 with errno set. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = getenv("MXRESOLVECTL_SOCKET");
	int opt;

	if (path == NULL || *path == '\0')
		path = MXRCTL_DEFAULT_SOCKET;
	/* '+': stop at the first word, so that "cache flush --suffix x" reaches
	 * the daemon instead of being taken for options of ours. */
	while ((opt = getopt(argc, argv, "+hs:")) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}

	char line[MXRCTL_LINE_MAX + 2];
	size_t len = 0;
	for (int i = optind; i < argc; i++) {
		size_t l = strlen(argv[i]);
		if (strpbrk(argv[i], "\r\n") != NULL) {
			fprintf(stderr, "mxresolvectl: an argument contains a line break\n");
			return 2;
		}
		if (len + (len ? 1 : 0) + l > MXRCTL_LINE_MAX) {
			fprintf(stderr, "mxresolvectl: the command is longer than %d bytes\n", MXRCTL_LINE_MAX);
			return 2;
		}
		if (len)
			line[len++] = ' ';
		memcpy(line + len, argv[i], l);
		len += l;
	}
	line[len++] = '\n';

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "mxresolvectl: %s: socket path too long\n", path);
		return 2;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "mxresolvectl: socket: %s\n", strerror(errno));
		return 2;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		fprintf(stderr, "mxresolvectl: cannot connect to %s: %s\n", path, strerror(errno));
		close(fd);
		return 2;
	}
	if (send_all(fd, line, len) != 0) {
		fprintf(stderr, "mxresolvectl: sending to %s: %s\n", path, strerror(errno));
		close(fd);
		return 2;
	}
	shutdown(fd, SHUT_WR);

	/* The first line decides where everything goes; it is short ("ok" or
	 * "error: ..."), the rest is streamed as it comes. */
	char first[4096];
	size_t flen = 0;
	int status = -1;      /* -1: first line not complete yet; 0 ok; 1 error */
	FILE *out = stdout;
	char buf[65536];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && status < 0) {
			fprintf(stderr, "mxresolvectl: reading from %s: %s\n", path, strerror(errno));
			close(fd);
			return 2;
		}
		if (n <= 0)
			break; /* end, or a reset after a complete first line: print what we have */
		const char *p = buf;
		size_t left = (size_t)n;
		if (status < 0) {
			const char *nl = memchr(p, '\n', left);
			size_t take = nl ? (size_t)(nl - p) + 1 : left;
			if (flen + take >= sizeof first) {
				fprintf(stderr, "mxresolvectl: malformed reply from %s\n", path);
				close(fd);
				return 2;
			}
			memcpy(first + flen, p, take);
			flen += take;
			p += take;
			left -= take;
			if (nl == NULL)
				continue;
			first[flen] = '\0';
			if (strcmp(first, "ok\n") == 0) {
				status = 0;
			} else if (strncmp(first, "error:", 6) == 0) {
				status = 1;
				out = stderr;
				fputs(first, stderr);
			} else {
				fprintf(stderr, "mxresolvectl: malformed reply from %s: %s", path, first);
				close(fd);
				return 2;
			}
		}
		if (left > 0 && fwrite(p, 1, left, out) != left) {
			close(fd);
			return 2;
		}
	}
	close(fd);
	if (status < 0) {
		fprintf(stderr, "mxresolvectl: %s closed the connection without a complete reply\n", path);
		return 2;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "mxresolvectl: writing the output: %s\n", strerror(errno));
		return 2;
	}
	return status;
}
