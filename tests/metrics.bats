#!/usr/bin/env bats
# postfix-metrics (container/metrics, docs/metrics.md): the built MTA runs
# as the random UID with its log on standard output, which goes through a
# FIFO into "postfix-metrics follow" as in the container; the endpoint is
# "postfix-metrics serve" (socat). Real peers: smtp-sink for deliveries, a
# closed port for deferrals. Awk is mawk, as in the image. Ports
# 20600-20649.

PORT_BASE=20600
SMTP=$((PORT_BASE + 0))
SUB=$((PORT_BASE + 1))
SINK=$((PORT_BASE + 10))
CLOSED=$((PORT_BASE + 20))
METRICS=$((PORT_BASE + 30))
DOMAIN=mx.example.test

load lib/common
load lib/postfix

# The families and their types, as the Helm chart's alert rules use them.
FAMILIES="postfix_up:gauge postfix_draining:gauge
postfix_queue_messages:gauge postfix_queue_bytes:gauge
postfix_queue_oldest_message_age_seconds:gauge
postfix_deliveries_total:counter postfix_deliveries_by_transport_total:counter
postfix_smtpd_connections_total:counter postfix_smtpd_rejects_total:counter
postfix_log_lines_total:counter"

setup_file() {
	suite_workdir metrics
	PF=$WORK/pf
	RUN=$WORK/run
	export PF RUN
	[ -x "$ROOT/usr/sbin/postfix" ] || fail "no build: run make first"
	command -v mawk >/dev/null || fail "no mawk (the image's awk)"
	ports_free "$SMTP" "$SUB" "$((PORT_BASE + 2))" "$SINK" "$CLOSED" "$METRICS"

	# awk is mawk here, as in the image (the host's may be gawk).
	mkdir -p "$WORK/bin"
	ln -s "$(command -v mawk)" "$WORK/bin/awk"
	PF_PATH=$WORK/bin:$ROOT/usr/sbin:$ROOT/usr/bin:$PATH
	export PF_PATH

	smtp_sink_start "$WORK/sink" "$SINK"
	pf_instance "$PF"
	make_cert "$PF/etc/tls"
	printf 'alice x\nbob x\n' >"$PF/etc/users"
	cat >"$PF/etc/transport" <<EOF
relay.example relay:[127.0.0.1]:$SINK
closed.example smtp:[127.0.0.1]:$CLOSED
bounce.example error:5.1.1 no such mailbox here
EOF
	printf '/^X-Metrics-Reject:/ REJECT metrics test\n' >"$PF/etc/header_checks"
	# Deferred mail is retried only when a test asks (postqueue -i), so
	# that the counts stay put.
	pf_conf "$PF" "smtp_in_port = $SMTP" \
		"submission_in_port = $SUB" \
		"smtps_in_port = $((PORT_BASE + 2))" \
		"maillog_file = /dev/stdout" \
		"maillog_file_prefixes = /dev/stdout" \
		"mynetworks = 127.0.0.1/32" \
		"mailbox_lmtp_destination = inet:127.0.0.1:$CLOSED" \
		"local_recipient_maps = \$alias_maps, texthash:$PF/etc/users" \
		"transport_maps = texthash:$PF/etc/transport" \
		"header_checks = regexp:$PF/etc/header_checks" \
		"relayhost = [127.0.0.1]:$SINK" \
		"default_transport = smtp" \
		"minimal_backoff_time = 1h" "maximal_backoff_time = 2h" \
		"queue_run_delay = 1h"

	# The container's log path: master's standard output is a FIFO that
	# the follower reads. tee keeps what the master wrote, to compare.
	mkdir -p "$RUN"
	chown "$RUN_UID:0" "$RUN"
	mkfifo "$RUN/log.fifo"
	chown "$RUN_UID:0" "$RUN/log.fifo"
	(metrics_exec follow) <"$RUN/log.fifo" >"$WORK/follow.out" 2>"$WORK/follow.err" &
	echo $! >"$WORK/follow.pid"
	(MAIL_CONFIG=$PF/etc as_run_uid "$ROOT/usr/sbin/postfix" start-fg 2>"$WORK/start.err" |
		tee "$WORK/raw.log" >"$RUN/log.fifo") &
	wait_until 30 "the master of $PF" pf_running "$PF"
	WATCH_PID=$(pf_master_pid "$PF")
	export WATCH_PID
	wait_until 30 "smtpd on $SMTP" port_open "$SMTP"

	(
		export POSTFIX_METRICS_ADDRESS=127.0.0.1 POSTFIX_METRICS_TIMEOUT=2
		metrics_exec serve "$METRICS"
	) 2>"$WORK/serve.err" &
	echo $! >"$WORK/serve.pid"
	wait_until 10 "the metrics endpoint on $METRICS" port_open "$METRICS"
}

teardown_file() {
	local f pid
	pf_stop "$PF" || true
	for f in "$WORK/serve.pid" "$WORK/follow.pid"; do
		if pid=$(cat "$f" 2>/dev/null); then
			kill "$pid" 2>/dev/null || true
		fi
	done
	smtp_sink_stop "$WORK/sink"
	suite_cleanup
}

# as_metrics ARGS... - postfix-metrics from the source tree, as the random
# UID, with the test instance's configuration and run directory.
as_metrics() {
	MAIL_CONFIG=$PF/etc PF_RUN=${METRICS_RUN:-$RUN} PF_LIB=$TOP/container \
		PATH=$PF_PATH as_run_uid "$TOP/container/metrics" "$@"
}

# metrics_exec ARGS... - the same, replacing the shell: in a subshell
# started with &, $! is then the PID of postfix-metrics (socat) itself.
metrics_exec() {
	export MAIL_CONFIG=$PF/etc PF_RUN=${METRICS_RUN:-$RUN} \
		PF_LIB=$TOP/container PATH=$PF_PATH
	exec setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups \
		--inh-caps=-all --bounding-set=-all --no-new-privs -- \
		"$TOP/container/metrics" "$@"
}

# http REQUEST - send REQUEST (CRLF added) to the endpoint; the response.
http() {
	# shellcheck disable=SC2016 # a script for bash -c
	timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
		printf "%s\r\nHost: 127.0.0.1\r\nUser-Agent: metrics.bats\r\n\r\n" "$2" >&3
		cat <&3' http "$METRICS" "$1"
}

# scrape - the body of GET /metrics, checked to be a 200 response.
scrape() {
	local response
	response=$(http "GET /metrics HTTP/1.0") || return 1
	printf '%s\n' "$response" | head -n 1 | grep -q '^HTTP/1\.0 200 ' ||
		fail "GET /metrics: $(printf '%s\n' "$response" | head -n 1)" || return 1
	printf '%s\n' "$response" | tr -d '\r' | sed '1,/^$/d'
}

# value NAME{LABELS} - that sample's value in a fresh scrape (empty when
# it is not there).
value() {
	scrape | awk -v k="$1" '$1 == k { print $2 }'
}

# log_count ERE - lines of the follower's output matching ERE.
log_count() {
	count_lines "$WORK/follow.out" "$1"
}

# counter_is NAME{LABELS} N - poll until the sample equals N.
counter_is() {
	[ "$(value "$1")" = "$2" ]
}

# queue_json - postqueue -j of the instance.
queue_json() {
	pf_postfix "$PF" postqueue -j
}

# queue_settled N - N messages in the queue, none in incoming or active.
queue_settled() {
	local json
	json=$(queue_json)
	[ "$(printf '%s' "$json" | grep -c '"queue_id"')" -eq "$1" ] &&
		! printf '%s' "$json" | grep -qE '"queue_name": "(incoming|active|maildrop)"'
}

@test "GET /metrics answers 200 in the exposition format, every family typed" {
	response=$(http "GET /metrics HTTP/1.0")
	head=$(printf '%s\n' "$response" | tr -d '\r' | sed '/^$/q')
	body=$(printf '%s\n' "$response" | tr -d '\r' | sed '1,/^$/d')
	echo "$head"
	echo "$body"
	echo "$head" | grep -qx 'HTTP/1.0 200 OK'
	echo "$head" | grep -qx 'Content-Type: text/plain; version=0.0.4; charset=utf-8'
	length=$(echo "$head" | sed -n 's/^Content-Length: //p')
	[ "$length" -eq "$(printf '%s\n' "$body" | wc -c)" ]

	# Every line is a comment or name{labels} value; every sample belongs
	# to the family of the last TYPE line, which has a HELP line.
	printf '%s\n' "$body" | awk '
		/^# HELP [a-z_]+ ./ { help[$3] = 1; next }
		/^# TYPE [a-z_]+ (gauge|counter)$/ {
			if (!($3 in help)) { print "TYPE without HELP: " $0; bad = 1 }
			if ($3 in typed) { print "TYPE twice: " $0; bad = 1 }
			typed[$3] = 1; fam = $3; next }
		/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})? -?[0-9]+(\.[0-9]+)?$/ {
			name = $1; sub(/\{.*/, "", name)
			if (name != fam) { print "sample outside its family: " $0; bad = 1 }
			if ($1 in seen) { print "duplicate: " $0; bad = 1 }
			seen[$1] = 1; next }
		{ print "bad line: " $0; bad = 1 }
		END { exit bad }'
	for f in $FAMILIES; do
		echo "$body" | grep -qx "# TYPE ${f%:*} ${f#*:}"
	done
	[ "$(echo "$body" | grep -c '^# TYPE ')" -eq 10 ]
	for q in maildrop incoming active deferred hold; do
		for m in messages bytes oldest_message_age_seconds; do
			echo "$body" | grep -qE "^postfix_queue_${m}\{queue=\"$q\"\} [0-9]+$"
		done
	done
	for s in sent deferred bounced expired; do
		echo "$body" | grep -qE "^postfix_deliveries_total\{status=\"$s\"\} [0-9]+$"
	done
	echo "$body" | grep -qx 'postfix_up 1'
	echo "$body" | grep -qx 'postfix_draining 0'
}

@test "other paths get 404, a silent client is dropped, draining is reported" {
	run http "GET /other HTTP/1.0"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | head -n 1 | grep -q '^HTTP/1\.0 404 '
	[ "$(echo "$output" | grep -c '^postfix_')" -eq 0 ]
	run http "POST /metrics HTTP/1.0"
	echo "$output" | head -n 1 | grep -q '^HTTP/1\.0 404 '

	# A client that connects and says nothing: closed after the timeout
	# (POSTFIX_METRICS_TIMEOUT=2), no answer, and the endpoint still works.
	# shellcheck disable=SC2016 # a script for bash -c
	run timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; cat <&3' x "$METRICS"
	[ "$status" -eq 0 ]
	[ -z "$output" ]

	touch "$RUN/draining"
	wait_until 10 "postfix_draining 1" counter_is postfix_draining 1
	rm -f "$RUN/draining"
	[ "$(value postfix_draining)" = 0 ]
}

@test "queue gauges equal postqueue -j: deferred and held mail, sizes, oldest age" {
	for i in 1 2 3; do
		mailtool send --port "$SMTP" --to "alice@$DOMAIN" --size $((i * 2000))
	done
	mailtool send --port "$SMTP" --to "x@closed.example" --size 5000
	mailtool send --port "$SMTP" --to "y@closed.example"
	wait_until 30 "5 deferred messages" queue_settled 5
	held=$(queue_json | sed -n 's/.*"queue_id": "\([0-9A-Za-z]*\)".*"x@closed.example".*/\1/p')
	[ -n "$held" ]
	pf_postfix "$PF" postsuper -h "$held"
	# ...and one whose age is at least 2 s, to see the age move.
	first=$(queue_json | sed -n 's/.*"arrival_time": \([0-9]*\),.*/\1/p' | sort -n | head -n 1)
	wait_until 10 "a 2 s old message" eval "[ \$((\$(date +%s) - $first)) -ge 2 ]"

	body=$(scrape)
	now=$(date +%s)
	echo "$body" | grep '^postfix_queue'
	json=$(queue_json)
	echo "$json"
	for q in maildrop incoming active deferred hold; do
		expect=$(printf '%s\n' "$json" | python3 -c '
import json, sys
q = sys.argv[1]
msgs = [json.loads(l) for l in sys.stdin if l.strip()]
msgs = [m for m in msgs if m["queue_name"] == q]
print(len(msgs), sum(m["message_size"] for m in msgs),
      min([m["arrival_time"] for m in msgs], default=0))' "$q")
		# shellcheck disable=SC2086 # count, bytes, oldest arrival
		set -- $expect
		echo "$q: expect $*"
		echo "$body" | grep -qx "postfix_queue_messages{queue=\"$q\"} $1"
		echo "$body" | grep -qx "postfix_queue_bytes{queue=\"$q\"} $2"
		age=$(echo "$body" | sed -n "s/^postfix_queue_oldest_message_age_seconds{queue=\"$q\"} //p")
		if [ "$3" -eq 0 ]; then
			[ "$age" -eq 0 ]
		else
			# now was taken just after the scrape, which takes well under 2 s.
			[ "$age" -ge $((now - $3 - 2)) ] && [ "$age" -le $((now - $3)) ]
		fi
	done
	echo "$body" | grep -qx 'postfix_queue_messages{queue="deferred"} 4'
	echo "$body" | grep -qx 'postfix_queue_messages{queue="hold"} 1'
	[ "$(echo "$body" | sed -n 's/^postfix_queue_oldest_message_age_seconds{queue="deferred"} //p')" -ge 2 ]
}

@test "deliveries: N sent to a real peer, deferred, bounced and expired match the log" {
	sent0=$(value 'postfix_deliveries_total{status="sent"}')
	[ "$sent0" = 0 ]
	for i in 1 2 3; do
		mailtool send --port "$SMTP" --to "bob$i@example.org"
	done
	mailtool send --port "$SMTP" --to "carol@relay.example"
	mailtool send --port "$SMTP" --to "dave@relay.example"
	wait_until 30 "5 messages at smtp-sink" eval "[ \$(ls '$WORK/sink' | wc -l) -ge 5 ]"
	wait_until 10 "5 sent deliveries counted" \
		counter_is 'postfix_deliveries_total{status="sent"}' 5
	body=$(scrape)
	echo "$body" | grep '^postfix_deliveries'
	echo "$body" | grep -qx 'postfix_deliveries_by_transport_total{status="sent",transport="smtp"} 3'
	echo "$body" | grep -qx 'postfix_deliveries_by_transport_total{status="sent",transport="relay"} 2'
	echo "$body" | grep -qx 'postfix_deliveries_by_transport_total{status="deferred",transport="relay"} 0'
	[ "$(log_count 'status=sent')" -eq 5 ]
	# Deferred: the LMTP and closed.example attempts of the test before.
	deferred=$(log_count ', status=deferred ')
	[ "$deferred" -ge 4 ]
	echo "$body" | grep -qx "postfix_deliveries_total{status=\"deferred\"} $deferred"
	echo "$body" | grep -qx "postfix_deliveries_by_transport_total{status=\"deferred\",transport=\"lmtp\"} $(log_count 'postfix/lmtp\[.*status=deferred')"

	# Bounced (the error transport; smtpd would refuse the recipient, so
	# through sendmail), and expired (postsuper -e, then a retry).
	printf 'Subject: bounce\n\nbounce\n' |
		pf_postfix "$PF" sendmail -f sender@client.test nobody@bounce.example
	wait_until 30 "a bounce" counter_is 'postfix_deliveries_total{status="bounced"}' 1
	id=$(queue_json | sed -n 's/.*"queue_name": "deferred", "queue_id": "\([0-9A-Za-z]*\)".*"y@closed.example".*/\1/p')
	[ -n "$id" ]
	pf_postfix "$PF" postsuper -e "$id"
	pf_postfix "$PF" postqueue -i "$id"
	wait_until 30 "an expired message" counter_is 'postfix_deliveries_total{status="expired"}' 1
	# The bounce and the expiry notice go to the sender, at the sink.
	wait_until 30 "7 sent" eval "[ \$(grep -c status=sent '$WORK/follow.out') -ge 7 ]"
	body=$(scrape)
	echo "$body" | grep '^postfix_deliveries'
	grep -E 'status=(bounced|force-expired)' "$WORK/follow.out"
	for s in sent deferred bounced expired; do
		echo "$body" | grep -qx "postfix_deliveries_total{status=\"$s\"} $(log_count ", status=(force-)?${s}[ ,]")"
	done
	echo "$body" | grep -qx 'postfix_deliveries_by_transport_total{status="bounced",transport="error"} 1'
	echo "$body" | grep -qx 'postfix_deliveries_by_transport_total{status="expired",transport="qmgr"} 1'
}

@test "smtpd connections and rejects by service match what the client did" {
	c0=$(value 'postfix_smtpd_connections_total{service="smtpd"}')
	r0=$(value 'postfix_smtpd_rejects_total{service="smtpd"}')
	s0=$(value 'postfix_smtpd_connections_total{service="submission"}')
	# 5 connections: 2 unknown users, 1 relay denied (127.0.0.2 is not in
	# mynetworks), 1 header_checks REJECT (cleanup's "reject: header",
	# not an smtpd reject), 1 EHLO only; 2 more to submission.
	run mailtool send --port "$SMTP" --to "nosuch@$DOMAIN"
	[ "$status" -ne 0 ]
	run mailtool send --port "$SMTP" --to "nosuch2@$DOMAIN"
	[ "$status" -ne 0 ]
	run mailtool send --port "$SMTP" --source 127.0.0.2 --from a@b.example --to x@elsewhere.example
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'Relay access denied'
	run mailtool send --port "$SMTP" --to "alice@$DOMAIN" --header "X-Metrics-Reject: yes"
	[ "$status" -ne 0 ]
	mailtool ehlo --port "$SMTP"
	mailtool ehlo --port "$SUB"
	mailtool ehlo --port "$SUB"
	wait_until 10 "7 more connections" counter_is \
		'postfix_smtpd_connections_total{service="smtpd"}' $((${c0:-0} + 5))
	wait_until 10 "2 submission connections" counter_is \
		'postfix_smtpd_connections_total{service="submission"}' $((${s0:-0} + 2))
	grep 'reject: ' "$WORK/follow.out"
	grep -q 'postfix/cleanup\[.*: reject: header X-Metrics-Reject' "$WORK/follow.out"
	body=$(scrape)
	echo "$body" | grep '^postfix_smtpd'
	echo "$body" | grep -qx "postfix_smtpd_rejects_total{service=\"smtpd\"} $((r0 + 3))"
	echo "$body" | grep -qx 'postfix_smtpd_rejects_total{service="submission"} 0'
	# ...and every count equals the log's.
	echo "$body" | grep -qx "postfix_smtpd_connections_total{service=\"smtpd\"} $(log_count 'postfix/smtpd\[[0-9]+\]: connect from ')"
	echo "$body" | grep -qx "postfix_smtpd_connections_total{service=\"submission\"} $(log_count 'postfix/submission/smtpd\[[0-9]+\]: connect from ')"
	echo "$body" | grep -qx "postfix_smtpd_rejects_total{service=\"smtpd\"} $(log_count 'smtpd\[[0-9]+\]: [0-9A-Za-z]+: reject: [A-Z]+ from ')"
}

@test "an absent, torn or damaged state file gives zero counters; a failed postqueue no queue gauges" {
	METRICS_RUN=$WORK/run2
	mkdir -p "$METRICS_RUN/metrics"
	chown -R "$RUN_UID:0" "$METRICS_RUN"
	state=$METRICS_RUN/metrics/log.prom
	zeros='postfix_deliveries_total{status="sent"} 0
postfix_deliveries_total{status="deferred"} 0
postfix_deliveries_total{status="bounced"} 0
postfix_deliveries_total{status="expired"} 0
postfix_log_lines_total 0'
	for kind in absent torn damaged; do
		case $kind in
		absent) rm -f "$state" ;;
		torn) printf 'postfix_log_lines_total 12\npostfix_deliveries_total{status="sent"} 3\npostfix_smtpd_conn' >"$state" ;;
		damaged) printf '\001\002 garbage\n# EOF\n' >"$state" ;;
		esac
		run as_metrics scrape
		echo "$kind: $output"
		[ "$status" -eq 0 ]
		[ "$(printf '%s\n' "$output" | grep -E '^postfix_(deliveries|log_lines)_total')" = "$zeros" ]
		[ "$(printf '%s\n' "$output" | grep -c '^postfix_smtpd')" -eq 0 ]
		printf '%s\n' "$output" | grep -qx 'postfix_up 1'
		printf '%s\n' "$output" | grep -qx 'postfix_queue_messages{queue="hold"} 1'
	done
	# A complete one is used as it is.
	printf 'postfix_log_lines_total 12\npostfix_smtpd_rejects_total{service="smtpd"} 4\n# EOF\n' >"$state"
	run as_metrics scrape
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" | grep -qx 'postfix_log_lines_total 12'
	printf '%s\n' "$output" | grep -qx 'postfix_smtpd_rejects_total{service="smtpd"} 4'

	# postqueue fails: no queue samples (absent, not a false 0), the rest.
	mkdir -p "$WORK/failbin"
	printf '#!/bin/sh\nexit 1\n' >"$WORK/failbin/postqueue"
	chmod 755 "$WORK/failbin/postqueue"
	run as_run_uid env MAIL_CONFIG="$PF/etc" PF_RUN="$METRICS_RUN" \
		PF_LIB="$TOP/container" PATH="$WORK/failbin:$PF_PATH" \
		"$TOP/container/metrics" scrape
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | grep -c '^postfix_queue')" -eq 0 ]
	printf '%s\n' "$output" | grep -qx '# TYPE postfix_queue_messages gauge'
	printf '%s\n' "$output" | grep -qx 'postfix_log_lines_total 12'
	printf '%s\n' "$output" | grep -q 'warning: postqueue -j failed'
}

@test "follow copies odd input unchanged, at once, and keeps counting" {
	METRICS_RUN=$WORK/run3
	mkdir -p "$METRICS_RUN"
	chown "$RUN_UID:0" "$METRICS_RUN"
	# Long lines, CR, invalid UTF-8, blank lines, no program tag, a
	# delivery line with a 50 kB address, a label with odd characters.
	{
		printf 'Dec  7 19:01:02 host postfix/smtpd[1]: '
		head -c 100000 /dev/zero | tr '\0' x
		printf '\nline with CR\r\n\n\n\377\376 not UTF-8 \302\n'
		printf 'no tag at all\n'
		printf 'Dec  7 19:01:02 host postfix/lmtp[123]: 4ABC: to=<'
		head -c 50000 /dev/zero | tr '\0' y
		printf '>, relay=127.0.0.1[127.0.0.1]:24, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n'
		printf 'Dec  7 19:01:02 host postfix/we"ird\\x/smtpd[9]: connect from a[127.0.0.1]\n'
		printf 'Dec  7 19:01:02 host postfix/handoff/pipe[9]: 4ABD: to=<a@b>, relay=handoff, delay=1, delays=1/0/0/0, dsn=5.3.0, status=bounced (x)\n'
	} >"$WORK/odd.in"
	as_run_uid timeout 20 env PF_RUN="$METRICS_RUN" PF_LIB="$TOP/container" \
		PATH="$PF_PATH" "$TOP/container/metrics" follow <"$WORK/odd.in" >"$WORK/odd.out"
	cmp "$WORK/odd.in" "$WORK/odd.out"
	cat "$METRICS_RUN/metrics/log.prom"
	grep -qx 'postfix_log_lines_total 9' "$METRICS_RUN/metrics/log.prom"
	grep -qx 'postfix_deliveries_by_transport_total{status="sent",transport="lmtp"} 1' "$METRICS_RUN/metrics/log.prom"
	grep -qx 'postfix_deliveries_by_transport_total{status="bounced",transport="handoff"} 1' "$METRICS_RUN/metrics/log.prom"
	grep -qx 'postfix_smtpd_connections_total{service="we_ird_x"} 1' "$METRICS_RUN/metrics/log.prom"
	tail -n 1 "$METRICS_RUN/metrics/log.prom" | grep -qx '# EOF'

	# One line in, one line out, while the writer keeps the pipe open;
	# SIGTERM does not stop it (EOF does).
	mkfifo "$WORK/live.fifo"
	(metrics_exec follow) <"$WORK/live.fifo" >"$WORK/live.out" &
	pid=$!
	exec 4>"$WORK/live.fifo"
	echo 'Dec  7 19:01:02 host postfix/smtpd[1]: connect from x[127.0.0.1]' >&4
	WATCH_PID=$pid wait_until 10 "the line on the follower's output" \
		grep -q 'connect from x' "$WORK/live.out"
	WATCH_PID=$pid wait_until 10 "the count" \
		grep -qx 'postfix_smtpd_connections_total{service="smtpd"} 1' "$METRICS_RUN/metrics/log.prom"
	kill -TERM "$pid"
	echo 'Dec  7 19:01:03 host postfix/submission/smtpd[2]: connect from y[127.0.0.1]' >&4
	WATCH_PID=$pid wait_until 10 "a line after SIGTERM" \
		grep -qx 'postfix_smtpd_connections_total{service="submission"} 1' "$METRICS_RUN/metrics/log.prom"
	exec 4>&-
	wait_until 10 "the follower to end at EOF" eval "! kill -0 $pid"
}

@test "the follower copied every line the master wrote, and postfix_up is 0 after a stop" {
	pf_stop "$PF"
	run as_metrics scrape
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -qx 'postfix_up 0'
	# The queue is read directly while the mail system is down.
	echo "$output" | grep -qx 'postfix_queue_messages{queue="hold"} 1'
	pid=$(cat "$WORK/follow.pid")
	wait_until 10 "the follower to end at EOF" eval "! kill -0 $pid"
	[ ! -s "$WORK/follow.err" ] || cat "$WORK/follow.err"
	[ ! -s "$WORK/follow.err" ]
	wc -l "$WORK/raw.log" "$WORK/follow.out"
	[ "$(wc -l <"$WORK/raw.log")" -gt 50 ]
	cmp "$WORK/raw.log" "$WORK/follow.out"
	grep -qx "postfix_log_lines_total $(wc -l <"$WORK/raw.log")" "$RUN/metrics/log.prom"
}
