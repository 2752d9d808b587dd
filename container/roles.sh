# shellcheck shell=sh
# roles.sh - the daemon groups of the split topology (docs/split.md),
# sourced after lib.sh by postfix-entrypoint, postfix-health,
# postfix-tls-watch and postfix-bridge (installed as
# /usr/local/lib/postfix-container/roles.sh). POSIX sh, "set -eu".
#
# POSTFIX_ROLE selects what one container runs:
#   single        every daemon group in one master(8) (the default)
#   queue         pickup, cleanup, qmgr, trivial-rewrite, bounce, verify,
#                 flush, showq, anvil, scache, proxymap, tlsmgr, error...:
#                 owns the queue volume
#   delivery      smtp, lmtp, local, virtual, pipe: shares the queue volume
#   edge          smtpd, postscreen, dnsblog, tlsproxy, plus its own
#                 trivial-rewrite and proxymap; reaches the queue's
#                 services through the bridge
#   log           postlogd: writes the shared log file
#   bridge-edge   socat: the edge's sockets of bridged services, forwarded
#                 over TCP (mutual TLS) to bridge-queue
#   bridge-queue  socat: TCP (mutual TLS) to the queue's real sockets
# Each Postfix role runs its own master(8) with the services of
# $PF_ROLES_DIR/services that belong to it.

PF_ROLES_DIR=${PF_ROLES_DIR:-$PF_DEFAULTS/roles}
# shellcheck disable=SC2034 # used by the scripts that source this file
PF_ROLE=${POSTFIX_ROLE:-single}

# pf_role_kind ROLE - "single", "postfix" (runs a master) or "bridge";
# fails for an unknown role.
pf_role_kind() {
	case $1 in
	single) echo single ;;
	queue | delivery | edge | log) echo postfix ;;
	bridge-edge | bridge-queue) echo bridge ;;
	*) return 1 ;;
	esac
}

# shellcheck disable=SC2034
PF_ROLE_NAMES="single, queue, delivery, edge, log, bridge-edge, bridge-queue"

# pf_log_mode - POSTFIX_LOG: "stdout" (every container logs to its own
# standard output) or "shared" (every role logs to the log role's
# postlogd, which writes one file on the shared log volume).
pf_log_mode() {
	case ${POSTFIX_LOG:-stdout} in
	stdout | shared) echo "${POSTFIX_LOG:-stdout}" ;;
	*) pf_die "POSTFIX_LOG must be 'stdout' or 'shared', not '${POSTFIX_LOG:-}'" ;;
	esac
}

# pf_log_file - the file that the log role writes.
pf_log_file() {
	printf '%s\n' "${POSTFIX_LOG_FILE:-/var/log/postfix/maillog}"
}

# pf_bridge_services - one per line: the services that the edge reaches
# over the bridge (POSTFIX_BRIDGE_SERVICES), plus postlog when logging is
# shared.
pf_bridge_services() {
	{
		printf '%s\n' "${POSTFIX_BRIDGE_SERVICES:-cleanup anvil tlsmgr verify flush}" |
			pf_words
		[ "$(pf_log_mode)" != shared ] || echo postlog
	} | awk '!seen[$0]++'
}

# pf_bridge_port SERVICE - its TCP port: POSTFIX_BRIDGE_PORT (10030) plus
# the offset in $PF_ROLES_DIR/bridge; fails for a service not listed.
pf_bridge_port() {
	pf_bp_base=${POSTFIX_BRIDGE_PORT:-10030}
	case $pf_bp_base in
	'' | *[!0-9]*) pf_die "POSTFIX_BRIDGE_PORT must be a port number, not '$pf_bp_base'" ;;
	esac
	pf_bp_off=$(awk -v s="$1" '$1 == s && $2 ~ /^[0-9]+$/ { print $2; exit }' \
		"$PF_ROLES_DIR/bridge" 2>/dev/null)
	[ -n "$pf_bp_off" ] || return 1
	echo $((pf_bp_base + pf_bp_off))
}

# pf_service_class DIR SERVICE TYPE - "public" or "private": where
# master(8) makes the socket of SERVICE/TYPE (master.cf private column);
# fails when master.cf has no such service.
pf_service_class() {
	pf_sc_line=$(pf_pc "$1" -M "$2/$3" 2>/dev/null) || pf_sc_line=
	[ -n "$pf_sc_line" ] || return 1
	# shellcheck disable=SC2086 # split the master.cf fields
	set -- $pf_sc_line
	if [ "$3" = n ]; then echo public; else echo private; fi
}

# pf_role_unwanted DIR ROLE - "service/type" of every master.cf entry in
# DIR that ROLE does not run, one per line: the services table decides;
# postlogd is always listed (pf_role_config places it); in the edge, so
# is every bridged service.
pf_role_unwanted() {
	pf_pc "$1" -M 2>/dev/null | awk -v role="$2" \
		-v bridged=" $(pf_bridge_services | tr '\n' ' ') " '
		FNR == NR {
			if ($0 ~ /^[[:space:]]*(#|$)/) next
			key = $1; $1 = ""; map[key] = " " $0 " "; next
		}
		NF >= 8 {
			svc = $1; type = $2; cmd = $8; sub(/.*\//, "", cmd)
			if (cmd == "postlogd") { print svc "/" type; next }
			if (role == "edge" && index(bridged, " " svc " ")) { print svc "/" type; next }
			if ((cmd "/" svc) in map) r = map[cmd "/" svc]
			else if (cmd in map) r = map[cmd]
			else r = map["*"]
			if (!index(r, " " role " ")) print svc "/" type
		}' "$PF_ROLES_DIR/services" -
}

# pf_role_syslog_name ROLE - the role's default syslog_name: the queue
# keeps "postfix" (its daemons log under their usual names), the others
# are told apart in a shared log: postfix-edge/smtpd, postfix-delivery/lmtp.
pf_role_syslog_name() {
	case $1 in
	single | queue) echo postfix ;;
	*) echo "postfix-$1" ;;
	esac
}

# pf_role_config DIR ROLE - turn the complete configuration rendered in
# DIR into ROLE's: master.cf keeps only the role's services, then the
# logging arrangement and the role's syslog_name (unless
# POSTFIX_syslog_name is set).
pf_role_config() {
	pf_rc_dir=$1
	pf_rc_role=$2
	pf_rc_log=$(pf_log_mode)
	pf_rc_kind=$(pf_role_kind "$pf_rc_role")
	[ "$pf_rc_kind" != single ] || return 0

	if [ "$pf_rc_kind" = postfix ]; then
		pf_rc_full=$(pf_pc "$pf_rc_dir" -M 2>/dev/null)
		pf_rc_drop=$(pf_role_unwanted "$pf_rc_dir" "$pf_rc_role")
		# shellcheck disable=SC2086 # one word per service/type
		[ -z "$pf_rc_drop" ] || pf_edit "$pf_rc_dir" -MX $pf_rc_drop
		# A main.cf parameter that only a removed service used (in its
		# "-o name=$parameter") is now "unused": postconf would warn
		# about it at every call. Drop it from this role's main.cf.
		pf_rc_unused=
		for pf_rc_p in $(pf_pc "$pf_rc_dir" -n 2>&1 >/dev/null |
			sed -n 's/.*unused parameter: \([A-Za-z0-9_]*\)=.*/\1/p' | sort -u); do
			if printf '%s\n' "$pf_rc_full" |
				grep -Eq "\\\$[{(]?$pf_rc_p([^A-Za-z0-9_]|\$)"; then
				pf_rc_unused="$pf_rc_unused $pf_rc_p"
			fi
		done
		# shellcheck disable=SC2086 # parameter names
		[ -z "$pf_rc_unused" ] || pf_edit "$pf_rc_dir" -X $pf_rc_unused
	fi

	# Logging. postlogd writes maillog_file; everybody else sends to the
	# socket public/$postlog_service_name, and a master(8) that cannot
	# reach it writes maillog_file itself: /dev/stdout for every role but
	# the log role, so that nothing is lost while the log role starts.
	pf_rc_postlog=
	pf_rc_service=postlog
	case $pf_rc_role/$pf_rc_log in
	log/*)
		pf_edit "$pf_rc_dir" -e "maillog_file = $(pf_log_file)"
		pf_rc_postlog=yes
		;;
	*/shared)
		pf_edit "$pf_rc_dir" -e "maillog_file = /dev/stdout"
		;;
	delivery/stdout)
		# The queue makes public/postlog in the same directory.
		pf_rc_service=postlog-delivery
		pf_rc_postlog=yes
		;;
	bridge-*/stdout) ;;
	*/stdout) pf_rc_postlog=yes ;;
	esac
	pf_edit "$pf_rc_dir" -e "postlog_service_name = $pf_rc_service"
	if [ -n "$pf_rc_postlog" ]; then
		pf_edit "$pf_rc_dir" -M \
			"$pf_rc_service/unix-dgram = $pf_rc_service unix-dgram n - n - 1 postlogd"
	fi

	# syslog_name, and per-service overrides such as
	# "-o syslog_name=postfix/submission" (postfix-edge/submission).
	if [ -z "${POSTFIX_syslog_name+set}" ]; then
		pf_rc_name=$(pf_role_syslog_name "$pf_rc_role")
		if [ "$pf_rc_name" != postfix ]; then
			pf_edit "$pf_rc_dir" -e "syslog_name = $pf_rc_name"
			pf_pc "$pf_rc_dir" -P 2>/dev/null |
				sed -n 's#^\([^/]*/[^/]*\)/syslog_name = postfix/\(.*\)$#\1 \2#p' |
				while read -r pf_rc_svc pf_rc_sub; do
					pf_edit "$pf_rc_dir" -P "$pf_rc_svc/syslog_name=$pf_rc_name/$pf_rc_sub"
				done
		fi
	fi
}

# pf_role_render DIR ROLE - the effective configuration of ROLE in DIR
# (pf_render, then pf_role_config). Prints the TLS state like pf_render;
# roles without smtpd listeners print "n/a" and get no TLS warnings.
pf_role_render() {
	case $2 in
	single | edge)
		pf_rr_tls=$(pf_render "$1")
		;;
	*)
		pf_rr_tls=$(PF_TLS_SERVER=no pf_render "$1")
		;;
	esac
	pf_role_config "$1" "$2"
	echo "$pf_rr_tls"
}

# pf_event LEVEL MESSAGE... - a message of the container itself (start,
# unclean stop) in the mail log: through postlog(1), so that with
# POSTFIX_LOG=shared it lands in the shared log file, else on standard
# output; on stderr when postlog cannot be run.
pf_event() {
	pf_ev_level=$1
	shift
	pf_ev_tag=$(pf_param "$MAIL_CONFIG" syslog_name 2>/dev/null) || pf_ev_tag=postfix
	# postlog also echoes the message on stderr: not twice. When the log
	# socket is unreachable it writes maillog_file (standard output).
	postlog -t "${pf_ev_tag:-postfix}/entrypoint" -p "$pf_ev_level" "$*" \
		</dev/null 2>/dev/null || pf_say "$pf_ev_level: $*"
}

# pf_role_started ROLE - record this start in $PF_RUN (an emptyDir that
# survives container restarts in a pod; a volume under podman) and log
# it; when the marker of the previous start is still there, that
# container did not stop cleanly (SIGKILL, OOM, node failure): say so.
# pf_role_stopped removes the marker after a clean stop.
pf_role_started() {
	pf_rs_state=$PF_RUN/$1.state
	pf_rs_count=$(sed -n 's/^starts=//p' "$pf_rs_state.count" 2>/dev/null) || pf_rs_count=0
	case $pf_rs_count in '' | *[!0-9]*) pf_rs_count=0 ;; esac
	pf_rs_count=$((pf_rs_count + 1))
	echo "starts=$pf_rs_count" >"$pf_rs_state.count"
	if [ -f "$pf_rs_state" ]; then
		pf_event warn "role $1: the previous container ($(cat "$pf_rs_state")) ended without a clean stop (killed, crashed or out of memory); start $pf_rs_count"
	else
		pf_event info "role $1: starting (start $pf_rs_count, uid $(id -u))"
	fi
	echo "start $pf_rs_count at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$pf_rs_state"
}

pf_role_stopped() {
	rm -f "$PF_RUN/$1.state"
	pf_event info "role $1: stopped cleanly"
}

# pf_log_watch SOCKET PID - (run in the background) with a shared log,
# when SOCKET is made anew (the log role, or the edge's bridge, started
# again), the processes that were connected to the old one log into the
# void: msg_logger(3) connects once and ignores send errors. Then send
# SIGHUP to the master PID (what "postfix reload" does), which connects
# again and has its daemons replaced, so that every process reconnects.
pf_log_watch() {
	pf_lw_seen=$(stat -Lc %i "$1" 2>/dev/null) || pf_lw_seen=
	while sleep "${POSTFIX_LOG_WATCH_INTERVAL:-2}"; do
		kill -0 "$2" 2>/dev/null || return 0
		pf_lw_now=$(stat -Lc %i "$1" 2>/dev/null) || continue
		[ "$pf_lw_now" != "$pf_lw_seen" ] || continue
		if [ -n "$pf_lw_seen" ]; then
			kill -HUP "$2" 2>/dev/null || return 0
			pf_event warn "role $PF_ROLE: the log socket $1 was made anew (the log path started again): reloaded, so that every process reconnects"
		fi
		pf_lw_seen=$pf_lw_now
	done
}

# pf_queue_ready DIR - the queue role has made the queue directories.
pf_queue_ready() {
	for pf_qr_d in incoming active deferred defer bounce trace private public; do
		[ -d "$1/$pf_qr_d" ] || return 1
	done
}

# pf_wait SECONDS CMD... - poll CMD every 0.2 s for at most SECONDS.
pf_wait() {
	pf_w_n=$(($1 * 5))
	shift
	until "$@" >/dev/null 2>&1; do
		pf_w_n=$((pf_w_n - 1))
		[ "$pf_w_n" -gt 0 ] || return 1
		sleep 0.2
	done
}
