# Makefile -- one non-recursive build for mxresolved.
#
#   make            build the daemon and mxresolvectl (build/)
#   make run        install missing dependencies, build, run with deploy/mxresolved.yaml
#   make demo       start the loopback test-bed and the daemon pointed at it
#   make test       unit + integration tests, all under ASan/UBSan
#   make fuzz       run each libFuzzer harness for FUZZ_SECONDS
#   make install    PREFIX / DESTDIR honoured

PREFIX ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 60

CC ?= gcc
PKGS := libunbound lmdb libevent_pthreads libevent yaml-0.1 libpsl libmicrohttpd jansson
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -Iresolver -Icache -Iweb -MMD -MP -g
OPT_CFLAGS := -O2
SAN_CFLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

DAEMON_SRC := resolver/main.c resolver/server.c resolver/server_resolver.c resolver/recurse.c resolver/config.c \
              resolver/log.c resolver/wire.c resolver/acl.c resolver/ratelimit.c resolver/stats.c \
              resolver/control.c resolver/cachepolicy.c resolver/policy.c resolver/lists.c \
              resolver/dnsbl.c cache/cache.c web/web.c web/web_render.c
# The dashboard's files and Debian's Chart.js, compiled in (no CDN, works offline).
CHARTJS ?= /usr/share/javascript/chart.js/chart.min.js
WEB_ASSETS := web/assets/index.html web/assets/app.js web/assets/app.css $(CHARTJS)
LIB_SRC := $(filter-out resolver/main.c,$(DAEMON_SRC))
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

B := build
S := build/asan

.PHONY: all run demo test unit integration bench bench-deps bench-cache bench-stats bench-crypto bench-filter soak fuzz install clean deps
all: $(B)/mxresolved $(B)/mxresolvectl

deps:
	@deploy/install-deps

# Objects, one tree per flavour.
$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(OPT_CFLAGS) $(PKG_CFLAGS) -c $< -o $@
$(S)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(B)/gen/web_assets.c: web/embed-assets $(WEB_ASSETS)
	@mkdir -p $(dir $@)
	python3 web/embed-assets $@ $(WEB_ASSETS)
$(B)/gen/web_assets.o: $(B)/gen/web_assets.c
	$(CC) $(BASE_CFLAGS) $(OPT_CFLAGS) -c $< -o $@
$(S)/gen/web_assets.o: $(B)/gen/web_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_CFLAGS) -c $< -o $@

$(B)/mxresolved: $(DAEMON_SRC:%.c=$(B)/%.o) $(B)/gen/web_assets.o
	$(CC) $(OPT_CFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread
$(S)/mxresolved: $(DAEMON_SRC:%.c=$(S)/%.o) $(S)/gen/web_assets.o
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread
$(B)/mxresolvectl: $(B)/resolver/mxresolvectl.o
	$(CC) $(OPT_CFLAGS) -o $@ $^

# What each unit test links besides itself.
TEST_LINK_test_wire := resolver/wire.c
TEST_LINK_test_cache := cache/cache.c resolver/log.c resolver/wire.c
TEST_LINK_test_config := resolver/config.c resolver/log.c resolver/acl.c
TEST_LINK_test_control := resolver/control.c resolver/stats.c cache/cache.c resolver/wire.c resolver/log.c
TEST_LINK_test_acl := resolver/acl.c
TEST_LINK_test_lists := resolver/lists.c resolver/wire.c
TEST_LINK_test_policy := resolver/policy.c resolver/lists.c resolver/dnsbl.c resolver/acl.c resolver/wire.c \
                         resolver/log.c
TEST_LINK_test_dnsbl := resolver/dnsbl.c resolver/wire.c
TEST_LINK_test_cachepolicy := resolver/cachepolicy.c resolver/wire.c
TEST_LINK_test_ratelimit := resolver/ratelimit.c
TEST_LINK_test_stats := resolver/stats.c
TEST_LINK_test_web_render := web/web_render.c resolver/stats.c resolver/wire.c
san_objs = $(patsubst %.c,$(S)/%.o,$(1))
.SECONDEXPANSION:
$(S)/tests/%: $(S)/tests/unit/%.o $$(call san_objs,$$(TEST_LINK_$$*))
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(PKG_LIBS) -lcunit -lpthread

run: deps $(B)/mxresolved
	@mkdir -p var
	$(B)/mxresolved -c deploy/mxresolved.yaml

demo: deps $(B)/mxresolved
	@tests/testbed/testbed start
	@tests/testbed/demo $(B)/mxresolved

unit: $(UNIT_TESTS:%=$(S)/tests/%)
	@set -e; for t in $^; do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t; done

integration: $(S)/mxresolved
	tests/integration/run $(S)/mxresolved

# Everything built first (the plain build with -Werror, then the sanitized
# one), then every suite through one runner that closes with the total.
test: deps
	$(MAKE) --no-print-directory all $(S)/mxresolved $(UNIT_TESTS:%=$(S)/tests/%)
	@tests/run-all $(S)

bench-deps:
	@deploy/install-deps --bench

bench: bench-deps $(B)/mxresolved $(B)/mxresolvectl
	tests/bench/run $(B)/mxresolved

# The cache API alone, optimized, no sanitizers: puts/s, gets/s, bytes per answer.
BENCH_CACHE_N ?= 1000000
$(B)/bench_cache: tests/bench/bench_cache.c cache/cache.c resolver/wire.c resolver/log.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -Iresolver -Icache -g $(OPT_CFLAGS) $(PKG_CFLAGS) -o $@ $^ -llmdb -lpthread
bench-cache: $(B)/bench_cache
	$(B)/bench_cache -n $(BENCH_CACHE_N)

# The stats recorder alone, optimized, no sanitizers: ns per stats_record and per histogram add.
$(B)/bench_stats: tests/bench/bench_stats.c resolver/stats.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -Iresolver -g $(OPT_CFLAGS) -o $@ $^ -lpthread
bench-stats: $(B)/bench_stats
	$(B)/bench_stats

# ECDSA P-256 verifications per second with nettle (Debian's libunbound) and OpenSSL (Debian's
# unbound daemon): what bounds the miss rows of make bench.
$(B)/bench_crypto: tests/bench/bench_crypto.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -g $(OPT_CFLAGS) -o $@ $^ -lhogweed -lnettle -lgmp -lcrypto
bench-crypto: bench-deps $(B)/bench_crypto
	$(B)/bench_crypto

# The plain daemon under dnsperf for SOAK_SECONDS (default 600); fails if its RSS keeps growing.
soak: bench-deps $(B)/mxresolved
	tests/bench/soak $(B)/mxresolved

$(B)/bench_filter: $(B)/tests/bench/bench_filter.o $(B)/resolver/lists.o $(B)/resolver/wire.o
	$(CC) $(OPT_CFLAGS) -o $@ $^
bench-filter: bench-deps $(B)/bench_filter $(B)/mxresolved
	$(B)/bench_filter
	tests/bench/filter_qps $(B)/mxresolved

FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Iresolver -Icache -Iweb -Itests/fuzz -g -O1 -fsanitize=fuzzer,address,undefined
# Each harness links only the module it drives.
FUZZ_LINK_wire_query := resolver/wire.c
FUZZ_LINK_wire_forms := resolver/wire.c
FUZZ_LINK_config := resolver/config.c resolver/log.c resolver/acl.c
FUZZ_LINK_acl := resolver/acl.c
FUZZ_LINK_lists_hosts := resolver/lists.c resolver/wire.c
FUZZ_LINK_lists_domains := resolver/lists.c resolver/wire.c
FUZZ_LINK_lists_adblock := resolver/lists.c resolver/wire.c
FUZZ_LINK_lists_rpz := resolver/lists.c resolver/wire.c
FUZZ_LINK_web_render := web/web_render.c resolver/stats.c resolver/wire.c
$(B)/fuzz/%: tests/fuzz/fuzz_%.c $$(FUZZ_LINK_$$*)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS)
# Two harnesses at a time (one per core); any crash, leak or sanitizer
# report fails the target, with the harness's output shown.
fuzz: $(FUZZ_TARGETS:%=$(B)/fuzz/%)
	@tests/fuzz/run-all $(B)/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Installed documentation.  The unit goes where systemd looks for it only on
# a system install (PREFIX=/usr); otherwise it is a document to copy by hand.
MAN5 := deploy/man/mxresolved.yaml.5
MAN8 := deploy/man/mxresolved.8 deploy/man/mxresolvectl.8
PROFILES := $(wildcard deploy/profiles/*.yaml)
DOCDIR := $(PREFIX)/share/doc/mxresolved
ifeq ($(PREFIX),/usr)
UNITDIR := /lib/systemd/system
else
UNITDIR := $(DOCDIR)
endif

install: $(B)/mxresolved $(B)/mxresolvectl
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) \
	           $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(B)/mxresolved $(DESTDIR)$(PREFIX)/sbin/mxresolved
	install -m 0755 $(B)/mxresolvectl $(DESTDIR)$(PREFIX)/bin/mxresolvectl
	install -m 0644 $(MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 $(MAN8) $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 deploy/mxresolved.yaml $(DESTDIR)$(DOCDIR)/mxresolved.yaml.example
	$(if $(PROFILES),install -m 0644 $(PROFILES) $(DESTDIR)$(DOCDIR)/)
	install -m 0644 deploy/README.md $(DESTDIR)$(DOCDIR)/README.deploy.md
	sed 's|/usr/sbin/mxresolved|$(PREFIX)/sbin/mxresolved|g' deploy/mxresolved.service \
	  > $(DESTDIR)$(UNITDIR)/mxresolved.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/mxresolved.service

clean:
	rm -rf build

# Header dependencies of whichever trees B and S name.
-include $(shell find $(B) $(S) -name '*.d' 2>/dev/null | sort -u)
