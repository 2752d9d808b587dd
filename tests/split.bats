#!/usr/bin/env bats
# The split topology (issue 8, docs/split.md): each daemon group in its own
# container of the one image, started by container/split ("make
# split-up") with podman on loopback: the queue "pod" (log, queue,
# delivery, bridge-queue: one random UID, sockets and the queue on shared
# volumes) and two edge "pods" (edge + bridge-edge, a random UID each)
# that reach the queue only through socat over 127.0.0.1 TCP with mutual
# TLS. Every container runs --user <random>:0 --cap-drop=ALL --read-only.
# Mail goes over LMTP to a real Dovecot. Resilience: under a bounded load
# (500 messages, concurrency 10), kill -9 of a bridge, of an edge and of
# the delivery container, each restarted as the kubelet would: every
# message answered 250 is delivered. Ports 20400-20499.

PORT_BASE=20400
SP_SMTP=$PORT_BASE               # edge N: 20400 + 10 (N - 1), +1, +2
SP_BRIDGE=$((PORT_BASE + 40))    # bridge-queue: 20440-20449
SP_DEAD=$((PORT_BASE + 50))      # nothing listens on 20450-20459
SP_KUBE_BRIDGE=$((PORT_BASE + 30))  # kube play: the chart's bridge 20430-20439
SP_KUBE_SMTP=$((PORT_BASE + 60))    # kube play: the edge pod's smtpd
SP_STDOUT_SMTP=$((PORT_BASE + 70))
SP_STDOUT_BRIDGE=$((PORT_BASE + 80))
SP_LMTP=$((PORT_BASE + 90))
SP_IMAP=$((PORT_BASE + 91))
SP_AUTH=$((PORT_BASE + 92))
SP_DOMAIN=example.test

load lib/common
load lib/dovecot
load lib/split
load lib/chart

# The resilience runs: messages, concurrency per edge (two edges), and
# how many deliveries to wait for before the kill.
LOAD_COUNT=${SPLIT_LOAD_COUNT:-250}
LOAD_CONCURRENCY=5
KILL_AFTER=150

setup_file() {
	suite_workdir split
	if ! podman image exists "$SP_IMAGE"; then
		make -C "$TOP" image IMAGE="$SP_IMAGE" >"$WORK/image-build.log" 2>&1 ||
			fail "make image failed: $(tail -n 20 "$WORK/image-build.log")"
	fi
	# Leftovers of an interrupted run (our own names only).
	kpodman pod rm -f pftest-postfix-queue-0 pftest-postfix-edge-0 >/dev/null 2>&1 || true
	kpodman volume rm -f spool-pftest-postfix-queue-0 >/dev/null 2>&1 || true
	sp_down
	SP_NAME=$SP_NAME-stdout SP_DIR=$WORK/split-stdout sp_down
	ports_free "$SP_SMTP" $((SP_SMTP + 10)) $((SP_SMTP + 20)) \
		$(seq "$SP_BRIDGE" $((SP_BRIDGE + 9))) "$SP_STDOUT_SMTP" \
		$(seq "$SP_STDOUT_BRIDGE" $((SP_STDOUT_BRIDGE + 9))) \
		$(seq "$SP_KUBE_BRIDGE" $((SP_KUBE_BRIDGE + 9))) "$SP_KUBE_SMTP" \
		"$SP_LMTP" "$SP_IMAP" "$SP_AUTH"
	dv_start "$WORK/dovecot" "$SP_LMTP" "$SP_IMAP" "$SP_AUTH" \
		"alice@$SP_DOMAIN:alicepw" "bob@$SP_DOMAIN:bobpw"
	# Retries within seconds, so that deferred mail is delivered while
	# the suite waits; DNS never used.
	cat >"$WORK/split.env" <<-EOF
		POSTFIX_queue_run_delay=2s
		POSTFIX_minimal_backoff_time=2s
		POSTFIX_maximal_backoff_time=4s
		POSTFIX_transport_retry_time=2s
		POSTFIX_default_transport=error:5.3.0 test containers relay nowhere
		POSTFIX_relay_transport=error:5.3.0 test containers relay nowhere
	EOF
	export SPLIT_MAILBOXES="inline:{ alice@$SP_DOMAIN=alice, bob@$SP_DOMAIN=bob }"
	sp_up
	mkdir -p "$BUILD/test-results"
	: >"$BUILD/test-results/split-resilience.txt"
}

teardown_file() {
	kube_down "$WORK/kube"
	sp_down
	SP_NAME=$SP_NAME-stdout SP_DIR=$WORK/split-stdout sp_down
	dv_stop "$WORK/dovecot" || true
	suite_cleanup
}

ROLES="log queue delivery bridge-queue edge1 bridge-edge1 edge2 bridge-edge2"

# uid_of CTR - the UID the container was started with (--user UID:0).
uid_of() {
	podman inspect -f '{{.Config.User}}' "$1" | cut -d: -f1
}

# procs CTR - "uid gid effective-capabilities comm" of every process in
# the container.
procs() {
	podman exec "$1" sh -c 'for p in /proc/[0-9]*; do
		[ -r "$p/status" ] || continue
		printf "%s %s %s %s\n" "$(awk "/^Uid:/ {print \$2}" "$p/status")" \
			"$(awk "/^Gid:/ {print \$2}" "$p/status")" \
			"$(awk "/^CapEff:/ {print \$2}" "$p/status")" "$(cat "$p/comm")"
	done'
}

# services CTR - the master.cf service names of the container's role.
services() {
	podman exec "$1" postconf -M | awk '{ print $1 }' | sort | tr '\n' ' '
}

# token_at USER TOKEN - TOKEN is in USER's mailbox (read over IMAP).
token_at() {
	mailtool imap --port "$SP_IMAP" --user "$1@$SP_DOMAIN" --password "$1pw" \
		--tokens | grep -qx "$2"
}

@test "container/split up runs log, queue, delivery, bridges and two edges: random UIDs, group 0, no capabilities, read-only" {
	local qpod epod ctr uid
	qpod=$(uid_of "$(sp_ctr queue)")
	for role in $ROLES; do
		ctr=$(sp_ctr "$role")
		sp_running "$ctr"
		uid=$(uid_of "$ctr")
		[ "$uid" -ge 1000000000 ]
		[ "$(podman inspect -f '{{.Config.User}}' "$ctr")" = "$uid:0" ]
		[ "$(podman inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$ctr")" = true ]
		[ "$(podman inspect -f '{{.EffectiveCaps}}' "$ctr")" = "[]" ]
		procs "$ctr" >"$WORK/procs.$role"
		echo "== $role ($uid)"
		cat "$WORK/procs.$role"
		[ -s "$WORK/procs.$role" ]
		[ -z "$(awk -v u="$uid" '$1 != u || $2 != 0 || $3 != "0000000000000000"' "$WORK/procs.$role")" ]
		run podman exec "$ctr" sh -c ': >/etc/postfix/probe'
		[ "$status" -ne 0 ]
		case $role in
		log | queue | delivery | bridge-queue) [ "$uid" = "$qpod" ] ;;
		*) [ "$uid" != "$qpod" ] ;;
		esac
	done
	# One pod, one UID; each edge pod its own.
	epod=$(uid_of "$(sp_ctr edge1)")
	[ "$(uid_of "$(sp_ctr bridge-edge1)")" = "$epod" ]
	[ "$(uid_of "$(sp_ctr edge2)")" != "$epod" ]
	grep -q ' master$' "$WORK/procs.queue"
	grep -q ' qmgr$' "$WORK/procs.queue"
	grep -q ' postlogd$' "$WORK/procs.log"
	grep -q ' socat$' "$WORK/procs.bridge-queue"
	# What "make split-up" tells a person.
	grep -q "swaks --server 127.0.0.1:$SP_SMTP" "$WORK/split-up.out"
	grep -q "tail -f .*/maillog" "$WORK/split-up.out"
}

@test "each role's master runs only its own services; every socket in the shared directories has one maker" {
	local q d e l
	q=$(services "$(sp_ctr queue)")
	d=$(services "$(sp_ctr delivery)")
	e=$(services "$(sp_ctr edge1)")
	l=$(services "$(sp_ctr log)")
	printf 'queue: %s\ndelivery: %s\nedge: %s\nlog: %s\n' "$q" "$d" "$e" "$l"
	for s in pickup cleanup qmgr rewrite bounce defer trace verify flush anvil scache tlsmgr proxymap proxywrite showq error retry discard; do
		[[ " $q" == *" $s "* ]]
	done
	for s in smtp-in lmtp smtp local postlog; do
		[[ " $q" != *" $s "* ]]
	done
	for s in smtp relay lmtp local virtual; do
		[[ " $d" == *" $s "* ]]
	done
	for s in qmgr cleanup smtp-in rewrite postlog; do
		[[ " $d" != *" $s "* ]]
	done
	# The edge: smtpd, and its own address resolution and table lookups;
	# never a service that it reaches over the bridge.
	for s in smtp-in rewrite proxymap; do
		[[ " $e" == *" $s "* ]]
	done
	for s in cleanup anvil tlsmgr verify flush qmgr lmtp proxywrite postlog; do
		[[ " $e" != *" $s "* ]]
	done
	[ "$l" = "postlog " ]
	# private/ and public/ of the queue pod: each name from one master.
	[ -z "$(comm -12 <(echo "$q" | tr ' ' '\n' | sort) <(echo "$d" | tr ' ' '\n' | sort) | grep .)" ]
	mp=$(podman volume inspect -f '{{.Mountpoint}}' "$SP_NAME-public")
	ls "$mp" | sort | tr '\n' ' ' >"$WORK/public"
	cat "$WORK/public"
	[ "$(cat "$WORK/public")" = "cleanup flush pickup postlog qmgr showq " ]
	# Each master has its own pid/ (master.pid) and data directory.
	for role in queue delivery; do
		podman exec "$(sp_ctr "$role")" test -f /var/spool/postfix/pid/master.pid
	done
	[ "$(podman exec "$(sp_ctr queue)" cat /var/spool/postfix/pid/master.pid)" != \
		"$(podman exec "$(sp_ctr delivery)" cat /var/spool/postfix/pid/master.pid)" ]
}

@test "the edge reaches the queue only through socat over 127.0.0.1 TCP, with mutual TLS" {
	local edge=$(sp_ctr edge1) mounts
	# The edge has its own empty queue directory; no volume of the queue pod.
	mounts=$(podman inspect -f '{{range .Mounts}}{{.Name}} {{end}}' "$edge")
	echo "$mounts"
	for v in spool private public pid-queue log; do
		[[ " $mounts " != *" $SP_NAME-$v "* ]]
	done
	# Its cleanup socket is bridge-edge1's socat.
	pid=$(podman exec "$(sp_ctr bridge-edge1)" cat /run/postfix/bridge/cleanup.pid)
	podman exec "$(sp_ctr bridge-edge1)" cat "/proc/$pid/cmdline" | tr '\0' ' ' |
		grep -q "UNIX-LISTEN:/var/spool/postfix/public/cleanup"
	podman exec "$edge" test -S /var/spool/postfix/public/cleanup
	# bridge-queue listens on 127.0.0.1 only.
	ss -ltnH "( sport >= :$SP_BRIDGE and sport <= :$((SP_BRIDGE + 9)) )" >"$WORK/listen"
	cat "$WORK/listen"
	[ "$(awk '{ print $4 }' "$WORK/listen" | grep -vc '^127\.0\.0\.1:')" -eq 0 ]
	[ "$(wc -l <"$WORK/listen")" -eq 6 ]
	# Without TLS, or with a certificate of another CA, no cleanup greeting.
	run timeout 10 socat -T 3 - "TCP:127.0.0.1:$SP_BRIDGE" </dev/null
	[[ "$output" != *cleanup_protocol* ]]
	make_cert "$WORK/evil" postfix-bridge
	cp "$WORK/split/ca/ca.crt" "$WORK/evil/ca.crt"
	n=$(sp_log_lines)
	run timeout 10 socat -T 3 - "OPENSSL:127.0.0.1:$SP_BRIDGE,cert=$WORK/evil/tls.crt,key=$WORK/evil/tls.key,cafile=$WORK/evil/ca.crt,verify=1,commonname=postfix-bridge" </dev/null
	echo "$output"
	[[ "$output" != *cleanup_protocol* ]]
	# The genuine client certificate gets the greeting.
	run timeout 10 socat -T 2 - "OPENSSL:127.0.0.1:$SP_BRIDGE,cert=$WORK/split/edge-tls/tls.crt,key=$WORK/split/edge-tls/tls.key,cafile=$WORK/split/edge-tls/ca.crt,verify=1,commonname=postfix-bridge" </dev/null
	[[ "$output" == *cleanup_protocol* ]]
	wait_until 10 "bridge-queue's TLS error in the shared log" \
		eval "sp_log_since $n | grep -q 'postfix-bridge-queue/socat.*certificate verify failed'"
}

@test "a message from SMTP at an edge reaches Dovecot over LMTP; its path is in the shared log" {
	run mailtool send --port "$SP_SMTP" --to "alice@$SP_DOMAIN" --subject split-first \
		--body "through-the-bridge-4711"
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 60 "the message at alice" token_at alice "$token"
	run mailtool imap --port "$SP_IMAP" --user "alice@$SP_DOMAIN" --password alicepw
	echo "$output" | grep -q 'through-the-bridge-4711'
	# edge smtpd -> (bridge) -> queue cleanup, qmgr -> delivery lmtp.
	wait_until 10 "the delivery in the log" eval "grep -q 'postfix-delivery/lmtp.*status=sent' '$(sp_log)'"
	qid=$(grep -F "message-id=<$token@client.test>" "$(sp_log)" | sed -n 's/.*postfix\/cleanup\[[0-9]*\]: \([0-9A-F]*\): .*/\1/p')
	[ -n "$qid" ]
	grep -q "postfix-edge1/smtpd\[[0-9]*\]: $qid: client=" "$(sp_log)"
	grep -q "postfix/qmgr\[[0-9]*\]: $qid: from=" "$(sp_log)"
	grep -q "postfix-delivery/lmtp\[[0-9]*\]: $qid: to=<alice@$SP_DOMAIN>, relay=127.0.0.1\[127.0.0.1\]:$SP_LMTP.*status=sent" "$(sp_log)"
	# Nothing was queued on the edge itself.
	[ -z "$(podman exec "$(sp_ctr edge1)" find /var/spool/postfix/incoming /var/spool/postfix/active /var/spool/postfix/deferred -type f)" ]
}

@test "two edge containers in front of one queue both deliver" {
	run mailtool send --port "$SP_SMTP" --to "bob@$SP_DOMAIN" --subject via-edge1
	[ "$status" -eq 0 ]
	t1=${output#250 }
	run mailtool send --port $((SP_SMTP + 10)) --to "bob@$SP_DOMAIN" --subject via-edge2
	[ "$status" -eq 0 ]
	t2=${output#250 }
	wait_until 60 "the message of edge1 at bob" token_at bob "$t1"
	wait_until 60 "the message of edge2 at bob" token_at bob "$t2"
	for pair in "1 $t1" "2 $t2"; do
		set -- $pair
		qid=$(grep -F "message-id=<$2@client.test>" "$(sp_log)" | sed -n 's/.*: \([0-9A-F]*\): message-id=.*/\1/p')
		grep -q "postfix-edge$1/smtpd\[[0-9]*\]: $qid: client=" "$(sp_log)"
	done
	# An unknown recipient is rejected at the edge (its own trivial-rewrite).
	run mailtool send --port $((SP_SMTP + 10)) --to "nobody@$SP_DOMAIN"
	echo "$output"
	[[ "$output" == "550 "* ]]
}

@test "a bridge that cannot reach its peer: smtpd answers 451, the edge is not ready, nothing is accepted" {
	local edge=$(sp_ctr edge3)
	# Edge pod 3: its bridge connects to ports where nothing listens.
	sp_edge 3 SPLIT_PEER_PORT="$SP_DEAD" SPLIT_LOG=stdout
	sp_wait "$edge" 60 "edge3's listener" sp_greets $((SP_SMTP + 20))
	run mailtool send --port $((SP_SMTP + 20)) --to "alice@$SP_DOMAIN" --timeout 20
	echo "$output"
	[[ "$output" == "451 4.3.0 Error: queue service unreachable"* ]]
	run podman exec "$edge" postfix-health ready
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"the queue tier is unreachable"* ]]
	podman logs "$(sp_ctr bridge-edge3)" 2>&1 | grep -q 'bridge-edge/cleanup: the peer did not answer'
	podman logs "$edge" 2>&1 | grep -q 'NOQUEUE: client='
	# The same with the peer there but a client certificate of another CA:
	# bridge-queue refuses the TLS handshake.
	sp_edge 3 SPLIT_EDGE_TLS="$WORK/evil" SPLIT_LOG=stdout
	sp_wait "$edge" 60 "edge3's listener" sp_greets $((SP_SMTP + 20))
	run mailtool send --port $((SP_SMTP + 20)) --to "alice@$SP_DOMAIN" --timeout 20
	echo "$output"
	[[ "$output" == "451 4.3.0 "* ]]
	# The smtpd processes never died (no fatal error, no throttling).
	run sh -c "podman logs $edge 2>&1 | grep -E 'fatal|throttling'"
	[ "$status" -ne 0 ]
	podman rm -f -v -t 0 "$edge" "$(sp_ctr bridge-edge3)" >/dev/null
}

@test "the queue container stopped: the edges answer 451 (bridge-queue answers for the missing cleanup); after its start, 250 again" {
	local queue=$(sp_ctr queue)
	podman stop -t 10 "$queue" >/dev/null
	run mailtool send --port "$SP_SMTP" --to "alice@$SP_DOMAIN" --timeout 30
	echo "$output"
	[[ "$output" == "451 4.3.0 Error: queue service unreachable"* ]]
	sp_restart "$queue"
	run mailtool send --port $((SP_SMTP + 10)) --to "alice@$SP_DOMAIN"
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 60 "the message after the queue's restart" token_at alice "$token"
}

@test "a clean stop is recorded as clean, a restart counts" {
	local edge=$(sp_ctr edge2) n
	n=$(sp_log_lines)
	podman stop -t 10 "$edge" >/dev/null
	wait_until 10 "the clean stop in the shared log" \
		eval "sp_log_since $n | grep -q 'postfix-edge2/entrypoint.*role edge: stopped cleanly'"
	sp_restart "$edge"
	wait_until 10 "the start in the shared log" \
		eval "sp_log_since $n | grep -q 'postfix-edge2/entrypoint.*role edge: starting (start 2,'"
	run sh -c "tail -n +$((n + 1)) '$(sp_log)' | grep 'postfix-edge2/entrypoint.*without a clean stop'"
	[ "$status" -ne 0 ]
}

# resilience ROLE - 2 x LOAD_COUNT messages through both edges
# (concurrency 2 x LOAD_COUNCURRENCY), kill -9 of ROLE's container once
# KILL_AFTER of them are delivered, start it again; then wait until every
# message answered 250 is delivered, and count. Sets $accepted,
# $delivered, $duplicates, $extra, $missing and $since (log line count
# before the run).
resilience() {
	local role=$1 ctr prefix=kill-$1 base p
	ctr=$(sp_ctr "$role")
	since=$(sp_log_lines)
	base=$(dv_count "$WORK/dovecot" "alice@$SP_DOMAIN")
	for p in 1 2; do
		mailtool load --port $((SP_SMTP + 10 * (p - 1))) --to "alice@$SP_DOMAIN" \
			--count "$LOAD_COUNT" --concurrency "$LOAD_CONCURRENCY" \
			--prefix "$prefix-$p" --max-seconds 180 --timeout 30 \
			--out "$WORK/$prefix-$p.accepted" >"$WORK/$prefix-$p.load" 2>&1 &
		echo $! >"$WORK/$prefix-$p.pid"
	done
	wait_until 120 "$KILL_AFTER deliveries before the kill" \
		eval "[ \$(dv_count '$WORK/dovecot' alice@$SP_DOMAIN) -ge $((base + KILL_AFTER)) ]"
	podman kill -s KILL "$ctr" >/dev/null
	# As the kubelet: the container exited, start it again.
	sp_wait_exited "$ctr"
	sp_restart "$ctr"
	for p in 1 2; do
		wait "$(cat "$WORK/$prefix-$p.pid")" || true
		cat "$WORK/$prefix-$p.load"
	done
	sort "$WORK/$prefix-1.accepted" "$WORK/$prefix-2.accepted" >"$WORK/$prefix.accepted"
	accepted=$(wc -l <"$WORK/$prefix.accepted")
	[ "$accepted" -gt 0 ]
	wait_until 180 "every accepted message of the run delivered" all_delivered "$prefix"
	sp_delivered "$prefix-" | sort >"$WORK/$prefix.delivered"
	delivered=$(sort -u "$WORK/$prefix.delivered" | wc -l)
	duplicates=$(uniq -d "$WORK/$prefix.delivered" | wc -l)
	missing=$(comm -23 "$WORK/$prefix.accepted" <(sort -u "$WORK/$prefix.delivered") | wc -l)
	extra=$(comm -13 "$WORK/$prefix.accepted" <(sort -u "$WORK/$prefix.delivered") | wc -l)
	printf 'kill -9 %-13s sent %d, accepted (250) %d, delivered %d, duplicates %d, delivered without a 250 %d, lost %d\n' \
		"$role:" $((2 * LOAD_COUNT)) "$accepted" "$delivered" "$duplicates" "$extra" "$missing" |
		tee -a "$BUILD/test-results/split-resilience.txt"
}

all_delivered() {
	sp_delivered "$1-" | sort -u >"$WORK/$1.delivered.now"
	[ -z "$(comm -23 "$WORK/$1.accepted" "$WORK/$1.delivered.now")" ]
}

sp_wait_exited() {
	wait_until 30 "$1 to exit" eval "! sp_running $1"
}

@test "resilience: kill -9 of a bridge (bridge-queue) under load: every 250 is delivered, the log shows the kill" {
	resilience bridge-queue
	[ "$missing" -eq 0 ]
	[ "$delivered" -ge "$accepted" ]
	sp_log_since "$since" | grep -q 'postfix-bridge-queue/entrypoint.*role bridge-queue: the previous container .* ended without a clean stop'
	# The edges noticed: their log path was made anew, and they reloaded
	# (the edge's watcher polls every 2 s, and its message takes the
	# bridge that just came back: wait for it).
	wait_until 30 "edge1's reload after the new log socket" \
		eval "sp_log_since $since | grep -q 'postfix-edge1/entrypoint.*log socket .* made anew'"
}

@test "resilience: kill -9 of an edge under load: every 250 is delivered, the log shows the kill" {
	resilience edge1
	[ "$missing" -eq 0 ]
	[ "$delivered" -ge "$accepted" ]
	sp_log_since "$since" | grep -q 'postfix-edge1/entrypoint.*role edge: the previous container .* ended without a clean stop'
	sp_log_since "$since" | grep -q 'postfix-edge1/master.*daemon started'
}

@test "resilience: kill -9 of the delivery container under load: every 250 is delivered, the log shows the kill" {
	resilience delivery
	[ "$missing" -eq 0 ]
	[ "$delivered" -ge "$accepted" ]
	sp_log_since "$since" | grep -q 'postfix-delivery/entrypoint.*role delivery: the previous container .* ended without a clean stop'
	# The queue manager saw its delivery agents go.
	sp_log_since "$since" | grep -Eq 'postfix/qmgr.*(private/lmtp|mail transport unavailable)'
	sp_log_since "$since" | grep -q 'role delivery: asked the queue manager to retry deferred mail'
}

@test "the shared log volume holds the lines of every role" {
	local log
	log=$(sp_log)
	for tag in postfix-log/master postfix/master postfix/qmgr postfix/cleanup \
		postfix-delivery/master postfix-delivery/lmtp postfix-edge1/smtpd \
		postfix-edge2/smtpd postfix-bridge-queue/entrypoint \
		postfix-bridge-edge1/entrypoint; do
		grep -q " $tag\[" "$log" || fail "no $tag in $log"
	done
	# One file, written by postlogd only.
	[ "$(podman exec "$(sp_ctr log)" ls /var/log/postfix)" = maillog ]
	cat "$BUILD/test-results/split-resilience.txt"
}

@test "POSTFIX_LOG=stdout: each container logs to its own standard output; a plain-TCP bridge (POSTFIX_BRIDGE_TLS=none)" {
	SP_NAME=$SP_NAME-stdout
	SP_DIR=$WORK/split-stdout
	(
		sp_env
		export SPLIT_LOG=stdout SPLIT_EDGES=1 SPLIT_PORT="$SP_STDOUT_SMTP" \
			SPLIT_BRIDGE_PORT="$SP_STDOUT_BRIDGE" SPLIT_BRIDGE_TLS=none
		"$TOP/container/split" up
	) >"$WORK/split-stdout.out" 2>&1 || fail "$(tail -n 20 "$WORK/split-stdout.out")"
	run mailtool send --port "$SP_STDOUT_SMTP" --to "bob@$SP_DOMAIN" --subject stdout-mode
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 60 "the message at bob" token_at bob "$token"
	run podman container exists "$(sp_ctr log)"
	[ "$status" -ne 0 ]
	wait_until 10 "lmtp in the delivery container's log" \
		eval "podman logs $(sp_ctr delivery) 2>&1 | grep -q 'postfix-delivery/lmtp.*status=sent'"
	podman logs "$(sp_ctr queue)" 2>&1 | grep -q 'postfix/qmgr.*from=<sender@client.test>'
	podman logs "$(sp_ctr edge1)" 2>&1 | grep -q 'postfix-edge1/smtpd.*client='
	run sh -c "podman logs $(sp_ctr queue) 2>&1 | grep 'postfix-delivery/'"
	[ "$status" -ne 0 ]
	# Two postlogd in one public/: postlog (queue), postlog-delivery.
	mp=$(podman volume inspect -f '{{.Mountpoint}}' "$SP_NAME-public")
	[ -S "$mp/postlog" ]
	[ -S "$mp/postlog-delivery" ]
	# Without TLS the bridge is plain TCP (only a NetworkPolicy protects it).
	run timeout 10 socat -T 2 - "TCP:127.0.0.1:$SP_STDOUT_BRIDGE" </dev/null
	[[ "$output" == *cleanup_protocol* ]]
	sp_down
}

@test "make split-up and split-down run container/split" {
	run make -C "$TOP" -n split-up split-down
	echo "$output"
	echo "$output" | grep -q 'container/split up'
	echo "$output" | grep -q 'container/split down'
}

# --- the chart's split topology under podman kube play ------------------------

KQ=pftest-postfix-queue-0
KE=pftest-postfix-edge-0

@test "podman kube play of the chart's split pods (edge Deployment, queue StatefulSet): a mail from the edge pod reaches Dovecot" {
	chart_install_tools
	mkdir -p "$WORK/kube" "$WORK/kube-tls"
	# The bridge Secret: one certificate for both sides (server and client
	# use), from the throwaway CA of container/split.
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj /CN=postfix-bridge -keyout "$WORK/kube-tls/tls.key" \
		-out "$WORK/kube-tls/tls.csr" 2>/dev/null
	printf 'subjectAltName=DNS:postfix-bridge\nextendedKeyUsage=serverAuth,clientAuth\n' >"$WORK/kube-tls/ext"
	openssl x509 -req -in "$WORK/kube-tls/tls.csr" -CA "$WORK/split/ca/ca.crt" \
		-CAkey "$WORK/split/ca/ca.key" -CAcreateserial -days 2 \
		-extfile "$WORK/kube-tls/ext" -out "$WORK/kube-tls/tls.crt" 2>/dev/null
	{
		printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: pftest-postfix-bridge-tls\ndata:\n'
		printf '  tls.crt: %s\n' "$(base64 -w0 "$WORK/kube-tls/tls.crt")"
		printf '  tls.key: %s\n' "$(base64 -w0 "$WORK/kube-tls/tls.key")"
		printf '  ca.crt: %s\n' "$(base64 -w0 "$WORK/split/ca/ca.crt")"
	} >"$WORK/kube/bridge-secret.yaml"
	KUBE_UID=$((1000740000 + RANDOM % 10000))
	CHART_RELEASE=pftest chart_render "$WORK/kube/split.yaml" \
		-f "$TOP/tests/chart-values/kube-play-split.yaml" \
		--set "image.repository=${SP_IMAGE%:*}" --set "image.tag=${SP_IMAGE##*:}" \
		--set image.pullPolicy=Never --set "podSecurityContext.runAsUser=$KUBE_UID"
	"$K8S_TOOLS/restricted-check" "$WORK/kube/split.yaml"
	kube_play "$WORK/kube" "$WORK/kube/split.yaml" "$WORK/kube/bridge-secret.yaml"
	cat "$WORK/kube/podify.err"
	kube_wait_port 120 "$KE-edge" "$SP_KUBE_SMTP"
	sp_wait "$KE-edge" 90 "the edge pod ready through the bridge" sp_healthy "$KE-edge"
	# The edge's start reached the shared log over the bridge.
	sp_wait "$KQ-log" 30 "the edge's start in the shared log" \
		eval "kpodman exec $KQ-log grep -q 'postfix-edge/entrypoint.*role edge: starting' /var/log/postfix/maillog"
	for c in queue delivery log bridge; do
		sp_running "$KQ-$c"
	done
	# Every process of both pods: the pods' UID, group 0.
	for c in "$KQ-queue" "$KQ-delivery" "$KQ-log" "$KQ-bridge" "$KE-edge" "$KE-bridge"; do
		procs "$c" >"$WORK/kube/procs"
		[ -z "$(awk -v u="$KUBE_UID" '$1 != u || $2 != 0' "$WORK/kube/procs")" ]
	done
	run mailtool send --port "$SP_KUBE_SMTP" --to "bob@$SP_DOMAIN" --subject kube-split
	echo "$output"
	[ "$status" -eq 0 ]
	token=${output#250 }
	wait_until 60 "the kube play mail at bob" token_at bob "$token"
	wait_until 20 "the edge's smtpd and the delivery in the shared log" eval \
		"kpodman exec $KQ-log cat /var/log/postfix/maillog >'$WORK/kube/maillog' &&
		grep -q 'postfix-edge/smtpd.*client=' '$WORK/kube/maillog' &&
		grep -q 'postfix-delivery/lmtp.*to=<bob@$SP_DOMAIN>.*status=sent' '$WORK/kube/maillog'"
}
