/* main.c -- mxresolved: options, configuration, start-up and shutdown */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "server.h"
#include "web.h"

#define MXRESOLVED_VERSION "0.2.0"
#define MAIN_EXIT_CONFIG 2

static void main_usage(FILE *out)
{
	fprintf(out,
	        "usage: mxresolved [-n] [-v]... [-c FILE]\n"
	        "  -c FILE  configuration file (default /etc/mxresolved/mxresolved.yaml)\n"
	        "  -n       check the configuration, print the result and exit\n"
	        "  -v       more logging (repeat for debug)\n"
	        "  -V       print the version\n");
}

/* The identity to run as after binding: cfg->user, or the current one. */
struct main_identity {
	bool drop;
	uid_t uid;
	gid_t gid;
	const char *name;
};

static int main_identity(const struct config *cfg, struct main_identity *id)
{
	id->drop = false;
	id->uid = geteuid();
	id->gid = getegid();
	id->name = NULL;
	if (cfg->user == NULL)
		return 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (pw == NULL) {
		log_err("%s: user '%s' does not exist", cfg->path, cfg->user);
		return -1;
	}
	if (geteuid() != 0) {
		if (pw->pw_uid != geteuid()) {
			log_err("%s: cannot become user '%s' without starting as root", cfg->path, cfg->user);
			return -1;
		}
		return 0;
	}
	id->drop = true;
	id->uid = pw->pw_uid;
	id->gid = pw->pw_gid;
	id->name = cfg->user;
	return 0;
}

/* The cache holds what every client is told: it must belong to the user
 * the daemon runs as and be writable by nobody else.  A missing directory
 * is created with the right owner. */
static int main_check_cache_dir(const struct config *cfg, const struct main_identity *id)
{
	struct stat st;
	if (stat(cfg->cache_dir, &st) < 0) {
		if (errno != ENOENT) {
			log_err("cache directory %s: %s", cfg->cache_dir, strerror(errno));
			return -1;
		}
		if (mkdir(cfg->cache_dir, 0700) < 0 && errno != EEXIST) {
			log_err("cache directory %s: cannot create: %s", cfg->cache_dir, strerror(errno));
			return -1;
		}
		if (id->drop && chown(cfg->cache_dir, id->uid, id->gid) < 0) {
			log_err("cache directory %s: chown: %s", cfg->cache_dir, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("cache directory %s: not a directory", cfg->cache_dir);
		return -1;
	}
	if (st.st_uid != id->uid) {
		log_err("cache directory %s: owned by uid %u, but the daemon runs as uid %u: chown it", cfg->cache_dir,
		        (unsigned)st.st_uid, (unsigned)id->uid);
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_err("cache directory %s: writable by group or others (mode %03o): chmod go-w it", cfg->cache_dir,
		        (unsigned)(st.st_mode & 0777));
		return -1;
	}
	if (access(cfg->cache_dir, R_OK | W_OK | X_OK) < 0) {
		log_err("cache directory %s: %s", cfg->cache_dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* LMDB creates its files as the user that opens them (root, so that a bad
 * cache can be moved aside); hand them to the daemon's user, so that a
 * later start without root can still open them. */
static int main_chown_cache(const struct config *cfg, const struct main_identity *id)
{
	if (!id->drop)
		return 0;
	/* The directory too: a cache set aside at open is replaced by a new one. */
	if (chown(cfg->cache_dir, id->uid, id->gid) < 0) {
		log_err("cache directory %s: chown: %s", cfg->cache_dir, strerror(errno));
		return -1;
	}
	DIR *d = opendir(cfg->cache_dir);
	if (d == NULL) {
		log_err("cache directory %s: %s", cfg->cache_dir, strerror(errno));
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (fchownat(dirfd(d), e->d_name, id->uid, id->gid, AT_SYMLINK_NOFOLLOW) < 0) {
			log_err("cache file %s/%s: chown: %s", cfg->cache_dir, e->d_name, strerror(errno));
			rc = -1;
		}
	}
	closedir(d);
	return rc;
}

/* Become the configured user for good: groups, gid, uid, and no way back
 * through set-id binaries.  Capabilities go with the uid change. */
static int main_drop_privileges(const struct main_identity *id)
{
	if (!id->drop)
		return 0;
	if (setgroups(1, &id->gid) < 0 || setgid(id->gid) < 0 || setuid(id->uid) < 0) {
		log_err("cannot become user '%s': %s", id->name, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_err("cannot set no_new_privs: %s", strerror(errno));
		return -1;
	}
	if (id->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		log_err("privileges could be regained after dropping them: refusing to run");
		return -1;
	}
	log_info("running as user '%s' (uid %u)", id->name, (unsigned)id->uid);
	return 0;
}

/* SIGHUP: read the file again and apply what can change live.  A file
 * with errors changes nothing: the running configuration stays. */
static void main_reload(const char *path, struct server *srv, struct cache *cache)
{
	struct config *fresh = NULL;
	int errors = config_load(path, &fresh, stderr);
	if (errors != 0) {
		log_err("reload: %s has %d error(s); keeping the running configuration", path, errors);
		return;
	}
	uint64_t quota[CACHE_PART_COUNT];
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++)
		quota[p] = p < CONFIG_PARTITIONS ? fresh->partitions[p].quota : 0;
	log_set_level((enum log_level)fresh->log_level);
	if (server_reload(srv, fresh) < 0) {
		log_err("reload: out of memory; keeping the running configuration");
		config_free(fresh);
		return;
	}
	cache_set_quotas(cache, quota);
	log_info("reload: %s applied; the cache is kept", path);
}

int main(int argc, char **argv)
{
	const char *path = "/etc/mxresolved/mxresolved.yaml";
	bool check_only = false;
	int verbose = 0;
	int opt;
	while ((opt = getopt(argc, argv, "c:nvVh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'n': check_only = true; break;
		case 'v': verbose++; break;
		case 'V': printf("mxresolved %s\n", MXRESOLVED_VERSION); return 0;
		case 'h': main_usage(stdout); return 0;
		default: main_usage(stderr); return MAIN_EXIT_CONFIG;
		}
	}
	if (optind != argc) {
		main_usage(stderr);
		return MAIN_EXIT_CONFIG;
	}

	struct config *cfg = NULL;
	if (config_load(path, &cfg, stderr) != 0)
		return MAIN_EXIT_CONFIG;
	if (check_only) {
		printf("configuration OK\n");
		config_free(cfg);
		return 0;
	}
	int level = cfg->log_level + verbose;
	log_set_level(level > LOG_LEVEL_DEBUG ? LOG_LEVEL_DEBUG : (enum log_level)level);

	/* Signals are taken by sigwait in this thread only; every thread
	 * started from here inherits the mask. */
	sigset_t stop_signals;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	int status = 1;
	char err[512];
	struct server *srv = NULL;
	struct control *ctl = NULL;
	struct web *web = NULL;
	struct cache *cache = NULL;
	struct main_identity id;
	if (main_identity(cfg, &id) < 0 || main_check_cache_dir(cfg, &id) < 0)
		goto done;
	struct cache_options copt = {
		.dir = cfg->cache_dir,
		.max_bytes = cfg->cache_size,
		.max_readers = cfg->workers + 16,
		.sync_interval_ms = cfg->sync_interval_ms,
	};
	for (unsigned p = 0; p < CACHE_PART_COUNT && p < CONFIG_PARTITIONS; p++)
		copt.quota[p] = cfg->partitions[p].quota;
	cache = cache_open(&copt, err, sizeof err);
	if (cache == NULL) {
		log_err("cache %s: %s", cfg->cache_dir, err);
		goto done;
	}
	if (main_chown_cache(cfg, &id) < 0)
		goto done;
	srv = server_new(cfg, cache, err, sizeof err);
	if (srv == NULL) {
		log_err("cannot start: %s", err);
		goto done;
	}
	if (cfg->control_socket != NULL) {
		gid_t group = (gid_t)-1;
		if (cfg->control_group != NULL) {
			struct group *gr = getgrnam(cfg->control_group);
			if (gr == NULL) {
				log_err("control-group '%s' does not exist", cfg->control_group);
				goto done;
			}
			group = gr->gr_gid;
		}
		ctl = control_new(cfg, id.drop ? id.uid : (uid_t)-1, group, err, sizeof err);
		if (ctl == NULL) {
			log_err("%s", err);
			goto done;
		}
	}
	/* Ports below 1024 and a key only root may read: both before the drop. */
	web = web_new(cfg, err, sizeof err);
	if (web == NULL) {
		log_err("web: %s", err);
		goto done;
	}
	if (main_drop_privileges(&id) < 0)
		goto done;
	if (server_start(srv, err, sizeof err) < 0) {
		log_err("cannot start: %s", err);
		goto done;
	}
	if (ctl != NULL && control_start(ctl, srv, cache, err, sizeof err) < 0) {
		log_err("control socket: %s", err);
		goto done;
	}
	if (web_start(web, srv, cache, MXRESOLVED_VERSION, err, sizeof err) < 0) {
		log_err("web: %s", err);
		goto done;
	}
	log_info("mxresolved %s ready: %u listen address(es), %u workers, %u resolver threads, cache %s, "
	         "%u web address(es)",
	         MXRESOLVED_VERSION, cfg->listen_count, cfg->workers, cfg->resolver_threads, cfg->cache_dir,
	         cfg->web_listen_count);

	for (;;) {
		int sig = 0;
		if (sigwait(&stop_signals, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			main_reload(path, srv, cache);
			continue;
		}
		log_info("signal %d: shutting down", sig);
		break;
	}
	status = 0;
done:
	/* The web reads the workers' statistics and saves to the cache: first out. */
	web_free(web);
	control_free(ctl);
	server_stop(srv);
	server_free(srv);
	cache_close(cache);
	config_free(cfg);
	if (status == 0)
		log_info("stopped cleanly");
	return status;
}
