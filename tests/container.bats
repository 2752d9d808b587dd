#!/usr/bin/env bats
# The container image (issue 6, docs/container.md): built with "make image"
# when missing, run with podman as OpenShift's restricted SCC would run it
# (a random UID in group 0, --cap-drop=ALL, --read-only, no-new-privileges;
# writable only: volumes for the queue and data directories, tmpfs /run and
# /tmp), against a real Dovecot (LMTP + IMAP) on loopback. Ports
# 20200-20299; every container listens on 127.0.0.1 only.

PORT_BASE=20200
MAIN=$((PORT_BASE + 0))    # +1 submission-in, +2 smtps-in
PLAIN=$((PORT_BASE + 10))  # the image's default user, no certificate
DEBIAN=$((PORT_BASE + 15)) # stock Debian main.cf/master.cf
LMTP=$((PORT_BASE + 20))
IMAP=$((PORT_BASE + 21))
AUTH=$((PORT_BASE + 22))
DEFER=$((PORT_BASE + 30))
CLOSED=$((PORT_BASE + 39))
ROOTPIPE=$((PORT_BASE + 40))
LATE=$((PORT_BASE + 50))
DOMAIN=mx.example.test

load lib/common
load lib/dovecot
load lib/container

setup_file() {
	suite_workdir container
	command -v podman >/dev/null || fail "podman missing: scripts/install-deps test"
	ct_cleanup
	ports_free "$MAIN" $((MAIN + 1)) $((MAIN + 2)) "$PLAIN" $((PLAIN + 1)) \
		$((PLAIN + 2)) "$DEBIAN" "$LMTP" "$IMAP" "$AUTH" "$DEFER" \
		$((DEFER + 1)) $((DEFER + 2)) "$CLOSED" "$ROOTPIPE" \
		$((ROOTPIPE + 1)) $((ROOTPIPE + 2)) "$LATE" $((LATE + 1)) $((LATE + 2))
	ct_image
	CT_UID=$(ct_random_uid)
	OTHER_UID=$(ct_random_uid)
	export CT_UID OTHER_UID
	DV=$WORK/dovecot
	export DV
	dv_start "$DV" "$LMTP" "$IMAP" "$AUTH" \
		"alice@$DOMAIN:alicepw" "bob@$DOMAIN:bobpw" \
		"carol@$DOMAIN:carolpw" "postmaster@$DOMAIN:pmpw"

	k8s_tls_secret "$WORK/tls" v1
	main_env
	ct_run main "$CT_UID" "${ENV[@]}" -e POSTFIX_delay_warning_time=3h \
		-v "$WORK/tls:/etc/postfix/tls:ro"
	ct_wait_ready main "$MAIN"
}

teardown_file() {
	ct_cleanup
	dv_stop "$DV" || true
	suite_cleanup
}

# main_env [PORT [LMTP_PORT [LISTENERS]]] - ENV: the options of an MTA on
# PORT that delivers to Dovecot, whose users it knows.
main_env() {
	mapfile -t ENV < <(ct_env "${1:-$MAIN}" "${3:-3}")
	ENV+=(-e "POSTFIX_mailbox_lmtp_destination=inet:127.0.0.1:${2:-$LMTP}"
		-e 'POSTFIX_local_recipient_maps=$alias_maps, inline:{alice=x, bob=x, carol=x}')
}

# delivered USER PASSWORD TOKEN - the message with TOKEN is in the INBOX.
delivered() {
	mailtool imap --port "$IMAP" --user "$1@$DOMAIN" --password "$2" \
		--tokens | grep -qx "$3"
}

# send_and_check NAME PORT USER PASSWORD - a mail in over SMTP reaches the
# mailbox over LMTP.
send_and_check() {
	local name=$1 port=$2 user=$3 pw=$4 token
	run mailtool send --port "$port" --to "$user@$DOMAIN" \
		--subject "via-$name"
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	ct_wait "$name" 30 "delivery to $user through $name" \
		delivered "$user" "$pw" "$token"
}

@test "the image: no set-id file, no compiler, numeric USER in group 0, group-0 g=u writable paths" {
	[ "$(podman image inspect -f '{{.Config.User}}' "$CT_IMAGE")" = 10001:0 ]
	# As root with its capabilities, so that find sees every directory.
	run podman run --rm --no-healthcheck --user 0 --network host \
		--entrypoint find "$CT_IMAGE" / -xdev -perm /6000
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# ...and as the running container sees itself.
	run podman exec main sh -c 'find / -xdev -perm /6000 2>/dev/null'
	[ -z "$output" ]
	podman exec main sh -c 'for c in gcc cc c99 make ld as; do ! command -v $c; done'
	podman exec main sh -c '! test -w /etc/passwd && ! test -w /etc/postfix/main.cf && ! test -w /etc/postfix'
	if podman exec main grep -q ":$CT_UID:" /etc/passwd; then false; fi
	run ct_oneshot 0 --entrypoint stat -- -c '%n %g %A' /var/spool/postfix \
		/var/lib/postfix /run /tmp
	echo "$output"
	[ "$(echo "$output" | wc -l)" -eq 4 ]
	echo "$output" | awk '$2 != 0 || substr($3, 2, 3) != substr($3, 5, 3) { bad = 1 } END { exit bad }'
}

@test "the master (PID 1) and every daemon run as the random UID in group 0, without capabilities" {
	run podman exec main cat /proc/1/status
	echo "$output" | grep -E '^(Uid|Gid|CapEff|NoNewPrivs)'
	echo "$output" | grep -qP "^Uid:\t$CT_UID\t$CT_UID\t$CT_UID\t$CT_UID$"
	echo "$output" | grep -qP '^Gid:\t0\t0\t0\t0$'
	echo "$output" | grep -qP '^CapEff:\t0+$'
	echo "$output" | grep -qP '^NoNewPrivs:\t1$'
	[ "$(podman exec main cat /proc/1/cmdline | tr '\0' ' ')" = "/usr/libexec/postfix/master -i " ]
	podman top main user pid args | tee "$WORK/top.out"
	[ "$(wc -l <"$WORK/top.out")" -ge 4 ]
	if awk -v u="$CT_UID" 'NR > 1 && $1 != u' "$WORK/top.out" | grep .; then false; fi
}

@test "a mail in over SMTP goes out over LMTP to Dovecot and is read back over IMAP" {
	send_and_check main "$MAIN" alice alicepw
	run mailtool imap --port "$IMAP" --user "alice@$DOMAIN" --password alicepw
	echo "$output" | grep -q '^Subject: via-main'
	echo "$output" | grep -q "^Received: from client.test"
}

@test "POSTFIX_<parameter> settings are applied to the effective configuration (postconf -n)" {
	run podman exec main postconf -n
	echo "$output"
	echo "$output" | grep -qx "myhostname = $DOMAIN"
	echo "$output" | grep -qx "smtp_in_port = $MAIN"
	echo "$output" | grep -qx 'delay_warning_time = 3h'
	echo "$output" | grep -qx "mailbox_lmtp_destination = inet:127.0.0.1:$LMTP"
	[ "$(podman exec main postconf -h config_directory)" = /run/postfix/etc ]
	# The image defaults stay as they were.
	run podman exec main grep -E '^(myhostname|delay_warning_time)' /etc/postfix/main.cf
	[ "$status" -eq 1 ]
}

@test "the usual commands are on PATH; sendmail submits without a set-gid postdrop" {
	run podman exec main sh -c 'for c in postfix postconf postqueue postsuper sendmail mailq newaliases postmap postalias postcat; do command -v $c || exit 1; done'
	echo "$output"
	[ "$status" -eq 0 ]
	podman exec main sh -c "printf 'X-Test-Token: sendmail-$CT_UID\nSubject: via-sendmail\n\nx\n' | sendmail -f alice@$DOMAIN bob@$DOMAIN"
	ct_wait main 30 "the sendmail message at bob" delivered bob bobpw "sendmail-$CT_UID"
	run podman exec main mailq
	echo "$output" | grep -q 'Mail queue is empty'
}

@test "logs reach podman logs through postlogd" {
	run podman exec main stat -L -c '%F' /proc/1/fd/1
	[ "$output" = fifo ]
	podman logs main >"$WORK/main.log" 2>&1
	grep -q 'postfix/master\[1\]: daemon started' "$WORK/main.log"
	grep -q "unprivileged mode: all services run as uid $CT_UID gid 0" "$WORK/main.log"
	grep -q 'postfix/smtpd\[[0-9]*\]: connect from' "$WORK/main.log"
	grep -qE "postfix/lmtp\[[0-9]*\]: .*to=<alice@$DOMAIN>.*status=sent" "$WORK/main.log"
}

@test "logs reach stdout also when fd 1 is a pipe that root created (as under Kubernetes)" {
	# podman hands the container pipes owned by its user; the kubelet's
	# runtimes do not. Make one as root in the container, then become the
	# random UID as the restricted SCC would (no capabilities, no_new_privs).
	main_env "$ROOTPIPE"
	ct_volume rootpipe-queue
	ct_volume rootpipe-data
	podman run -d --name rootpipe --label "$CT_LABEL" --no-healthcheck \
		--user 0:0 --read-only --tmpfs /run --tmpfs /tmp --network host \
		-v rootpipe-queue:/var/spool/postfix -v rootpipe-data:/var/lib/postfix \
		"${ENV[@]}" --entrypoint sh "$CT_IMAGE" -c \
		"setpriv --reuid=$CT_UID --regid=0 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs /usr/local/bin/postfix-entrypoint | cat" \
		>"$WORK/rootpipe.run" 2>&1 || fail "$(cat "$WORK/rootpipe.run")"
	ct_wait_ready rootpipe "$ROOTPIPE"
	run podman exec --user "$CT_UID:0" rootpipe sh -c 'pid=$(sed -n "1s/ //gp" /var/spool/postfix/pid/master.pid); stat -c %u /proc/$pid; stat -L -c "%F %u" /proc/$pid/fd/1'
	echo "$output"
	[ "${lines[0]}" = "$CT_UID" ]
	[ "${lines[1]}" = "fifo 0" ]
	ct_wait_log rootpipe 30 "postfix/smtpd\[[0-9]+\]: connect from "
	ct_logs_grep rootpipe "unprivileged mode: all services run as uid $CT_UID gid 0"
	if ct_logs_grep rootpipe 'open logfile|Permission denied'; then false; fi
}

@test "health: live and ready as exec probes and as the podman HEALTHCHECK" {
	podman exec main postfix-health live
	podman exec main postfix-health ready
	podman healthcheck run main
	[ "$(podman inspect -f '{{.State.Health.Status}}' main)" = healthy ]
	# Without a running MTA (a pass-through container) neither holds.
	run ct_oneshot "$CT_UID" -- postfix-health live
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q 'postfix-health: not live'
	run ct_oneshot "$CT_UID" -- postfix-health ready
	[ "$status" -eq 1 ]
}

@test "with the mounted certificate: STARTTLS on smtp-in and submission-in, TLS on smtps-in" {
	run mailtool ehlo --port "$MAIN"
	echo "$output" | grep -qx STARTTLS
	run mailtool ehlo --port $((MAIN + 1))
	echo "$output" | grep -qx STARTTLS
	run mailtool send --port "$MAIN" --starttls --to "bob@$DOMAIN"
	[ "$status" -eq 0 ]
	[ "$(tls_fingerprint "$MAIN")" = "$(cert_fingerprint "$WORK/tls/tls.crt")" ]
	run bash -c "timeout 10 openssl s_client -connect 127.0.0.1:$((MAIN + 2)) </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
	[ "${output#*=}" = "$(cert_fingerprint "$WORK/tls/tls.crt")" ]
	# The Secret's symbolic links are not taken for writable files.
	run ct_logs_grep main 'group or other writable'
	[ "$status" -ne 0 ]
	# tlsmgr has run (TLS was used); it took the root-owned, group-0
	# writable data volume for its own (patch 2015): no redirect warning.
	wait_until 10 "tlsmgr" eval "podman exec main sh -c 'ls /var/lib/postfix' | grep -q prng_exch"
	run ct_logs_grep main 'non-postfix directory'
	[ "$status" -ne 0 ]
}

@test "a renewed certificate reaches new connections within 60 s, without a restart or a dropped session" {
	local old new started pid line
	old=$(cert_fingerprint "$WORK/tls/tls.crt")
	started=$(podman inspect -f '{{.State.StartedAt}}' main)
	pid=$(podman exec main sh -c 'stat -c %Z /proc/1')
	# A session that is open across the renewal.
	exec 5<>"/dev/tcp/127.0.0.1/$MAIN"
	IFS= read -r -t 10 line <&5
	[[ "$line" == 220* ]]
	printf 'EHLO held.test\r\n' >&5
	while IFS= read -r -t 10 line <&5 && [[ "$line" != "250 "* ]]; do :; done
	k8s_tls_secret "$WORK/tls" v2
	new=$(cert_fingerprint "$WORK/tls/tls.crt")
	[ "$old" != "$new" ]
	ct_wait main 60 "the new certificate on a new connection" \
		eval '[ "$(tls_fingerprint '"$MAIN"')" = "'"$new"'" ]'
	ct_wait_log main 30 'postfix-tls-watch: TLS certificate files changed: reloading'
	ct_wait_log main 30 'postfix/master\[1\]: reload -- version'
	# The held session still works and ends normally.
	printf 'NOOP\r\n' >&5
	IFS= read -r -t 10 line <&5
	echo "held session: $line"
	[[ "$line" == "250 "* ]]
	printf 'QUIT\r\n' >&5
	IFS= read -r -t 10 line <&5
	[[ "$line" == "221 "* ]]
	exec 5<&-
	# Same container run, same master.
	[ "$(podman inspect -f '{{.State.StartedAt}}' main)" = "$started" ]
	[ "$(podman exec main sh -c 'stat -c %Z /proc/1')" = "$pid" ]
	run mailtool send --port "$MAIN" --starttls --to "bob@$DOMAIN"
	[ "$status" -eq 0 ]
}

@test "a certificate that appears after the start turns TLS on without a restart" {
	mkdir -p "$WORK/tls-late"
	main_env "$LATE"
	ct_run late "$CT_UID" "${ENV[@]}" -e POSTFIX_TLS_WATCH_INTERVAL=1 \
		-v "$WORK/tls-late:/etc/postfix/tls:ro"
	ct_wait_ready late "$LATE"
	port_closed $((LATE + 1))
	k8s_tls_secret "$WORK/tls-late" v1
	ct_wait_log late 30 'postfix-tls-watch: TLS certificate files changed: TLS is now on'
	ct_wait late 30 "submission-in on $((LATE + 1))" port_open $((LATE + 1))
	run mailtool ehlo --port "$LATE"
	echo "$output" | grep -qx STARTTLS
	[ "$(tls_fingerprint "$LATE")" = "$(cert_fingerprint "$WORK/tls-late/tls.crt")" ]
}

@test "the image's default user (10001) without a certificate: TLS off with a warning, TLS-only listeners disabled; readiness behind a PROXY-protocol balancer" {
	main_env "$PLAIN"
	ct_run plain "" "${ENV[@]}"
	ct_wait_ready plain "$PLAIN"
	podman exec plain cat /proc/1/status | grep -qP '^Uid:\t10001\t10001\t10001\t10001$'
	ct_logs_grep plain 'warning: TLS is off: no certificate and key at /etc/postfix/tls/tls.crt /etc/postfix/tls/tls.key'
	ct_logs_grep plain 'listeners that require TLS are disabled: smtps-in submission-in'
	run mailtool ehlo --port "$PLAIN"
	echo "$output"
	if echo "$output" | grep -qx STARTTLS; then false; fi
	port_closed $((PLAIN + 1))
	port_closed $((PLAIN + 2))
	send_and_check plain "$PLAIN" carol carolpw
	podman exec plain postfix-health ready
	# Behind a load balancer with the PROXY protocol, smtpd greets only
	# after a PROXY header; the readiness probe sends one (type LOCAL).
	podman exec plain postconf -e smtpd_upstream_proxy_protocol=haproxy
	podman exec plain postfix reload
	ct_wait plain 30 "smtpd to wait for a PROXY header" \
		eval "! ct_has_banner $PLAIN"
	podman exec plain postfix-health ready
}

@test "a stock Debian main.cf and master.cf start as another UID: port 25 moved, chroot ignored with warnings" {
	# What a stock main.cf needs here (docs/container.md): myhostname, the
	# LMTP destination, aliases that exist, known recipients; the rest is
	# the suite's loopback-only set-up.
	main_env "$DEBIAN" "$LMTP" 1
	ENV+=(-e "POSTFIX_alias_maps=texthash:/etc/postfix/aliases")
	ct_run debian "$OTHER_UID" "${ENV[@]}" \
		-v /usr/share/postfix/main.cf.debian:/etc/postfix/main.cf:ro \
		-v /usr/share/postfix/master.cf.dist:/etc/postfix/master.cf:ro
	ct_wait_ready debian "$DEBIAN"
	podman exec debian cat /proc/1/status | grep -qP "^Uid:\t$OTHER_UID\t"
	# Debian's smtpd_banner: the mounted main.cf is the one in use.
	ct_banner "$DEBIAN" | grep -q "^220 $DOMAIN ESMTP Postfix (Debian/GNU)"
	ct_wait_log debian 30 'service smtp: ignoring chroot = y'
	ct_logs_grep debian "master.cf service smtp/inet: uid $OTHER_UID cannot bind port 25; it is now smtp-in/inet on port $DEBIAN \(smtp_in_port\)"
	if ct_logs_grep debian 'unused parameter'; then false; fi
	[ "$(podman exec debian postconf -h mailbox_transport)" = 'lmtp:$mailbox_lmtp_destination' ]
	send_and_check debian "$DEBIAN" carol carolpw
	podman exec debian postfix-health ready
}

@test "a missing required setting stops start-up with a message that names it" {
	run ct_oneshot "$CT_UID" -e POSTFIX_inet_interfaces=127.0.0.1 \
		-e POSTFIX_smtp_in_port=$((PORT_BASE + 90)) --
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'postfix entrypoint: required setting myhostname is missing: set POSTFIX_myhostname or myhostname in a mounted main.cf'
	if echo "$output" | grep -q 'starting the Postfix mail system'; then false; fi

	run ct_oneshot "$CT_UID" -e "POSTFIX_myhostname=$DOMAIN" --
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'postfix entrypoint: required setting mailbox_lmtp_destination is missing (mydestination is not empty'

	run ct_oneshot "$CT_UID" -e POSTFIX_ROLE=frontend --
	[ "$status" -ne 0 ]
	echo "$output" | grep -q "unknown POSTFIX_ROLE 'frontend': use one of single, queue, delivery, edge, log, bridge-edge, bridge-queue"

	# /run is not writable (read-only root, no tmpfs on /run).
	run podman run --rm --no-healthcheck --user "$CT_UID:0" --read-only \
		--read-only-tmpfs=false --network host "$CT_IMAGE"
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q '/run must be writable'
}

@test "pass-through: a command instead of the MTA (postconf -n, sh, postqueue -p)" {
	main_env $((PORT_BASE + 91))
	run ct_oneshot "$CT_UID" "${ENV[@]}" -- postconf -n
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -qx "myhostname = $DOMAIN"
	run ct_oneshot "$CT_UID" -- sh -c 'id -u; echo "$MAIL_CONFIG"; ls /run/postfix/etc'
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -qx "$CT_UID"
	echo "$output" | grep -qx /run/postfix/etc
	echo "$output" | grep -qx main.cf
	# Missing settings do not stop a pass-through command, but are named.
	echo "$output" | grep -q 'warning: required setting myhostname is missing'
	run podman exec main postqueue -p
	[ "$status" -eq 0 ]
}

@test "SIGTERM stops the MTA within 10 s with the queue intact; the deferred message is delivered after the next start" {
	local t0 t1 token
	main_env "$DEFER" "$CLOSED"
	ct_run defer "$CT_UID" "${ENV[@]}" \
		-e POSTFIX_queue_run_delay=2s -e POSTFIX_minimal_backoff_time=2s \
		-e POSTFIX_maximal_backoff_time=4s
	ct_wait_ready defer "$DEFER"
	run mailtool send --port "$DEFER" --to "bob@$DOMAIN" --subject deferred
	[ "$status" -eq 0 ]
	token=${output#250 }
	ct_wait_log defer 30 "to=<bob@$DOMAIN>.*status=deferred"
	t0=$(date +%s%N)
	podman stop -t 10 defer
	t1=$(date +%s%N)
	echo "stopped in $(((t1 - t0) / 1000000)) ms"
	[ $(((t1 - t0) / 1000000)) -lt 10000 ]
	# Exit status 0: the master exited on SIGTERM, not killed (137).
	[ "$(podman inspect -f '{{.State.ExitCode}}' defer)" = 0 ]
	# The message is still in the queue (read directly, MTA down).
	run ct_oneshot "$CT_UID" -v defer-queue:/var/spool/postfix \
		-v defer-data:/var/lib/postfix -- postqueue -p
	echo "$output"
	echo "$output" | grep -q "bob@$DOMAIN"
	podman rm -v defer >/dev/null
	main_env "$DEFER"
	CT_VOLUMES=defer ct_run defer2 "$CT_UID" "${ENV[@]}" \
		-e POSTFIX_queue_run_delay=2s -e POSTFIX_minimal_backoff_time=2s \
		-e POSTFIX_maximal_backoff_time=4s
	ct_wait defer2 60 "delivery of the deferred message" \
		delivered bob bobpw "$token"
}

@test "after podman kill -s KILL, a restart on the same volumes is not blocked by stale state, also as another UID" {
	podman kill -s KILL main >/dev/null
	wait_until 30 "main to stop" eval '! ct_running main'
	# What the killed master left behind.
	run ct_oneshot "$CT_UID" -v main-queue:/var/spool/postfix \
		-v main-data:/var/lib/postfix -- sh -c \
		'ls /var/spool/postfix/pid/master.pid /var/spool/postfix/public/pickup /var/spool/postfix/private/smtp /var/lib/postfix/master.lock'
	echo "$output"
	[ "$status" -eq 0 ]
	# The same container again.
	podman start main >/dev/null
	ct_wait_ready main "$MAIN"
	send_and_check main "$MAIN" alice alicepw
	# Killed again, then another UID on the same volumes: the files left
	# by the first cannot even be opened by the second.
	podman kill -s KILL main >/dev/null
	wait_until 30 "main to stop" eval '! ct_running main'
	main_env
	CT_VOLUMES=main ct_run other "$OTHER_UID" "${ENV[@]}"
	ct_wait_ready other "$MAIN"
	ct_logs_grep other "removing [0-9]+ stale lock, cache and socket files that uid $OTHER_UID cannot write \(left by uid $CT_UID\):.* /var/spool/postfix/pid/master.pid"
	send_and_check other "$MAIN" carol carolpw
	podman exec other postfix-health ready
	podman stop -t 10 other >/dev/null
}
