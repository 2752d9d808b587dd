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
#   SA, SB  split topology (queue pod + one edge pod each, container/split):
#      edge 20550/20570, hand-off 20553/20573 (in the queue pod),
#      bridges 20560-20569/20580-20589; SA's LMTP next hop is down

PORT_BASE=20500
A=$PORT_BASE
B=$((PORT_BASE + 10))
C=$((PORT_BASE + 20))
R1=$((PORT_BASE + 30))
R2=$((PORT_BASE + 40))
SA=$((PORT_BASE + 50))
SB=$((PORT_BASE + 70))
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
		$(seq "$R2" $((R2 + 3))) $(seq "$SA" $((SA + 19))) \
		$(seq "$SB" $((SB + 19))) "$LMTP" "$IMAP" "$AUTH" "$DEAD"
	dv_start "$WORK/dovecot" "$LMTP" "$IMAP" "$AUTH" \
		"alice@$MAILDOMAIN:alicepw" "bob@$MAILDOMAIN:bobpw"
	bridge_certs "$WORK/bridge-tls"
	UID_A=$(ct_random_uid)
	UID_B=$(ct_random_uid)
	UID_C=$(ct_random_uid)
	export UID_A UID_B UID_C
	mkdir -p "$BUILD/test-results"
	: >"$BUILD/test-results/operations.txt"
}

teardown_file() {
	ct_cleanup
	split_pods down
	dv_stop "$WORK/dovecot" || true
	suite_cleanup
}

# bridge_certs DIR - a throwaway CA and one certificate signed by it, laid
# out as the chart's bridge Secret (tls.crt, tls.key, ca.crt), readable by
# any UID in group 0.
bridge_certs() {
	local dir=$1
	mkdir -p "$dir/ca"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 2 -subj "/CN=operations test CA" \
		-keyout "$dir/ca/ca.key" -out "$dir/ca.crt" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=postfix-handoff" -keyout "$dir/tls.key" \
		-out "$dir/tls.csr" 2>/dev/null
	openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" \
		-CAkey "$dir/ca/ca.key" -CAcreateserial -days 2 \
		-out "$dir/tls.crt" 2>/dev/null
	rm -rf "$dir/tls.csr" "$dir/ca"
	chgrp -R 0 "$dir"
	chmod 0750 "$dir"
	chmod 0640 "$dir"/*
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

# split_pod NAME PORT LMTP_PORT PEERS - container/split up: a queue pod
# (log, queue, delivery, bridge-queue) and one edge pod, edge smtpd on
# PORT, hand-off on PORT+3, bridges on PORT+10..., LMTP to LMTP_PORT.
split_pod() {
	local name=$1 port=$2 lmtp=$3 peers=$4
	cat >"$WORK/$name.env" <<-EOF
		POSTFIX_queue_run_delay=2s
		POSTFIX_minimal_backoff_time=2s
		POSTFIX_maximal_backoff_time=4s
		POSTFIX_transport_retry_time=2s
		POSTFIX_lmtp_connect_timeout=2s
		POSTFIX_default_transport=error:5.3.0 test containers relay nowhere
		POSTFIX_relay_transport=error:5.3.0 test containers relay nowhere
		POSTFIX_handoff_in_port=$((port + 3))
		POSTFIX_DRAIN_PEERS=$peers
		POSTFIX_DRAIN_TIMEOUT=10
		POSTFIX_DRAIN_HANDOFF_TIMEOUT=60
	EOF
	SPLIT_NAME=$name SPLIT_IMAGE=$CT_IMAGE SPLIT_DIR=$WORK/$name \
		SPLIT_EDGES=1 SPLIT_PORT=$port SPLIT_BRIDGE_PORT=$((port + 10)) \
		SPLIT_LOG=stdout SPLIT_DOMAIN=$MAILDOMAIN \
		SPLIT_LMTP=inet:127.0.0.1:$lmtp \
		SPLIT_MAILBOXES="inline:{ alice@$MAILDOMAIN=alice, bob@$MAILDOMAIN=bob }" \
		SPLIT_ENV_FILE=$WORK/$name.env \
		"$TOP/container/split" up >"$WORK/$name.up" 2>&1 ||
		fail "container/split up ($name) failed: $(tail -n 30 "$WORK/$name.up")"
}

split_pods() {
	local name
	for name in ops-sa ops-sb; do
		SPLIT_NAME=$name SPLIT_DIR=$WORK/$name "$TOP/container/split" "$1" \
			>/dev/null 2>&1 || true
	done
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
	# The bridge certificates mounted: the hand-off is mutual TLS.
	replica ops-b "$UID_B" "$B" "$LMTP" "127.0.0.1:$((A + 3)),127.0.0.1:$((B + 3))" \
		-v "$WORK/bridge-tls:/etc/postfix/bridge-tls:ro"
	replica ops-a "$UID_A" "$A" "$DEAD" "127.0.0.1:$((A + 3)),127.0.0.1:$((B + 3))" \
		-v "$WORK/bridge-tls:/etc/postfix/bridge-tls:ro"
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
	# Over TLS, B trusting A's client certificate (the bridge CA).
	ct_logs_grep ops-b "postfix/handoff-in/smtpd\[[0-9]+\]: Trusted TLS connection established from"
	ct_logs_grep ops-a "postfix/handoff/smtp\[[0-9]+\]: .*TLS connection established to 127.0.0.1\[127.0.0.1\]:$((B + 3))"
	queue_is ops-b 0
	# B's counters: every delivery it made, and the hand-off sessions.
	ct_wait ops-b 20 "B's sent counter" metric_is "$B" 'postfix_deliveries_total{status="sent"}' $((n + 2))
	[ "$(metric "$B" 'postfix_smtpd_connections_total{service="handoff-in"}')" -ge 1 ]
	record "drain: queued on A before $((n + 2)) ($((n + 1)) pending, 1 held), handed over $((n + 1)), delivered through B $((n + 2)) deliveries ($((n + 1)) messages), duplicates $(dups), held kept on A 1"

	# Taking mail again.
	podman exec ops-a postfix-drain --resume
	podman exec ops-a postfix-health ready
	podman rm -f -v -t 5 ops-a >/dev/null
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
	podman rm -f -v -t 5 ops-c ops-c-orphan ops-b >/dev/null
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

@test "split topology: the queue pod drains into a peer queue pod's handoff-in; accepted = delivered" {
	local n=20 peers="127.0.0.1:$((SA + 3)),127.0.0.1:$((SB + 3))"
	split_pod ops-sb "$SB" "$LMTP" "$peers"
	split_pod ops-sa "$SA" "$DEAD" "$peers"
	ct_wait ops-sb-edge1 90 "SB's edge" ct_has_banner "$SB"
	ct_wait ops-sa-edge1 90 "SA's edge" ct_has_banner "$SA"
	ct_wait ops-sb-queue 60 "SB's handoff-in in the queue pod" ct_has_banner $((SB + 3))
	# handoff-in runs in the queue role, not in the edge.
	podman exec ops-sb-queue postconf -M handoff-in/inet | grep -q smtpd
	[ -z "$(podman exec ops-sb-edge1 postconf -M handoff-in/inet 2>/dev/null)" ]
	mailtool load --port "$SA" --to "alice@$MAILDOMAIN" --count "$n" \
		--concurrency 2 --prefix split --out "$WORK/split.accepted" \
		--no-5xx --max-seconds 60
	[ "$(wc -l <"$WORK/split.accepted")" -eq "$n" ]
	ct_wait ops-sa-queue 60 "$n deferred in SA's queue" queue_is ops-sa-queue "$n" deferred

	run podman exec ops-sa-queue postfix-drain
	echo "$output"
	[ "$status" -eq 0 ]
	queue_is ops-sa-queue 0
	run podman exec ops-sa-queue postfix-health ready
	[ "$status" -ne 0 ]
	ct_logs_grep ops-sa-queue "drain: handed $n of $n messages to the peers"
	ct_logs_grep ops-sa-delivery "postfix-delivery/handoff/smtp\[[0-9]+\]: .*relay=127.0.0.1\[127.0.0.1\]:$((SB + 3)),.*status=sent"
	wait_until 60 "SA's messages delivered through SB" \
		eval "[ \$(delivered | grep -c '^split-') -ge $n ]"
	diff <(sort "$WORK/split.accepted") <(delivered | grep '^split-' | sort)
	record "split drain: queued in SA's queue pod $n (deferred), handed over $n to SB's queue pod, delivered $n, duplicates $(delivered | grep '^split-' | sort | uniq -d | wc -l)"
	split_pods down
}
