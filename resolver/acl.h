/* acl.h -- which clients may ask: networks mapped to allow, refuse or drop.
 *
 * Built once from the configuration, then read-only: any number of threads
 * may call acl_check at once without locks.
 */
#ifndef MXR_ACL_H
#define MXR_ACL_H

#include <stddef.h>
#include <sys/socket.h>

enum acl_action {
	ACL_ALLOW = 0,  /* answered normally */
	ACL_REFUSE,     /* answered REFUSED, never recursed for */
	ACL_DROP,       /* no answer at all */
};

struct acl;

/* An empty list: every client gets default_action. Returns NULL on memory exhaustion. */
struct acl *acl_new(enum acl_action default_action);

/* Add a rule for a network in CIDR text ("192.0.2.0/24", "2001:db8::/32", or a
 * bare address for one host).  The longest matching prefix wins; adding the
 * same prefix twice is an error.  Returns 0, or -1 with a message in err. */
int acl_add(struct acl *a, const char *cidr, enum acl_action action, char *err, size_t errlen);

/* The action for a client address (AF_INET or AF_INET6; IPv4-mapped IPv6
 * addresses are matched as IPv4).  Never allocates. */
enum acl_action acl_check(const struct acl *a, const struct sockaddr *client);

/* The same list used as a map from networks to any small value (a scope
 * index, say): acl_add_value adds a rule with value, acl_lookup returns the
 * value of the longest matching rule, or the default (the acl_new argument
 * as a number).  acl_add and acl_check are these with actions. */
int acl_add_value(struct acl *a, const char *cidr, unsigned value, char *err, size_t errlen);
unsigned acl_lookup(const struct acl *a, const struct sockaddr *client);

/* Free the list.  Accepts NULL. */
void acl_free(struct acl *a);

#endif
