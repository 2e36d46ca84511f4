/* udp_ceiling.c -- the machine's ceiling for a UDP DNS server: answers every
 * query with a fixed reply (the query's ID and question, one A record
 * 192.0.2.1, TTL 60), doing no cache work at all.  Same I/O shape as
 * mxresolved's hit path: N threads, each with its own SO_REUSEPORT socket,
 * blocking recvmmsg then sendmmsg of the batch.
 *
 *   udp_ceiling ADDR PORT [THREADS]     (default 2 threads; runs until SIGTERM/SIGINT)
 *
 * Built by tests/bench/run: cc -O2 -pthread -o build/bench/udp_ceiling tests/bench/udp_ceiling.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
#define BUFSZ 4096

static struct sockaddr_in bind_addr;

/* Build the reply in place from the query in buf (len bytes); returns the
 * reply length, or 0 to send nothing. */
static size_t answer(uint8_t *buf, size_t len)
{
	size_t off = 12;
	if (len < 12 + 5 || (buf[2] & 0x80))
		return 0;
	/* skip QNAME */
	while (off < len && buf[off] != 0) {
		if ((buf[off] & 0xC0) != 0)
			return 0;
		off += 1 + buf[off];
	}
	off += 1 + 4; /* root label, QTYPE, QCLASS */
	if (off > len)
		return 0;
	buf[2] = 0x84 | (buf[2] & 0x01); /* QR, AA, keep RD */
	buf[3] = 0x80;                   /* RA, NOERROR */
	buf[4] = 0; buf[5] = 1;          /* QDCOUNT 1 */
	buf[6] = 0; buf[7] = 1;          /* ANCOUNT 1 */
	buf[8] = 0; buf[9] = 0;          /* NSCOUNT 0 */
	buf[10] = 0; buf[11] = 0;        /* ARCOUNT 0 (EDNS dropped) */
	static const uint8_t rr[] = {
		0xC0, 0x0C,             /* name: pointer to the question */
		0x00, 0x01, 0x00, 0x01, /* A IN */
		0x00, 0x00, 0x00, 0x3C, /* TTL 60 */
		0x00, 0x04, 192, 0, 2, 1,
	};
	memcpy(buf + off, rr, sizeof rr);
	return off + sizeof rr;
}

static void *worker(void *arg)
{
	(void)arg;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), on = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0 ||
	    bind(fd, (struct sockaddr *)&bind_addr, sizeof bind_addr) < 0) {
		perror("udp_ceiling: socket/bind");
		exit(1);
	}
	static __thread uint8_t bufs[BATCH][BUFSZ];
	struct mmsghdr in[BATCH], out[BATCH];
	struct iovec iov[BATCH], oiov[BATCH];
	struct sockaddr_storage peers[BATCH];
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = BUFSZ;
			memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
			in[i].msg_hdr.msg_iov = &iov[i];
			in[i].msg_hdr.msg_iovlen = 1;
			in[i].msg_hdr.msg_name = &peers[i];
			in[i].msg_hdr.msg_namelen = sizeof peers[i];
		}
		/* block for the first datagram, then take what is queued */
		int got = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
		if (got <= 0)
			continue;
		int n = 0;
		for (int i = 0; i < got; i++) {
			size_t rl = answer(bufs[i], in[i].msg_len);
			if (rl == 0)
				continue;
			oiov[n].iov_base = bufs[i];
			oiov[n].iov_len = rl;
			memset(&out[n].msg_hdr, 0, sizeof out[n].msg_hdr);
			out[n].msg_hdr.msg_iov = &oiov[n];
			out[n].msg_hdr.msg_iovlen = 1;
			out[n].msg_hdr.msg_name = &peers[i];
			out[n].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
			n++;
		}
		for (int sent = 0; sent < n;) {
			int r = sendmmsg(fd, out + sent, (unsigned)(n - sent), 0);
			if (r <= 0)
				break;
			sent += r;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s ADDR PORT [THREADS]\n", argv[0]);
		return 2;
	}
	int threads = argc > 3 ? atoi(argv[3]) : 2;
	if (threads < 1 || threads > 64)
		threads = 2;
	bind_addr.sin_family = AF_INET;
	bind_addr.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &bind_addr.sin_addr) != 1) {
		fprintf(stderr, "udp_ceiling: bad address %s\n", argv[1]);
		return 2;
	}
	pthread_t t[64];
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int sig;
	sigwait(&set, &sig);
	return 0;
}
