/* main.c -- mxresolved: options, configuration, start-up and shutdown */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "server.h"

#define MXRESOLVED_VERSION "0.1.0"
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
	struct cache_options copt = {
		.dir = cfg->cache_dir,
		.max_bytes = cfg->cache_size,
		.max_readers = cfg->workers + 16,
		.sync_interval_ms = cfg->sync_interval_ms,
	};
	struct cache *cache = cache_open(&copt, err, sizeof err);
	if (cache == NULL) {
		log_err("cache %s: %s", cfg->cache_dir, err);
		goto done;
	}
	srv = server_new(cfg, cache, err, sizeof err);
	if (srv == NULL) {
		log_err("cannot listen: %s", err);
		goto done;
	}
	if (server_start(srv, err, sizeof err) < 0) {
		log_err("cannot start: %s", err);
		goto done;
	}
	log_info("mxresolved %s ready: %u listen address(es), %u workers, cache %s", MXRESOLVED_VERSION,
	         cfg->listen_count, cfg->workers, cfg->cache_dir);

	for (;;) {
		int sig = 0;
		if (sigwait(&stop_signals, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: nothing to reload in this version");
			continue;
		}
		log_info("signal %d: shutting down", sig);
		break;
	}
	status = 0;
done:
	server_stop(srv);
	server_free(srv);
	cache_close(cache);
	config_free(cfg);
	if (status == 0)
		log_info("stopped cleanly");
	return status;
}
