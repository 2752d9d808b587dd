# shellcheck shell=sh
# lib.sh - shared by postfix-entrypoint, postfix-tls-watch, postfix-health
# and postfix-bridge (installed as /usr/local/lib/postfix-container/lib.sh;
# roles.sh adds the split topology's roles).
# POSIX sh, sourced by scripts that run with "set -eu".
#
# The effective configuration lives in $MAIL_CONFIG (image default
# /run/postfix/etc), rendered from the image defaults or mounted files in
# /etc/postfix plus POSTFIX_<parameter>=value environment settings. See
# docs/container.md for the contract.

: "${MAIL_CONFIG:=/run/postfix/etc}"
export MAIL_CONFIG
PF_DEFAULTS=${PF_DEFAULTS:-/etc/postfix}
PF_RUN=${PF_RUN:-/run/postfix}
PF_PROG=${PF_PROG:-postfix entrypoint}

pf_say() {
	printf '%s: %s\n' "$PF_PROG" "$*" >&2
}

pf_warn() {
	pf_say "warning: $*"
}

# pf_words - split a Postfix list (commas and/or white space) into lines.
pf_words() {
	awk '{ n = split($0, w, /[,[:space:]]+/)
		for (i = 1; i <= n; i++) if (w[i] != "") print w[i] }'
}

# pf_die MESSAGE - stop with MESSAGE on stderr (and, for the entrypoint,
# in Kubernetes' termination log, so that "kubectl describe pod" shows it).
pf_die() {
	pf_say "$*"
	if [ "${PF_TERMINATION_LOG:-no}" = yes ] && [ -w /dev/termination-log ]; then
		printf '%s: %s\n' "$PF_PROG" "$*" >/dev/termination-log 2>/dev/null || :
	fi
	exit 1
}

# pf_pc DIR ARGS... - postconf on the configuration in DIR.
pf_pc() {
	pf_pc_dir=$1
	shift
	postconf -c "$pf_pc_dir" "$@"
}

# pf_backdate DIR - date main.cf and master.cf in DIR 5 s back: Postfix
# does not trust a main.cf changed within the last second (load_file(3)
# rereads it until it "cools down", up to 2 s per read), and the render
# reads right after each edit, as do the master and its daemons at
# start-up or reload. Nothing else edits these files.
pf_backdate() {
	touch -d "@$(($(date +%s) - 5))" "$1/main.cf" "$1/master.cf"
}

# pf_edit DIR ARGS... - postconf -e/-M/-F/-M# on the configuration in
# DIR, then pf_backdate.
pf_edit() {
	pf_pc "$@"
	pf_backdate "$1"
}

# pf_param DIR NAME - the expanded value of NAME. postconf shows nothing
# for a parameter that Postfix does not know and nothing references (a
# user-defined parameter of conf/main.cf, such as smtp_in_port, set in a
# stock main.cf through the environment): then the value written in
# main.cf, unexpanded.
pf_param() {
	pf_pm_value=$(pf_pc "$1" -xh "$2" 2>/dev/null) || pf_pm_value=
	if [ -z "$pf_pm_value" ]; then
		pf_pm_value=$(pf_raw "$1" "$2")
	fi
	printf '%s\n' "$pf_pm_value"
}

# pf_raw DIR NAME - the last value of NAME in DIR/main.cf as written
# (continuation lines joined), empty when it is not there.
pf_raw() {
	awk -v name="$2" '
		function done() { if (cur == name) value = v }
		/^#/ || /^[[:space:]]*$/ { next }
		/^[[:space:]]/ { if (cur != "") { sub(/^[[:space:]]+/, ""); v = v " " $0 }; next }
		{ done(); cur = $0; sub(/[[:space:]]*=.*/, "", cur)
		  v = $0; sub(/^[^=]*=[[:space:]]*/, "", v) }
		END { done(); sub(/[[:space:]]+$/, "", value); print value }' "$1/main.cf"
}

# pf_env_settings - "name=value" of every POSTFIX_<name> environment
# variable whose name starts with a lower-case letter (Postfix parameter
# names); upper-case names (POSTFIX_ROLE, ...) are settings of the
# container itself. One per line, sorted by name; a value that spans lines
# (a YAML block in a Kubernetes manifest) is joined with spaces, as main.cf
# continuation lines would be.
pf_env_names() {
	env | sed -n 's/^POSTFIX_\([a-z][A-Za-z0-9_]*\)=.*/\1/p' | sort -u
}

# pf_apply_env DIR - apply the POSTFIX_<name> settings with postconf -e.
pf_apply_env() {
	pf_ae_dir=$1
	set --
	for pf_ae_name in $(pf_env_names); do
		# The name matched [a-z][A-Za-z0-9_]*, so eval is safe.
		pf_ae_set=
		eval "pf_ae_set=\${POSTFIX_$pf_ae_name+set}"
		[ "$pf_ae_set" = set ] || continue
		eval "pf_ae_value=\$POSTFIX_$pf_ae_name"
		pf_ae_value=$(printf '%s' "$pf_ae_value" | tr '\n' ' ')
		set -- "$@" "$pf_ae_name = $pf_ae_value"
	done
	[ $# -eq 0 ] || pf_edit "$pf_ae_dir" -e "$@"
}

# pf_service_port DIR SERVICE - the TCP port of a master.cf inet service
# name ([host:]port, with port a number or a name in known_tcp_ports or
# /etc/services); empty when it cannot be resolved.
pf_service_port() {
	pf_sp_name=${2##*:}
	case $pf_sp_name in
	'' | *[!0-9]*) ;;
	*)
		printf '%s\n' "$pf_sp_name"
		return 0
		;;
	esac
	pf_sp_port=$(pf_param "$1" known_tcp_ports | pf_words |
		awk -F= -v s="$pf_sp_name" 'NF > 1 {
			for (i = 1; i < NF; i++) if ($i == s) { print $NF; exit } }')
	if [ -z "$pf_sp_port" ] && [ -r /etc/services ]; then
		pf_sp_port=$(awk -v s="$pf_sp_name" '$2 ~ /\/tcp$/ {
			for (i = 1; i <= NF && $i !~ /^#/; i++)
				if (i != 2 && $i == s) { sub("/tcp", "", $2); print $2; exit } }' \
			/etc/services)
	fi
	case $pf_sp_port in
	'' | *[!0-9]*) ;;
	*) printf '%s\n' "$pf_sp_port" ;;
	esac
}

# pf_inet_services DIR - master.cf inet services: "name command" lines.
pf_inet_services() {
	pf_pc "$1" -M 2>/dev/null | awk '$2 == "inet" { print $1, $8 }'
}

# pf_can_bind_low PORT - this process may bind PORT (unprivileged port
# range, or CAP_NET_BIND_SERVICE, bit 10 of the effective capabilities).
pf_can_bind_low() {
	pf_cb_start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null) ||
		pf_cb_start=1024
	[ "$1" -lt "$pf_cb_start" ] || return 0
	pf_cb_caps=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
	[ $((0x${pf_cb_caps:-0} >> 10 & 1)) -eq 1 ]
}

# pf_remap_ports DIR - a listener on 25, 587 or 465 (a stock master.cf)
# that this UID cannot bind becomes the smtp-in, submission-in or smtps-in
# listener of conf/main.cf: port smtp_in_port, submission_in_port or
# smtps_in_port (2525, 2587, 2465 unless set), named in known_tcp_ports.
# The Kubernetes Service maps the well-known ports to those.
pf_remap_ports() {
	pf_rp_dir=$1
	for pf_rp_svc in $(pf_inet_services "$pf_rp_dir" | cut -d' ' -f1); do
		pf_rp_port=$(pf_service_port "$pf_rp_dir" "$pf_rp_svc")
		[ -n "$pf_rp_port" ] || continue
		pf_can_bind_low "$pf_rp_port" && continue
		case $pf_rp_port in
		25) pf_rp_name=smtp-in pf_rp_default=2525 ;;
		587) pf_rp_name=submission-in pf_rp_default=2587 ;;
		465) pf_rp_name=smtps-in pf_rp_default=2465 ;;
		*)
			pf_warn "master.cf service $pf_rp_svc/inet uses port $pf_rp_port, which uid $(id -u) cannot bind: use a port above 1023"
			continue
			;;
		esac
		pf_rp_param=$(echo "$pf_rp_name" | tr - _)_port
		pf_rp_host=
		case $pf_rp_svc in
		*:*) pf_rp_host=${pf_rp_svc%:*}: ;;
		esac
		if [ -n "$(pf_pc "$pf_rp_dir" -M "$pf_rp_host$pf_rp_name/inet" 2>/dev/null)" ]; then
			pf_warn "master.cf service $pf_rp_svc/inet uses port $pf_rp_port, which uid $(id -u) cannot bind, and $pf_rp_host$pf_rp_name/inet exists already: not moving it"
			continue
		fi
		pf_rp_new=$(pf_param "$pf_rp_dir" "$pf_rp_param")
		if [ -z "$pf_rp_new" ]; then
			pf_rp_new=$pf_rp_default
			pf_edit "$pf_rp_dir" -e "$pf_rp_param = $pf_rp_new"
		fi
		pf_rp_known=$(pf_pc "$pf_rp_dir" -h known_tcp_ports 2>/dev/null)
		case ",$(echo "$pf_rp_known" | tr -d ' \t')," in
		*",$pf_rp_name="*) ;;
		*) pf_edit "$pf_rp_dir" -e "known_tcp_ports = ${pf_rp_known:+$pf_rp_known, }$pf_rp_name=\$$pf_rp_param" ;;
		esac
		pf_edit "$pf_rp_dir" -F -e "$pf_rp_svc/inet/service=$pf_rp_host$pf_rp_name"
		pf_warn "master.cf service $pf_rp_svc/inet: uid $(id -u) cannot bind port $pf_rp_port; it is now $pf_rp_host$pf_rp_name/inet on port $pf_rp_new ($pf_rp_param)"
	done
}

# pf_tls_files DIR - the server certificate and key files that the
# configuration names (smtpd_tls_chain_files, else smtpd_tls_cert_file and
# smtpd_tls_key_file), one per line.
pf_tls_files() {
	pf_tf_list=$(pf_param "$1" smtpd_tls_chain_files)
	if [ -z "$pf_tf_list" ]; then
		pf_tf_list="$(pf_param "$1" smtpd_tls_cert_file) $(pf_param "$1" smtpd_tls_key_file)"
	fi
	printf '%s\n' "$pf_tf_list" | pf_words | sort -u
}

# pf_tls_state DIR - "on" when every named file exists, "unreadable"
# when one exists but this UID cannot read it, else "off".
pf_tls_state() {
	pf_ts_files=$(pf_tls_files "$1")
	[ -n "$pf_ts_files" ] || {
		echo off
		return 0
	}
	for pf_ts_f in $pf_ts_files; do
		[ -f "$pf_ts_f" ] || {
			echo off
			return 0
		}
	done
	for pf_ts_f in $pf_ts_files; do
		[ -r "$pf_ts_f" ] || {
			echo unreadable
			return 0
		}
	done
	echo on
}

# pf_tls_fingerprint DIR - changes whenever a certificate or key file
# changes, appears or disappears (Kubernetes swaps a symlink).
pf_tls_fingerprint() {
	for pf_fp_f in $(pf_tls_files "$1"); do
		if [ -r "$pf_fp_f" ]; then
			printf '%s %s\n' "$pf_fp_f" "$(cksum <"$pf_fp_f")"
		else
			printf '%s missing\n' "$pf_fp_f"
		fi
	done | cksum
}

# pf_tls_off DIR - no certificate: no STARTTLS, and the listeners that
# require TLS (wrapper mode or security level encrypt) are commented out.
pf_tls_off() {
	pf_to_dir=$1
	pf_to_svcs=$(pf_pc "$pf_to_dir" -P 2>/dev/null | sed -n \
		-e 's#^\([^/]*\)/inet/smtpd_tls_wrappermode = yes$#\1#p' \
		-e 's#^\([^/]*\)/inet/smtpd_tls_security_level = encrypt$#\1#p' \
		-e 's#^\([^/]*\)/inet/smtpd_enforce_tls = yes$#\1#p' | sort -u)
	pf_edit "$pf_to_dir" -e "smtpd_tls_security_level = none"
	for pf_to_svc in $pf_to_svcs; do
		pf_edit "$pf_to_dir" -M# "$pf_to_svc/inet"
	done
	pf_to_files=$(pf_tls_files "$pf_to_dir" | tr '\n' ' ')
	pf_to_svcs=$(printf '%s' "$pf_to_svcs" | tr '\n' ' ')
	pf_warn "TLS is off: no certificate and key at ${pf_to_files:-(none configured) }(mount a" \
		"Kubernetes TLS Secret on $PF_DEFAULTS/tls): STARTTLS is not" \
		"offered${pf_to_svcs:+, and the listeners that require TLS are disabled: $pf_to_svcs}"
}

# pf_handoff DIR - the hand-off between replicas (postfix-drain,
# docs/operations.md). The handoff-in listener runs only where drain peers
# are set (elsewhere its port would be one more to expose, and to clash
# with other instances on one host). With the bridge certificates
# mounted, the peers prove themselves with them: the handoff client
# presents the certificate over TLS (also in the split topology's
# delivery role, which runs that client), handoff-in trusts the bridge CA.
pf_handoff() {
	pf_ho_dir=$1
	pf_ho_in=
	[ -z "$(pf_pc "$pf_ho_dir" -M handoff-in/inet 2>/dev/null)" ] || pf_ho_in=yes
	if [ -z "${POSTFIX_DRAIN_PEERS:-}" ] && [ -n "$pf_ho_in" ]; then
		pf_edit "$pf_ho_dir" -M# handoff-in/inet
		pf_ho_in=
	fi
	pf_ho_tls=${POSTFIX_BRIDGE_TLS_DIR:-$PF_DEFAULTS/bridge-tls}
	for pf_ho_f in tls.crt tls.key ca.crt; do
		[ -r "$pf_ho_tls/$pf_ho_f" ] && continue
		# No bridge certificate. A role without server TLS (the split
		# topology's queue role runs handoff-in) has no certificate for
		# the listener either: plain SMTP, mynetworks only.
		if [ "${PF_TLS_SERVER:-yes}" = no ] && [ -n "$pf_ho_in" ]; then
			pf_edit "$pf_ho_dir" -P "handoff-in/inet/smtpd_tls_security_level=none"
		fi
		return 0
	done
	pf_edit "$pf_ho_dir" -e "handoff_tls_security_level = encrypt" \
		"handoff_tls_chain_files = $pf_ho_tls/tls.key, $pf_ho_tls/tls.crt" \
		"handoff_tls_CAfile = $pf_ho_tls/ca.crt"
	# handoff-in shows the bridge certificate, and asks for one.
	if [ -n "$pf_ho_in" ]; then
		pf_edit "$pf_ho_dir" -P \
			"handoff-in/inet/smtpd_tls_chain_files=$pf_ho_tls/tls.key,$pf_ho_tls/tls.crt" \
			"handoff-in/inet/smtpd_tls_security_level=may"
	fi
}

# pf_render DIR - the effective configuration, in this order: the image
# defaults or mounted main.cf/master.cf from $PF_DEFAULTS, POSTFIX_<name>
# environment settings, then what the container needs: logging to
# stdout, LMTP for mailboxes, unprivileged ports, TLS only with a
# certificate. Prints the TLS state (on/off/unreadable) on stdout; with
# PF_TLS_SERVER=no (roles without listeners) "n/a", and no TLS changes.
pf_render() {
	pf_r_dir=$1
	mkdir -p "$pf_r_dir"
	for pf_r_f in main.cf master.cf; do
		[ -r "$PF_DEFAULTS/$pf_r_f" ] ||
			pf_die "$PF_DEFAULTS/$pf_r_f is missing or unreadable"
		cp "$PF_DEFAULTS/$pf_r_f" "$pf_r_dir/$pf_r_f.tmp"
		chmod 644 "$pf_r_dir/$pf_r_f.tmp"
		mv -f "$pf_r_dir/$pf_r_f.tmp" "$pf_r_dir/$pf_r_f"
	done
	pf_backdate "$pf_r_dir"
	pf_apply_env "$pf_r_dir"

	# No syslog daemon in a container: log to stdout through postlogd.
	if [ -z "$(pf_param "$pf_r_dir" maillog_file)" ] && [ ! -S /dev/log ]; then
		pf_edit "$pf_r_dir" -e "maillog_file = /dev/stdout"
		pf_say "maillog_file was not set and there is no /dev/log: logging to /dev/stdout"
	fi
	if [ -n "$(pf_param "$pf_r_dir" maillog_file)" ] &&
		[ -z "$(pf_pc "$pf_r_dir" -M postlog/unix-dgram 2>/dev/null)" ]; then
		pf_edit "$pf_r_dir" -M "postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd"
		pf_say "added the postlog service to master.cf (maillog_file needs postlogd)"
	fi

	# The unprivileged local(8) cannot write mailbox files: with an LMTP
	# destination and no mailbox_transport (a stock main.cf), use LMTP.
	if [ -n "$(pf_param "$pf_r_dir" mailbox_lmtp_destination)" ] &&
		[ -z "$(pf_pc "$pf_r_dir" -h mailbox_transport 2>/dev/null)" ]; then
		# shellcheck disable=SC2016 # a literal $parameter for main.cf
		pf_edit "$pf_r_dir" -e 'mailbox_transport = lmtp:$mailbox_lmtp_destination'
		# shellcheck disable=SC2016
		pf_say 'mailbox_transport was not set: using lmtp:$mailbox_lmtp_destination'
	fi

	pf_remap_ports "$pf_r_dir"
	pf_handoff "$pf_r_dir"

	# Roles without smtpd listeners (roles.sh) have no server TLS.
	if [ "${PF_TLS_SERVER:-yes}" = no ]; then
		echo n/a
		return 0
	fi
	pf_r_tls=$(pf_tls_state "$pf_r_dir")
	[ "$pf_r_tls" = on ] || pf_tls_off "$pf_r_dir"
	echo "$pf_r_tls"
}
