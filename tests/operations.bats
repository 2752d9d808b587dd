#!/usr/bin/env bats
# Operations (issue 9, docs/operations.md): queue replicas of the image,
# run with podman on loopback under OpenShift's restricted rules, drained
# and restarted without losing mail. Mail goes over LMTP to a real
# Dovecot; every message carries an X-Test-Token, so that "accepted" (the
# tokens that got 250) and "delivered" (the tokens in the Maildirs) are
# compared exactly, duplicates counted. Ports 20500-20599.
#
#   A  20500-20502, hand-off 20503: its LMTP next hop is down (a closed
#      port), so everything it accepts is deferred until it is drained
#   B  20510-20512, hand-off 20513: delivers to Dovecot
#   C  20520-20522, hand-off 20523: a replica with no live peer
#   R1, R2  20530/20540, hand-off 20533/20543: the rolling restart pair

PORT_BASE=20500
A=$PORT_BASE
B=$((PORT_BASE + 10))
C=$((PORT_BASE + 20))
R1=$((PORT_BASE + 30))
R2=$((PORT_BASE + 40))
LMTP=$((PORT_BASE + 90))
IMAP=$((PORT_BASE + 91))
AUTH=$((PORT_BASE + 92))
DEAD=$((PORT_BASE + 99))
MAILDOMAIN=example.test

load lib/common
load lib/dovecot
load lib/container

# Our own label: the container suite's clean-up must not take these.
CT_LABEL=pfu-test=operations

setup_file() {
	suite_workdir operations
	ct_cleanup
	ct_image
	podman run --rm --entrypoint /bin/sh "$CT_IMAGE" -c 'test -x /usr/local/bin/postfix-drain' ||
		fail "$CT_IMAGE has no postfix-drain: rebuild it (make image)"
	ports_free $(seq "$A" $((A + 3))) $(seq "$B" $((B + 3))) \
		$(seq "$C" $((C + 3))) $(seq "$R1" $((R1 + 3))) \
		$(seq "$R2" $((R2 + 3))) "$LMTP" "$IMAP" "$AUTH" "$DEAD"
	dv_start "$WORK/dovecot" "$LMTP" "$IMAP" "$AUTH" \
		"alice@$MAILDOMAIN:alicepw" "bob@$MAILDOMAIN:bobpw"
	UID_A=$(ct_random_uid)
	UID_B=$(ct_random_uid)
	UID_C=$(ct_random_uid)
	export UID_A UID_B UID_C
	mkdir -p "$BUILD/test-results"
	: >"$BUILD/test-results/operations.txt"
}

teardown_file() {
	ct_cleanup
	dv_stop "$WORK/dovecot" || true
	suite_cleanup
}

# replica NAME UID PORT_BASE LMTP_PORT PEERS [OPT...] - a queue replica:
# smtp-in on PORT_BASE (+1, +2 the other listeners), handoff-in on
# PORT_BASE+3, metrics on PORT_BASE+4, mailboxes over LMTP to LMTP_PORT,
# drain peers PEERS.
replica() {
	local name=$1 uid=$2 base=$3 lmtp=$4 peers=$5 env
	shift 5
	mapfile -t env < <(ct_env "$base")
	ct_run "$name" "$uid" "${env[@]}" \
		-e "POSTFIX_handoff_in_port=$((base + 3))" \
		-e "POSTFIX_mydestination=" \
		-e "POSTFIX_virtual_mailbox_domains=$MAILDOMAIN" \
		-e "POSTFIX_virtual_mailbox_maps=inline:{ alice@$MAILDOMAIN=alice, bob@$MAILDOMAIN=bob }" \
		-e "POSTFIX_mailbox_lmtp_destination=inet:127.0.0.1:$lmtp" \
		-e "POSTFIX_queue_run_delay=2s" -e "POSTFIX_minimal_backoff_time=2s" \
		-e "POSTFIX_maximal_backoff_time=4s" -e "POSTFIX_transport_retry_time=2s" \
		-e "POSTFIX_lmtp_connect_timeout=2s" \
		-e "POSTFIX_DRAIN_PEERS=$peers" -e "POSTFIX_DRAIN_TIMEOUT=10" \
		-e "POSTFIX_DRAIN_HANDOFF_TIMEOUT=60" \
		-e "POSTFIX_METRICS_PORT=$((base + 4))" "$@"
	ct_wait_ready "$name" "$base"
}

# metric PORT SAMPLE - the value of SAMPLE (name{labels} as exposed) on
# the metrics endpoint of the replica at PORT_BASE PORT; 0 when absent.
metric() {
	curl -sf --max-time 10 "http://127.0.0.1:$(($1 + 4))/metrics" |
		awk -v s="$2" '$1 == s { v = $2 } END { print v + 0 }'
}

metric_is() {
	[ "$(metric "$1" "$2")" = "$3" ]
}

# queue_count NAME [QUEUE] - messages in NAME's queue (all, or one queue).
queue_count() {
	podman exec "$1" postqueue -j |
		{ if [ -n "${2:-}" ]; then grep -c "\"queue_name\": *\"$2\"" || true; else wc -l; fi; }
}

queue_is() {
	[ "$(queue_count "$1" "${3:-}")" -eq "$2" ]
}

# delivered - the X-Test-Token of every message in Dovecot's Maildirs,
# one line per message file (a duplicate shows twice).
delivered() {
	dv_tokens "$WORK/dovecot"
}

delivered_at_least() {
	[ "$(delivered | wc -l)" -ge "$1" ]
}

# dups - tokens delivered more than once to the same mailbox.
dups() {
	local u
	for u in alice bob; do
		mailtool tokens "$WORK/dovecot/mail/$MAILDOMAIN/$u" | sort | uniq -d
	done | wc -l
}

record() {
	echo "$*" >>"$BUILD/test-results/operations.txt"
	echo "# $*" >&3
}

@test "drain: a replica whose next hop is down hands its queue to the peer; envelope intact, hold kept, nothing lost or doubled" {
	local n=30 id token accepted
	replica ops-b "$UID_B" "$B" "$LMTP" "127.0.0.1:$((A + 3)),127.0.0.1:$((B + 3))"
	replica ops-a "$UID_A" "$A" "$DEAD" "127.0.0.1:$((A + 3)),127.0.0.1:$((B + 3))"
	# Nothing in A can be delivered: every accepted message is deferred.
	mailtool load --port "$A" --from "sender@outside.test" \
		--to "alice@$MAILDOMAIN" --count "$n" --concurrency 3 \
		--prefix drain --out "$WORK/drain.accepted" --no-5xx --max-seconds 60
	# One message to two mailboxes (one envelope, two recipients).
	token=drain-two-rcpt
	mailtool send --port "$A" --from "other@outside.test" \
		--to "alice@$MAILDOMAIN" --to "bob@$MAILDOMAIN" --token "$token"
	echo "$token" >>"$WORK/drain.accepted"
	# And one that an operator put on hold.
	mailtool send --port "$A" --from "held@outside.test" \
		--to "bob@$MAILDOMAIN" --token drain-held
	accepted=$(wc -l <"$WORK/drain.accepted")
	[ "$accepted" -eq $((n + 1)) ]
	ct_wait ops-a 60 "every message deferred in A" queue_is ops-a $((n + 2)) deferred
	id=$(podman exec ops-a postqueue -j | grep '"held@outside.test"' |
		sed 's/.*"queue_id": *"\([^"]*\)".*/\1/')
	[ -n "$id" ]
	podman exec ops-a postsuper -h "$id"
	queue_is ops-a 1 hold
	[ "$(delivered | wc -l)" -eq 0 ]

	# The metrics endpoint tells what postqueue -j tells.
	curl -sf "http://127.0.0.1:$((A + 4))/metrics" >"$WORK/metrics.a"
	cp "$WORK/metrics.a" "$BUILD/test-results/operations-metrics.txt"
	for q in maildrop incoming active deferred hold; do
		[ "$(metric "$A" "postfix_queue_messages{queue=\"$q\"}")" -eq "$(queue_count ops-a "$q")" ]
	done
	[ "$(metric "$A" 'postfix_queue_messages{queue="deferred"}')" -eq $((n + 1)) ]
	# Oldest deferred: the first arrival_time of the deferred queue.
	local first age
	first=$(podman exec ops-a postqueue -j | grep '"queue_name": *"deferred"' |
		sed 's/.*"arrival_time": *\([0-9]*\).*/\1/' | sort -n | head -n 1)
	age=$(metric "$A" 'postfix_queue_oldest_message_age_seconds{queue="deferred"}')
	[ "$age" -ge $(($(date +%s) - first - 5)) ]
	[ "$age" -le $(($(date +%s) - first + 5)) ]
	# Every delivery attempt so far was deferred; smtpd counted the
	# connections (n messages, two more, the greeting of the probes).
	[ "$(metric "$A" 'postfix_deliveries_total{status="sent"}')" -eq 0 ]
	[ "$(metric "$A" 'postfix_deliveries_total{status="deferred"}')" -eq \
		"$(podman logs ops-a 2>&1 | grep -c 'status=deferred')" ]
	[ "$(metric "$A" 'postfix_smtpd_connections_total{service="smtpd"}')" -ge $((n + 2)) ]
	metric_is "$A" postfix_draining 0
	metric_is "$A" postfix_up 1

	run podman exec ops-a postfix-drain
	echo "$output"
	[ "$status" -eq 0 ]

	# A keeps only the held message, and is out of service.
	queue_is ops-a 1
	queue_is ops-a 1 hold
	run podman exec ops-a postfix-health ready
	[ "$status" -ne 0 ]
	[[ "$output" == *draining* ]]
	run mailtool send --port "$A" --to "alice@$MAILDOMAIN" --token drain-late
	[[ "$output" == 45* ]]
	ct_logs_grep ops-a "drain: handed $((n + 1)) of $((n + 1)) messages to the peers"
	ct_logs_grep ops-a "drain done: the queue is empty \(1 held, kept on this volume\)"
	# One "sent" per recipient handed over; the metrics say draining.
	metric_is "$A" 'postfix_deliveries_by_transport_total{status="sent",transport="handoff"}' $((n + 2))
	metric_is "$A" postfix_draining 1
	metric_is "$A" 'postfix_queue_messages{queue="deferred"}' 0
	metric_is "$A" 'postfix_queue_messages{queue="hold"}' 1

	# Everything reached Dovecot through B: each token once per mailbox.
	ct_wait ops-b 60 "$((n + 2)) deliveries through B" delivered_at_least $((n + 2))
	delivered | sort -u >"$WORK/drain.delivered"
	diff <(sort "$WORK/drain.accepted") "$WORK/drain.delivered"
	[ "$(dv_count "$WORK/dovecot" "bob@$MAILDOMAIN")" -eq 1 ]
	[ "$(dv_count "$WORK/dovecot" "alice@$MAILDOMAIN")" -eq $((n + 1)) ]
	[ "$(dups)" -eq 0 ]
	# The envelope as A queued it: the sender (Return-Path), each
	# recipient; B logged the hand-off connections from A.
	[ "$(grep -rl '^Return-Path: <sender@outside.test>' "$WORK/dovecot/mail" | wc -l)" -eq "$n" ]
	grep -rl '^Return-Path: <other@outside.test>' "$WORK/dovecot/mail/$MAILDOMAIN/bob" | grep -q .
	ct_logs_grep ops-b "postfix/handoff-in/smtpd\[[0-9]+\]: connect from"
	queue_is ops-b 0
	# B's counters: every delivery it made, and the hand-off sessions.
	ct_wait ops-b 20 "B's sent counter" metric_is "$B" 'postfix_deliveries_total{status="sent"}' $((n + 2))
	[ "$(metric "$B" 'postfix_smtpd_connections_total{service="handoff-in"}')" -ge 1 ]
	record "drain: queued on A before $((n + 2)) ($((n + 1)) pending, 1 held), handed over $((n + 1)), delivered through B $((n + 2)) deliveries ($((n + 1)) messages), duplicates $(dups), held kept on A 1"

	# Taking mail again.
	podman exec ops-a postfix-drain --resume
	podman exec ops-a postfix-health ready
	podman rm -f -t 5 ops-a >/dev/null
}

@test "no live peer: the queue stays on the volume and the log says so; postfix-drain --orphan then hands it over" {
	local n=5
	# B of the first test is the peer.
	ct_running ops-b
	replica ops-c "$UID_C" "$C" "$DEAD" "127.0.0.1:$((C + 3))"
	mailtool load --port "$C" --to "bob@$MAILDOMAIN" --count "$n" \
		--concurrency 1 --prefix orphan --out "$WORK/orphan.accepted" \
		--no-5xx --max-seconds 60
	[ "$(wc -l <"$WORK/orphan.accepted")" -eq "$n" ]
	ct_wait ops-c 60 "$n deferred in C" queue_is ops-c "$n" deferred
	# SIGTERM: drain finds no peer but itself; Postfix stops; mail stays.
	podman stop -t 90 ops-c >/dev/null
	ct_logs_grep ops-c "drain: no peer of '127.0.0.1:$((C + 3))' answers"
	ct_logs_grep ops-c "drain done: $n message\(s\) stay in the queue on /var/spool/postfix"
	[ "$(podman inspect -f '{{.State.ExitCode}}' ops-c)" -eq 0 ]

	# The replica is gone for good: a one-shot container on its volumes
	# (same UID, as a StatefulSet's pods have) hands the queue to B.
	CT_VOLUMES=ops-c ct_run ops-c-orphan "$UID_C" \
		-e "POSTFIX_myhostname=$DOMAIN" -e "POSTFIX_mydestination=" \
		-e "POSTFIX_DRAIN_PEERS=127.0.0.1:$((B + 3))" \
		-e "POSTFIX_DRAIN_HANDOFF_TIMEOUT=60" -- postfix-drain --orphan
	wait_until 90 "the orphan drain to end" eval '! ct_running ops-c-orphan'
	podman logs ops-c-orphan 2>&1 | tail -n 5
	[ "$(podman inspect -f '{{.State.ExitCode}}' ops-c-orphan)" -eq 0 ]
	ct_logs_grep ops-c-orphan "drain: orphaned queue: $n pending, 0 held"
	ct_logs_grep ops-c-orphan "orphaned queue drained: the queue is empty"
	wait_until 60 "the orphaned messages delivered through B" \
		eval "[ \$(delivered | grep -c '^orphan-') -ge $n ]"
	diff <(sort "$WORK/orphan.accepted") <(delivered | grep '^orphan-' | sort)
	record "orphan: kept on the volume at stop $n, handed over by --orphan $n, delivered $n, duplicates $(delivered | grep '^orphan-' | sort | uniq -d | wc -l)"
	podman rm -f -t 5 ops-c ops-c-orphan ops-b >/dev/null
}

@test "rolling restart: each replica stopped (SIGTERM: drain) and started in turn under a bounded load; no 5xx, accepted = delivered" {
	local peers="127.0.0.1:$((R1 + 3)),127.0.0.1:$((R2 + 3))" before accepted got
	before=$(delivered | wc -l)
	replica ops-r1 "$(ct_random_uid)" "$R1" "$LMTP" "$peers"
	replica ops-r2 "$(ct_random_uid)" "$R2" "$LMTP" "$peers"
	# Two clients, one per replica (a Service spreads them), about 3
	# messages a second each for at most 120 s.
	mailtool load --port "$R1" --to "alice@$MAILDOMAIN" --count 240 \
		--concurrency 2 --pace 0.6 --max-seconds 120 --prefix roll1 \
		--out "$WORK/roll1.accepted" --no-5xx --timeout 30 >"$WORK/roll1.out" 2>&1 &
	local l1=$!
	mailtool load --port "$R2" --to "bob@$MAILDOMAIN" --count 240 \
		--concurrency 2 --pace 0.6 --max-seconds 120 --prefix roll2 \
		--out "$WORK/roll2.accepted" --no-5xx --timeout 30 >"$WORK/roll2.out" 2>&1 &
	local l2=$!
	wait_until 60 "deliveries under load" eval "[ \$(delivered | wc -l) -ge $((before + 20)) ]"
	for r in ops-r1 ops-r2; do
		podman stop -t 120 "$r" >/dev/null
		ct_logs_grep "$r" "drain done: the queue is empty"
		[ "$(podman inspect -f '{{.State.ExitCode}}' "$r")" -eq 0 ]
		podman start "$r" >/dev/null
		case $r in
		ops-r1) ct_wait_ready "$r" "$R1" ;;
		*) ct_wait_ready "$r" "$R2" ;;
		esac
	done
	wait "$l1"
	wait "$l2"
	cat "$WORK/roll1.out" "$WORK/roll2.out"
	cat "$WORK/roll1.accepted" "$WORK/roll2.accepted" | sort >"$WORK/roll.accepted"
	accepted=$(wc -l <"$WORK/roll.accepted")
	[ "$accepted" -gt 100 ]
	wait_until 120 "every accepted message delivered" \
		eval "[ \$(delivered | grep -c '^roll') -ge $accepted ]"
	delivered | grep '^roll' | sort >"$WORK/roll.delivered"
	got=$(wc -l <"$WORK/roll.delivered")
	diff "$WORK/roll.accepted" <(sort -u "$WORK/roll.delivered")
	[ "$(uniq -d "$WORK/roll.delivered" | wc -l)" -eq 0 ]
	[ "$got" -eq "$accepted" ]
	record "rolling restart: $(head -n 1 "$WORK/roll1.out") (R1); $(head -n 1 "$WORK/roll2.out") (R2); accepted $accepted, delivered $got, duplicates 0, 5xx 0"
}
