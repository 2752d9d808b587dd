# tests/lib/split.bash - the split topology under podman for tests/split.bats,
# driven through container/split (what "make split-up" runs).
#
# sp_up                    container/split up with the suite's names, ports
#                          and settings (output in $WORK/split-up.out)
# sp_edge N [VAR=VALUE...] (re)create edge pod N with those settings
#                          (SPLIT_PEER_PORT, SPLIT_EDGE_TLS, SPLIT_LOG)
# sp_down                  remove every container and volume of the suite
# sp_ctr ROLE              the container name of ROLE (log, queue, edge1...)
# sp_running CTR           CTR is running
# sp_wait CTR T WHAT CMD.. poll CMD; fail after T seconds, or at once when
#                          CTR stopped (with the end of its log)
# sp_log                   the shared log file (the log volume's maillog)
# sp_log_lines             its number of lines now
# sp_log_since N           its lines after line N
# sp_restart CTR           start CTR again after a kill, as the kubelet
#                          would, and wait until postfix-health ready passes
# sp_greets PORT           127.0.0.1:PORT answers 220
# sp_delivered PREFIX      X-Test-Token values starting with PREFIX in
#                          Dovecot's Maildirs, one per delivered copy
#
# Containers and volumes are named $SP_NAME-* (pfsplit-test-*) and carry
# the label pfsplit=$SP_NAME; nothing else is touched. Certificates and
# UIDs are kept in $SP_DIR ($WORK/split).

SP_NAME=${SP_NAME:-pfsplit-test}
SP_IMAGE=${IMAGE:-localhost/postfix-unpriv:latest}
CONTAINERS_CONF=${CONTAINERS_CONF:-$TOP/container/containers.conf}
export CONTAINERS_CONF

sp_env() {
	export SPLIT_NAME="$SP_NAME" SPLIT_IMAGE="$SP_IMAGE" SPLIT_DIR="${SP_DIR:-$WORK/split}" \
		SPLIT_EDGES=2 SPLIT_PORT="$SP_SMTP" SPLIT_BRIDGE_PORT="$SP_BRIDGE" \
		SPLIT_LOG=shared SPLIT_DOMAIN="$SP_DOMAIN" \
		SPLIT_LMTP="inet:127.0.0.1:$SP_LMTP" SPLIT_ENV_FILE="$WORK/split.env"
}

sp_up() {
	sp_env
	"$TOP/container/split" up >"$WORK/split-up.out" 2>&1 ||
		fail "container/split up failed: $(tail -n 30 "$WORK/split-up.out")"
}

sp_edge() {
	local n=$1
	shift
	(
		sp_env
		for a in "$@"; do
			export "${a?}"
		done
		"$TOP/container/split" edge "$n"
	) >"$WORK/split-edge$n.out" 2>&1 ||
		fail "container/split edge $n failed: $(tail -n 20 "$WORK/split-edge$n.out")"
}

sp_down() {
	(
		sp_env
		"$TOP/container/split" down
	) >/dev/null 2>&1 || true
}

sp_ctr() {
	echo "$SP_NAME-$1"
}

sp_running() {
	podman_running "$1"
}

sp_wait() {
	podman_wait "$@"
}

sp_log() {
	echo "$(podman volume inspect -f '{{.Mountpoint}}' "$SP_NAME-log")/maillog"
}

sp_log_lines() {
	wc -l <"$(sp_log)"
}

sp_log_since() {
	tail -n "+$(($1 + 1))" "$(sp_log)"
}

sp_healthy() {
	podman exec "$1" postfix-health ready
}

sp_restart() {
	local ctr=$1
	podman start "$ctr" >/dev/null
	sp_wait "$ctr" 60 "$ctr to be ready again" sp_healthy "$ctr"
}

sp_delivered() {
	mailtool tokens "$WORK/dovecot/mail" | grep "^$1" || true
}

sp_greets() {
	smtp_banner "$1" | grep -q '^220 '
}
