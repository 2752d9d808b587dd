#!/usr/bin/env bats
# The unprivileged mode (issue 4): the built MTA started as OpenShift's
# restricted SCC would start it (random UID without a passwd entry, group
# 0, no supplementary groups, no capabilities, no_new_privs), against real
# peers: smtp-sink, Dovecot (LMTP + IMAP). The whole run is traced with
# strace -f, and the last test checks that no privilege system call was
# made. Ports 20000-20099.

PORT_BASE=20000
SMTP=$((PORT_BASE + 0))
SINK=$((PORT_BASE + 10))
LMTP=$((PORT_BASE + 20))
IMAP=$((PORT_BASE + 21))
AUTH=$((PORT_BASE + 22))
CLOSED=$((PORT_BASE + 30))
DOMAIN=mx.example.test

load lib/common
load lib/postfix
load lib/dovecot

PRIV_CALLS='setuid|setgid|setreuid|setregid|setresuid|setresgid|setgroups|setfsuid|setfsgid|chroot|capset'

setup_file() {
	suite_workdir unprivileged
	PF=$WORK/pf
	DV=$WORK/dovecot
	export PF DV
	! getent passwd "$RUN_UID" >/dev/null ||
		fail "uid $RUN_UID must not have a passwd entry"
	[ -x "$ROOT/usr/sbin/postfix" ] || fail "no build: run make first"
	ports_free "$SMTP" "$SINK" "$LMTP" "$IMAP" "$AUTH"

	smtp_sink_start "$WORK/sink" "$SINK"
	dv_start "$DV" "$LMTP" "$IMAP" "$AUTH" \
		"alice@$DOMAIN:alicepw" "bob@$DOMAIN:bobpw" \
		"postmaster@$DOMAIN:pmpw"

	pf_instance "$PF"
	make_cert "$PF/etc/tls"
	cat >>"$PF/etc/aliases" <<EOF
team alice, bob
cmdtest "|/bin/sh -c 'id -u > $WORK/cmd.out/uid'"
incl :include:$WORK/incl.list
EOF
	mkdir -p "$WORK/cmd.out" "$WORK/pipe.out"
	chown "$RUN_UID:0" "$WORK/cmd.out" "$WORK/pipe.out"
	echo alice >"$WORK/incl.list"
	chown "$PEER_USER:" "$WORK/incl.list"
	printf 'pipe.test pipetest:\n' >"$PF/etc/transport"
	printf '#!/bin/sh\nid -u >%s/uid\ncat >%s/msg\n' "$WORK/pipe.out" \
		"$WORK/pipe.out" >"$WORK/pipe.sh"
	chmod 755 "$WORK/pipe.sh"
	cat >>"$PF/etc/master.cf" <<EOF
pipetest  unix  -       n       n       -       -       pipe
  flags=q argv=$WORK/pipe.sh
EOF
	pf_conf "$PF" "smtp_in_port = $SMTP" \
		"submission_in_port = $((PORT_BASE + 1))" \
		"smtps_in_port = $((PORT_BASE + 2))" \
		"mynetworks = 127.0.0.1/32" \
		"mailbox_lmtp_destination = inet:127.0.0.1:$LMTP" \
		"local_recipient_maps = \$alias_maps, texthash:$PF/etc/users" \
		"transport_maps = texthash:$PF/etc/transport" \
		"relayhost = [127.0.0.1]:$SINK" \
		"default_transport = smtp" \
		"smtpd_tls_security_level = may" \
		"allow_mail_to_commands = alias" \
		"forward_path = \$home/.forward" \
		"maximal_backoff_time = 10s" "minimal_backoff_time = 5s" \
		"queue_run_delay = 5s"
	printf 'alice x\nbob x\npostmaster x\n' >"$PF/etc/users"

	# Trace the whole life of the MTA, as the random UID, from its start.
	install -o "$RUN_UID" -g 0 -m 644 /dev/null "$WORK/strace.out"
	pf_start "$PF" strace -f -qq -o "$WORK/strace.out" \
		-e trace=%creds,chroot
	WATCH_PID=$(pf_master_pid "$PF")
	export WATCH_PID
	wait_until 30 "smtpd on $SMTP" port_open "$SMTP"
}

teardown_file() {
	pf_stop "$WORK/other" 2>/dev/null || true
	pf_stop "$PF" || true
	dv_stop "$DV" || true
	smtp_sink_stop "$WORK/sink"
	suite_cleanup
}

@test "the master and every daemon run as the random UID in group 0" {
	run mailtool send --port "$SMTP" --to "alice@$DOMAIN"
	echo "$output"
	[ "$status" -eq 0 ]
	ps -o uid=,gid=,comm= --ppid "$WATCH_PID" >"$WORK/ps.out"
	ps -o uid=,gid=,comm= -p "$WATCH_PID" >>"$WORK/ps.out"
	cat "$WORK/ps.out"
	[ "$(wc -l <"$WORK/ps.out")" -ge 4 ]
	if awk -v u="$RUN_UID" '$1 != u || $2 != 0' "$WORK/ps.out" | grep .; then false; fi
	grep -q 'unprivileged mode: all services run as uid 1000700000 gid 0' "$PF/maillog"
}

@test "no program loads another Postfix's shared libraries" {
	local pid maps=0
	for pid in $WATCH_PID $(pgrep -P "$WATCH_PID"); do
		grep -o '/[^ ]*libpostfix-[a-z]*\.so' "/proc/$pid/maps" | sort -u
	done >"$WORK/libs.out" || true
	cat "$WORK/libs.out"
	[ -s "$WORK/libs.out" ]
	if grep -v "^$ROOT/usr/lib/postfix/" "$WORK/libs.out"; then false; fi
}

@test "postfix check passes on a g=u queue owned by the random UID, without warnings" {
	run pf_postfix "$PF" postfix check
	echo "$output"
	[ "$status" -eq 0 ]
	if echo "$output" | grep -E 'warning|fatal'; then false; fi
}

@test "postfix status reports the running master" {
	run pf_postfix "$PF" postfix status
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'is running'
}

@test "relay from mynetworks reaches smtp-sink" {
	run mailtool send --port "$SMTP" --to "someone@remote.test" \
		--subject relay-test
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 30 "the message at smtp-sink" \
		grep -rqs "$token" "$WORK/sink"
}

@test "relay from outside mynetworks is refused (no open relay)" {
	run mailtool send --port "$SMTP" --source 127.0.0.3 \
		--to "someone@remote.test"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == 554* ]]
	echo "$output" | grep -q 'Relay access denied'
	# ...while a local recipient is still accepted from there.
	run mailtool send --port "$SMTP" --source 127.0.0.3 --to "bob@$DOMAIN"
	[ "$status" -eq 0 ]
}

@test "STARTTLS is offered when a certificate is configured" {
	run mailtool ehlo --port "$SMTP"
	echo "$output"
	echo "$output" | grep -qx 'STARTTLS'
	run mailtool send --port "$SMTP" --starttls --to "bob@$DOMAIN"
	[ "$status" -eq 0 ]
}

@test "a local recipient goes over LMTP into Dovecot and is read back over IMAP" {
	run mailtool send --port "$SMTP" --to "alice@$DOMAIN" \
		--subject "lmtp-imap" --body "body-marker-4711"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 30 "delivery to alice" \
		eval "mailtool imap --port $IMAP --user alice@$DOMAIN --password alicepw --tokens | grep -q $token"
	run mailtool imap --port "$IMAP" --user "alice@$DOMAIN" --password alicepw
	echo "$output" | grep -q 'body-marker-4711'
	echo "$output" | grep -q '^Subject: lmtp-imap'
}

@test "local(8) expands an alias as the one UID to two mailboxes" {
	run mailtool send --port "$SMTP" --to "team@$DOMAIN"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 30 "alias delivery to alice and bob" \
		eval "dv_tokens $DV | grep -c $token | grep -qx 2"
}

@test "an alias command runs as the random UID" {
	run mailtool send --port "$SMTP" --to "cmdtest@$DOMAIN"
	[ "$status" -eq 0 ]
	wait_until 30 "the alias command" test -s "$WORK/cmd.out/uid"
	[ "$(cat "$WORK/cmd.out/uid")" = "$RUN_UID" ]
}

@test "pipe(8) without user= runs its command as the random UID" {
	run mailtool send --port "$SMTP" --to "x@pipe.test" --subject pipe-test
	[ "$status" -eq 0 ]
	wait_until 30 "the pipe command" test -s "$WORK/pipe.out/msg"
	[ "$(cat "$WORK/pipe.out/uid")" = "$RUN_UID" ]
	grep -q '^Subject: pipe-test' "$WORK/pipe.out/msg"
}

@test "an :include: file owned by another user is refused with a reason, and kept" {
	run mailtool send --port "$SMTP" --to "incl@$DOMAIN"
	[ "$status" -eq 0 ]
	pf_wait_log "$PF" 30 'needs the rights of uid .* unprivileged mode runs as uid 1000700000 only: deferring'
	pf_wait_log "$PF" 30 'status=deferred .*mail system configuration error'
	[ "$(pf_queue_count "$PF")" -ge 1 ]
	pf_postfix "$PF" postsuper -d ALL deferred
}

@test "sendmail(1) submits as a UID without passwd entry, without -f" {
	printf 'Subject: via-sendmail\n\nfrom sendmail\n' |
		pf_postfix "$PF" sendmail "alice@$DOMAIN"
	wait_until 30 "the sendmail message at alice" \
		eval "mailtool imap --port $IMAP --user alice@$DOMAIN --password alicepw | grep -q '^Subject: via-sendmail'"
	run mailtool imap --port "$IMAP" --user "alice@$DOMAIN" --password alicepw
	echo "$output" | grep -q '^Return-Path: <postfix@mx.example.test>'
}

@test "a recipient in /etc/passwd (nobody) neither kills local(8) nor stalls the transport" {
	printf 'Subject: to-nobody\n\nx\n' |
		pf_postfix "$PF" sendmail -f "alice@$DOMAIN" "nobody@$DOMAIN"
	pf_wait_log "$PF" 30 'not looking for a .forward file of nobody'
	pf_wait_log "$PF" 30 'to=<nobody@mx.example.test>.*status=bounced'
	run mailtool send --port "$SMTP" --to "bob@$DOMAIN" --subject after-nobody
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 30 "delivery after nobody" eval "dv_tokens $DV | grep -q $token"
	if grep -E 'fatal|panic|throttling' "$PF/maillog"; then false; fi
}

@test "a bounce for an unknown local user reaches the sender" {
	printf 'Subject: to-unknown\n\nx\n' |
		pf_postfix "$PF" sendmail -f "bob@$DOMAIN" "nosuchuser@$DOMAIN"
	wait_until 60 "the bounce at bob" \
		eval "mailtool imap --port $IMAP --user bob@$DOMAIN --password bobpw | grep -q 'Undelivered Mail Returned to Sender'"
	run mailtool imap --port "$IMAP" --user "bob@$DOMAIN" --password bobpw
	echo "$output" | grep -q 'nosuchuser@mx.example.test'
}

@test "postqueue -p/-f and postsuper -h/-H/-r/-d work as the random UID" {
	pf_conf "$PF" "transport_maps = texthash:$PF/etc/transport, inline:{stuck.test=smtp:[127.0.0.1]:$CLOSED}"
	pf_postfix "$PF" postfix reload
	run mailtool send --port "$SMTP" --to "x@stuck.test" --subject stuck
	[ "$status" -eq 0 ]
	pf_wait_log "$PF" 30 'to=<x@stuck.test>.*status=deferred'
	id=$(pf_postfix "$PF" postqueue -j | sed -n 's/.*"queue_id": *"\([0-9A-F]*\)".*x@stuck.test.*/\1/p' | head -n1)
	[ -n "$id" ]
	pf_postfix "$PF" postqueue -p | grep -q "$id"
	pf_postfix "$PF" postsuper -h "$id"
	pf_postfix "$PF" postqueue -j | grep "$id" | grep -q '"queue_name": "hold"'
	pf_postfix "$PF" postsuper -H "$id"
	pf_postfix "$PF" postqueue -j | grep "$id" | grep -q '"queue_name": "deferred"'
	pf_postfix "$PF" postsuper -r "$id"
	pf_postfix "$PF" postqueue -f
	pf_postfix "$PF" postsuper -d ALL
	wait_until 30 "an empty queue" eval "[ \$(pf_queue_count $PF) -eq 0 ]"
}

@test "chroot = y in master.cf is ignored with one warning per service" {
	"$ROOT/usr/sbin/postconf" -c "$PF/etc" -F 'showq/unix/chroot=y' 'error/unix/chroot=y'
	pf_postfix "$PF" postfix reload
	pf_wait_log "$PF" 30 'service showq: ignoring chroot = y'
	pf_wait_log "$PF" 30 'service error: ignoring chroot = y'
	[ "$(grep -c 'service showq: ignoring chroot' "$PF/maillog")" -eq 1 ]
	run pf_postfix "$PF" postqueue -p
	[ "$status" -eq 0 ]
	"$ROOT/usr/sbin/postconf" -c "$PF/etc" -F 'showq/unix/chroot=n' 'error/unix/chroot=n'
}

@test "a fatal error before logging is set up is printed on stderr" {
	local other=$WORK/other
	pf_instance "$other"
	# Dovecot's LMTP port: held by another user, so the bind must fail.
	pf_conf "$other" "smtp_in_port = $LMTP" \
		"submission_in_port = $((PORT_BASE + 40))" \
		"smtps_in_port = $((PORT_BASE + 41))"
	run env MAIL_CONFIG="$other/etc" setpriv --reuid="$RUN_UID" --regid=0 \
		--clear-groups --inh-caps=-all --bounding-set=-all \
		--no-new-privs "$ROOT/usr/sbin/postfix" start
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q "master: fatal: bind 127.0.0.1 port $LMTP: Address already in use"
}

@test "postqueue -p lists the queue directly while the mail system is down" {
	local other=$WORK/other
	printf 'Subject: queued-while-down\n\nx\n' |
		MAIL_CONFIG=$other/etc as_run_uid "$ROOT/usr/sbin/sendmail" "x@remote.test"
	run pf_postfix "$other" postqueue -p
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q 'accessing queue directly'
	echo "$output" | grep -q 'x@remote.test'
}

@test "the master refuses to run as root" {
	run env MAIL_CONFIG="$PF/etc" "$ROOT/usr/libexec/postfix/master" -t
	echo "$output"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'must not run as the superuser'
}

@test "postfix reload and stop work; no privilege system call in the whole run" {
	run pf_postfix "$PF" postfix reload
	[ "$status" -eq 0 ]
	pf_stop "$PF"
	wait_until 30 "strace to finish" eval "! pgrep -f 'strace -f -qq -o $WORK/strace.out'"
	[ -s "$WORK/strace.out" ]
	echo "processes traced: $(cut -d' ' -f1 "$WORK/strace.out" | sort -u | wc -l)"
	run grep -E "^[0-9]+ +($PRIV_CALLS)\(" "$WORK/strace.out"
	echo "$output" | head
	[ "$status" -eq 1 ]
	# strace did see the credential queries, so the filter was live.
	grep -qE '^[0-9]+ +(getuid|geteuid|getgid)\(' "$WORK/strace.out"
}
