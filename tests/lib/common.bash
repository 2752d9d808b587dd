# tests/lib/common.bash - helpers shared by every BATS suite.
#
# Load with:  load lib/common
#
# Conventions: every suite keeps its state under $WORK (a fresh directory
# per suite, removed at the end unless KEEP_WORK=1), talks only to
# 127.0.0.1, and takes its ports from its own block (PORT_BASE, set by the
# suite before loading this file) so that suites never collide.

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
export TOP
BUILD=${BUILD:-$TOP/build}
ROOT=${ROOT:-$BUILD/root}
export BUILD ROOT

# The arbitrary user ID that OpenShift would assign: no passwd entry.
RUN_UID=${RUN_UID:-1000700000}
RUN_GID=0
export RUN_UID RUN_GID

# A system account for peers that need a named user (Dovecot, MariaDB).
PEER_USER=${PEER_USER:-mailpeer}

fail() {
	printf '%s\n' "$*" >&2
	return 1
}

# as_run_uid CMD... - run CMD as OpenShift's restricted SCC would: the
# random UID, group 0, no supplementary groups, no capabilities at all,
# no_new_privs.
as_run_uid() {
	setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups \
		--inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
}

# suite_workdir NAME - create $WORK for this suite (call in setup_file).
suite_workdir() {
	WORK=${TMPDIR:-/tmp}/pfu-test-$1
	rm -rf "$WORK"
	mkdir -p "$WORK"
	chmod 755 "$WORK"
	export WORK
}

suite_cleanup() {
	[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}

# ensure_peer_user - the named account that Dovecot and MariaDB run as.
ensure_peer_user() {
	getent passwd "$PEER_USER" >/dev/null ||
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$PEER_USER"
}

# wait_until TIMEOUT DESCRIPTION CMD... - poll CMD every 0.1 s until it
# succeeds; fail with DESCRIPTION after TIMEOUT seconds. If WATCH_PID is
# set and that process has died, fail at once instead of waiting.
wait_until() {
	local timeout=$1 what=$2 deadline
	shift 2
	deadline=$(($(date +%s) + timeout))
	while ! "$@" >/dev/null 2>&1; do
		if [ -n "${WATCH_PID:-}" ] && ! kill -0 "$WATCH_PID" 2>/dev/null; then
			fail "gave up waiting for $what: process $WATCH_PID died"
			return 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			fail "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.1
	done
}

# podman_running CTR - the podman container CTR is running.
podman_running() {
	[ "$(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]
}

# podman_wait CTR TIMEOUT WHAT CMD... - poll CMD every 0.2 s until it
# succeeds; fail after TIMEOUT seconds, or at once when CTR stopped
# running, with the end of its log.
podman_wait() {
	local ctr=$1 timeout=$2 what=$3 deadline
	shift 3
	deadline=$(($(date +%s) + timeout))
	until "$@" >/dev/null 2>&1; do
		if ! podman_running "$ctr"; then
			podman logs --tail 30 "$ctr" >&2 2>&1 || true
			fail "gave up waiting for $what: container $ctr is not running"
			return 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			podman logs --tail 30 "$ctr" >&2 2>&1 || true
			fail "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

# port_open PORT - something listens on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port_closed() {
	! port_open "$1"
}

# ports_free PORT... - fail when anything already listens on one of them
# (a leftover from an earlier run would silently take part in the test:
# Postfix listeners of the same UID share ports with SO_REUSEPORT).
ports_free() {
	local p
	for p in "$@"; do
		port_closed "$p" || fail "port $p is already in use" || return 1
	done
}

# smtp_banner PORT - the first line an SMTP server sends.
smtp_banner() {
	timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=4)
print(s.makefile().readline().strip())' "$1"
}

# mailtool ARGS... - the project's SMTP/IMAP client (tests/lib/mailtool.py).
mailtool() {
	python3 "$TOP/tests/lib/mailtool.py" "$@"
}

# count_lines FILE PATTERN - number of lines matching an extended regexp.
count_lines() {
	grep -cE "$2" "$1" 2>/dev/null || true
}

# make_cert DIR [CN] - a self-signed certificate as a Kubernetes TLS Secret
# lays it out: DIR/tls.crt and DIR/tls.key.
make_cert() {
	local dir=$1 cn=${2:-mx.example.test}
	mkdir -p "$dir"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$cn" \
		-addext "subjectAltName=DNS:$cn" \
		-keyout "$dir/tls.key" -out "$dir/tls.crt" >/dev/null 2>&1
	chmod 644 "$dir/tls.crt"
	chmod 640 "$dir/tls.key"
}

# smtp_sink_start DIR PORT - Debian's smtp-sink on 127.0.0.1:PORT as the
# peer user, dumping every message into DIR (one file per transaction).
smtp_sink_start() {
	local dir=$1 port=$2
	ensure_peer_user
	mkdir -p "$dir"
	chown "$PEER_USER:" "$dir"
	runuser -u "$PEER_USER" -- /usr/sbin/smtp-sink -d "$dir/%M." \
		"127.0.0.1:$port" 100 >"$dir.log" 2>&1 &
	echo $! >"$dir.pid"
	wait_until 10 "smtp-sink on $port" port_open "$port"
}

smtp_sink_stop() {
	local pid
	pid=$(cat "$1.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || true
}
