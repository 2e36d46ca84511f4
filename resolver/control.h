/* control.h -- the local control socket that mxresolvectl talks to.
 *
 * A UNIX stream socket (mode 0660) served by its own thread.  The protocol is
 * one request line per connection ("cache flush --suffix example.com") and a
 * reply of text lines, the first being "ok" or "error: <message>".  Commands
 * are carried out through the public calls of cache and server, the same
 * ones the web API uses.
 *
 * Requests are served one at a time.  A request line is at most 1024 bytes
 * and must arrive within 2 s of connecting, else the reply is an error, so
 * a silent client delays the next one by at most that.  Names are in
 * presentation form, types are mnemonics (A, MX, ...) or TYPEnnn.
 *
 *   stats                        "name value" per server counter (stats_name)
 *                                and "inflight N", then cache_entries_<part>,
 *                                cache_bytes_<part>, cache_quota_<part>,
 *                                cache_map_size, cache_map_used, cache_puts,
 *                                cache_put_drops, cache_evictions, ...
 *   cache dump [SUFFIX]          one line per entry (at most 100000, then
 *                                "... truncated"):
 *                                NAME TYPE PARTITION TTL_LEFT STATE RCODE DNSSEC SIZE
 *                                STATE fresh|stale, RCODE NOERROR|NXDOMAIN|...,
 *                                DNSSEC secure|insecure|bogus|indeterminate,
 *                                SIZE the bytes of both stored forms
 *   cache lookup NAME TYPE       that entry's dump line, then the records of
 *                                its form without DNSSEC records, one per
 *                                line ("owner TTL IN TYPE rdata", the TTL as
 *                                it would be served now) under ";; answer",
 *                                ";; authority", ";; additional"; or
 *                                "error: not cached"
 *   cache flush NAME [TYPE]      then "flushed N"
 *   cache flush --suffix SUFFIX
 *   cache flush --partition general|mail|dnsbl
 *   help                         the usage line
 */
#ifndef MXR_CONTROL_H
#define MXR_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

struct config;
struct server;
struct cache;
struct control;

/* Create, bind and listen on cfg->control_socket, chown it to owner/group
 * (-1 = leave) with mode 0660.  A stale socket file is replaced; a socket
 * another process still listens on, or a file that is not a socket, is an
 * error and left alone.  Call before dropping privileges.  Returns NULL
 * with a message in err. */
struct control *control_new(const struct config *cfg, uid_t owner, gid_t group, char *err, size_t errlen);

/* Start answering requests on the control thread.  srv may be NULL (tests,
 * or a daemon without a front end): stats then prints the cache part only.
 * cache may be NULL: the cache commands then answer "error: no cache".
 * Both must outlive the control.  Returns 0, or -1 with a message in err. */
int control_start(struct control *ctl, struct server *srv, struct cache *cache, char *err, size_t errlen);

/* Carry out one request line (the protocol above, without the socket) as
 * the web API does, with srv and cache as in control_start.  Returns the
 * reply text, malloc'd (the caller frees it), whose first line is "ok" or
 * "error: <message>"; NULL when out of memory. */
char *control_run(struct server *srv, struct cache *cache, const char *line);

/* Stop the thread (without waiting for a silent client), close the socket
 * and unlink it if it is still the one control_new made, free.  Call before
 * freeing the server and the cache.  Accepts NULL. */
void control_free(struct control *ctl);

#endif
