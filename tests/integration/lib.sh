# lib.sh -- what every integration script shares: paths, the pass/fail
# tally, starting and stopping the daemon under the sanitizers, and dig.
#
# Sourced with the daemon binary as $1; ADDR and PORT may be set before.
# shellcheck shell=bash

DAEMON=$(realpath "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TESTBED="$ROOT/tests/testbed/testbed"
ADDR=${ADDR:-127.0.10.53}
PORT=${PORT:-5353}
WORK=$(mktemp -d /tmp/mxresolved-it.XXXXXX)
CACHE_DIR="$WORK/cache"
CONF="$WORK/mxresolved.yaml"
LOG="$WORK/daemon.log"
DAEMON_PID=""
PASSED=0
# Debian's interpreter, which has python3-dnspython (a python3 earlier on PATH may not).
PY=/usr/bin/python3
FAILED=0

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=66:log_path=$WORK/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=66:log_path=$WORK/ubsan"

cleanup() {
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
	fi
	"$TESTBED" stop >/dev/null 2>&1
	if [ "$FAILED" -eq 0 ]; then rm -rf "$WORK"; else echo "kept $WORK for inspection"; fi
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok   $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     /'; }

# check NAME COMMAND...: the command's exit status decides.
check() {
	local name=$1; shift
	local result
	if result=$("$@" 2>&1); then pass "$name"; else fail "$name" "$result"; fi
}

q() { dig @"$ADDR" -p "$PORT" +time=6 +tries=1 "$@"; }

start_daemon() {
	: > "$LOG"
	"$DAEMON" -c "$CONF" 2>>"$LOG" &
	DAEMON_PID=$!
	for _ in $(seq 1 100); do
		# The whole phrase: "ready" alone is in "Address already in use".
		if grep -q "mxresolved .* ready: " "$LOG"; then return 0; fi
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "daemon did not start:"; cat "$LOG"
	return 1
}

stop_daemon() {
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID"
	local rc=$?
	DAEMON_PID=""
	return $rc
}

sanitizer_clean() {
	if ls "$WORK"/asan* "$WORK"/ubsan* >/dev/null 2>&1; then
		cat "$WORK"/asan* "$WORK"/ubsan* 2>/dev/null | head -60
		return 1
	fi
	! grep -E "runtime error|AddressSanitizer|LeakSanitizer" "$LOG"
}

# A config from the test-bed template, with the run's cache dir and port;
# its web server listens on $ADDR:8053.  --no-web leaves the template's web
# line out, for a script that appends its own section.
write_config() {
	sed -e "s|@TESTBED_DIR@|$TESTBED_DIR|g" -e "s|@CACHE_DIR@|$CACHE_DIR|g" -e "s|@PORT@|$PORT|g" \
		-e "s|127.0.10.53:|$ADDR:|" "$ROOT/tests/testbed/mxresolved-testbed.yaml.in" > "$CONF"
	if [ "${1:-}" = "--no-web" ]; then
		sed -i '/^web:/d' "$CONF"
	fi
}

start_testbed() {
	"$TESTBED" start || { echo "test-bed did not start"; echo "0 passed, 1 failed"; exit 1; }
	# shellcheck disable=SC1091
	. "$ROOT/build/testbed/testbed.env"
}

# The TTL of the first record of a type in dig output.
ttl_of() { awk -v t="$2" '$4 == t && $1 !~ /^;/ {print $2; exit}' <<<"$1"; }

# Print the summary line and exit with the verdict.
finish() {
	echo
	echo "$1: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}
