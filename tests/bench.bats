#!/usr/bin/env bats
# The benchmark keeps working (issue 10): "make bench-smoke" runs the
# shared harness (../shared/bench/mta-bench) once, with a small matrix
# (1 KiB and 100 KiB at C=10, 200 messages, one repetition), at our
# unprivileged build, the switch-off build and Debian's stock Postfix, on
# the relay and LMTP paths, then bench/startup once per variant. Then
# "bench/run split-smoke" (part 2): the split topology (container/split)
# against the single container, both from the image, 200 messages of
# 1 KiB at C=10 per path, one repetition, with the bridges' CPU (the
# image is made when missing). The full benchmarks ("make bench",
# "bench/run split", docs/BENCHMARKS.md) are not run here; nothing here
# is timed.
# Ports 20650-20699 (bench/run smoke), 20750-20799 and 20850-20869
# (split-smoke: listeners and bridges), 127.0.0.1 only.

PORT_BASE=20650
SPLIT_PORT_BASE=20750
IMAGE=localhost/postfix-unpriv:latest

load lib/common

setup_file() {
	suite_workdir bench
	OUT=$WORK/out
	BW=$WORK/w
	export OUT BW
	[ -x "$TOP/../shared/bench/mta-bench" ] ||
		fail "no harness at $TOP/../shared/bench/mta-bench"
	ports_free $(seq "$PORT_BASE" $((PORT_BASE + 49)))
	# bounded: the smoke run takes about 2 minutes on 2 cores. BUILD and
	# ROOT (lib/common, absolute paths) are not for the Makefile.
	status=0
	BENCH_OUT=$OUT BENCH_WORKDIR=$BW timeout -k 30 1200 \
		env -u BUILD -u ROOT make -C "$TOP" bench-smoke \
		>"$WORK/smoke.log" 2>&1 || status=$?
	echo "$status" >"$WORK/smoke.rc"

	# part 2, from the image (made when missing; bounded: about 2 minutes)
	SOUT=$WORK/split-out
	SBW=$WORK/split-w
	export SOUT SBW
	if ! podman image exists "$IMAGE" 2>/dev/null; then
		make -C "$TOP" image IMAGE="$IMAGE" >"$WORK/image-build.log" 2>&1 ||
			fail "make image failed: $(tail -n 20 "$WORK/image-build.log")"
	fi
	ports_free $(seq "$SPLIT_PORT_BASE" $((SPLIT_PORT_BASE + 49))) \
		$(seq $((SPLIT_PORT_BASE + 100)) $((SPLIT_PORT_BASE + 119)))
	status=0
	BENCH_OUT=$SOUT BENCH_WORKDIR=$SBW timeout -k 30 900 \
		"$TOP/bench/run" split-smoke >"$WORK/split.log" 2>&1 || status=$?
	echo "$status" >"$WORK/split.rc"
}

teardown_file() {
	BENCH_WORKDIR=$BW "$TOP/bench/run" stop smoke >/dev/null 2>&1 || true
	BENCH_WORKDIR=$SBW "$TOP/bench/run" stop split-smoke >/dev/null 2>&1 || true
	suite_cleanup
}

need_split_run() {
	[ -f "$WORK/split.rc" ] || fail "split-smoke did not run (see $WORK/split.log)"
}

@test "make bench-smoke completes" {
	tail -n 60 "$WORK/smoke.log"
	[ "$(cat "$WORK/smoke.rc")" -eq 0 ]
	[ -s "$OUT/summary.txt" ]
	[ -s "$OUT/summary.json" ]
	[ -s "$OUT/table.md" ]
	[ -s "$OUT/startup.txt" ]
	grep -q '^nproc: ' "$OUT/machine.txt"
}

@test "the summary has e2e and CPU ratios for our targets" {
	python3 - "$OUT/summary.json" <<'EOF'
import json, sys
want = {"unpriv-relay": "upstream-relay", "unpriv-lmtp": "upstream-lmtp",
        "upstream-relay": "stock-relay", "upstream-lmtp": "stock-lmtp"}
seen = set()
for e in json.load(open(sys.argv[1])):
    ref = want.get(e["target"])
    if ref is None:
        continue
    for key in (f"e2e/{ref}", f"mta_cpu/{ref}"):
        r = e["ratios"].get(key)
        assert r and r[1] > 0, f"{e['target']} S={e['size']}: no {key}: {r}"
    seen.add((e["target"], e["size"]))
assert len(seen) == 8, f"ratios for {sorted(seen)}"
print("ok:", sorted(seen))
EOF
	grep -q 'e2e unpriv/upstream | CPU unpriv/upstream' "$OUT/table.md"
	grep -q 'e2e unpriv/stock | CPU unpriv/stock' "$OUT/table.md"
	if grep -q 'FAILED' "$OUT/summary.txt" "$OUT/table.md"; then false; fi
}

@test "every message sent was delivered" {
	python3 - "$OUT/runs.jsonl" <<'EOF'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
runs = [r for r in runs if not r.get("discarded")]
targets = {r["target"] for r in runs}
assert targets == {"ceiling", "dovecot-direct", "stock-relay", "stock-lmtp",
                   "upstream-relay", "upstream-lmtp", "unpriv-relay",
                   "unpriv-lmtp"}, targets
bad = [r for r in runs if not (r["ok"] and r["delivered"] == r["n"] and
                                r["extra"] == 0 and r["source_rc"] == 0 and
                                not r["timed_out"])]
assert not bad, [(r["target"], r["size"], r["delivered"], r["n"]) for r in bad]
for t in targets:
    assert sum(1 for r in runs if r["target"] == t) == 2, t
print(len(runs), "runs,", sum(r["n"] for r in runs), "messages, all delivered")
EOF
}

# settings MAIN.CF - its settings without paths and names, sorted
settings() {
	grep -v '^#' "$1" | sed 's/ *$//' |
		grep -vE '^(queue|data|meta|command|daemon|shlib)_directory|^(myhostname|maillog_file|maillog_file_prefixes|syslog_name) =' |
		sort
}

@test "our instances run the stock instances' services and settings" {
	local h=$BW/harness v f
	for v in unpriv upstream; do
		for f in relay lmtp; do
			[ -s "$h/postfix-stock-$f/etc/main.cf" ]
			[ -s "$BW/target-$v-$f/etc/main.cf" ]
			diff <(grep -v '^#' "$h/postfix-stock-$f/etc/master.cf" |
				sed -e 's/^127\.0\.0\.1:[0-9]* /LISTEN /' \
					-e 's/syslog_name=[^/]*/syslog_name=X/') \
				<(grep -v '^#' "$BW/target-$v-$f/etc/master.cf" |
					sed -e 's/^127\.0\.0\.1:[0-9]* /LISTEN /' \
						-e 's/syslog_name=[^/]*/syslog_name=X/')
			# main.cf: the same settings, apart from paths and names
			diff <(settings "$h/postfix-stock-$f/etc/main.cf") \
				<(settings "$BW/target-$v-$f/etc/main.cf")
		done
	done
}

@test "the unprivileged build ran as the random UID, the switch-off build as root and postfix" {
	local f
	for f in relay lmtp; do
		grep -q "unprivileged mode: all services run as uid $RUN_UID gid 0" \
			"$BW/target-unpriv-$f/maillog.start"
		! grep -q 'unprivileged mode' "$BW/target-upstream-$f/maillog.start"
		grep -q 'daemon started -- version 3.10' "$BW/target-upstream-$f/maillog.start"
		[ "$(stat -c %u "$BW/target-unpriv-$f/spool/active")" -eq "$RUN_UID" ]
		[ "$(stat -c %U "$BW/target-upstream-$f/spool/active")" = postfix ]
	done
}

@test "start-up time and idle memory are reported for every variant" {
	cat "$OUT/startup.txt"
	local v
	for v in unpriv upstream stock; do
		grep -qE "^\| $v \| [0-9]+ \[[0-9]+-[0-9]+\] \| [0-9]+ .* \| [0-9]+ \[[0-9]+-[0-9]+\] \| [0-9]+ " \
			"$OUT/startup.txt"
	done
	grep -qE '^\| container \| ([0-9]+ |pending)' "$OUT/startup.txt"
}

@test "nothing is left running or listening" {
	local p
	for p in $(seq "$PORT_BASE" $((PORT_BASE + 49))); do
		port_closed "$p" || fail "port $p still in use"
	done
	for f in "$BW"/target-*/spool/pid/master.pid; do
		[ -f "$f" ] || continue
		! kill -0 "$(sed -n '1s/ //gp' "$f")" 2>/dev/null
	done
}

@test "split-smoke completes: split and single containers, both paths" {
	need_split_run
	tail -n 60 "$WORK/split.log"
	[ "$(cat "$WORK/split.rc")" -eq 0 ]
	[ -s "$SOUT/summary.json" ]
	[ -s "$SOUT/table.md" ]
	[ -s "$SOUT/components.md" ]
	grep -q '^nproc: ' "$SOUT/machine.txt"
	grep -q '^image: ' "$SOUT/machine.txt"
	grep -q 'e2e split/single | CPU split/single' "$SOUT/table.md"
}

@test "split-smoke: e2e and CPU ratios of split to single are present and positive" {
	need_split_run
	python3 - "$SOUT/summary.json" "$SOUT/runs.jsonl" <<'EOF'
import json, sys
seen = set()
for e in json.load(open(sys.argv[1])):
    if e["target"] not in ("split-relay", "split-lmtp"):
        continue
    ref = e["target"].replace("split", "single")
    for key in (f"e2e/{ref}", f"mta_cpu/{ref}"):
        r = e["ratios"].get(key)
        assert r and r[1] > 0, f"{e['target']}: no {key}: {r}"
    seen.add(e["target"])
assert seen == {"split-relay", "split-lmtp"}, seen
runs = [json.loads(l) for l in open(sys.argv[2])]
assert {r["target"] for r in runs} == {"single-relay", "single-lmtp", "split-relay",
                                       "split-lmtp"}, runs
bad = [r for r in runs if not (r["ok"] and r["delivered"] == r["n"] and r["extra"] == 0
                                and r["e2e_rate"] and r["e2e_rate"] > 0
                                and r["mta_cpu_us"] and r["mta_cpu_us"] > 0)]
assert not bad, [(r["target"], r["delivered"], r["n"], r["mta_cpu_us"]) for r in bad]
print("ok:", [(r["target"], round(r["e2e_rate"]), round(r["mta_cpu_us"])) for r in runs])
EOF
}

@test "split-smoke: the bridges' CPU and every container's are measured" {
	need_split_run
	cat "$SOUT/components.md"
	python3 - "$SOUT/components.json" <<'EOF'
import json, sys
runs = json.load(open(sys.argv[1]))
seen = set()
for r in runs:
    c = r["components"]
    if r["target"].startswith("split-"):
        want = ("edge1", "bridge-edge1", "bridge-queue", "queue", "delivery", "log")
    else:
        want = ("single",)
    for k in want + ("TOTAL",):
        assert c.get(k, 0) > 0, f"{r['target']}: {k} {c.get(k)}"
    # the containers are all there is: the parts add up to the whole
    assert abs(sum(c[k] for k in want) - c["TOTAL"]) <= 0.05 * c["TOTAL"], c
    seen.add(r["target"])
assert seen == {"single-relay", "single-lmtp", "split-relay", "split-lmtp"}, seen
EOF
	# the bridges run socat, and the edge runs smtpd
	grep -q '^bridge-edge1: .*socat' "$SOUT/processes.txt"
	grep -q '^bridge-queue: .*socat' "$SOUT/processes.txt"
	grep -q '^edge1: .*smtpd' "$SOUT/processes.txt"
}

@test "split-smoke leaves no container, volume, cgroup or listener" {
	need_split_run
	local p c
	for c in single-relay single-lmtp split-relay split-lmtp; do
		[ -z "$(podman ps -aq --filter "label=pfsplit=pfb-$c")" ] || fail "containers of $c left"
		[ -z "$(podman volume ls -q --filter "label=pfsplit=pfb-$c")" ] || fail "volumes of $c left"
		[ ! -d "/sys/fs/cgroup/cpuacct/mta-bench/$c" ] || fail "cgroup of $c left"
	done
	for p in $(seq "$SPLIT_PORT_BASE" $((SPLIT_PORT_BASE + 49))) \
		$(seq $((SPLIT_PORT_BASE + 100)) $((SPLIT_PORT_BASE + 119))); do
		port_closed "$p" || fail "port $p still in use"
	done
}

@test "bench scripts are POSIX sh and shellcheck clean" {
	local f
	for f in "$TOP"/bench/run "$TOP"/bench/startup "$TOP"/bench/profile \
		"$TOP"/bench/bridge-floor \
		"$TOP"/bench/lib/postfix-target "$TOP"/bench/lib/container-target \
		"$TOP"/bench/targets/*; do
		head -n 1 "$f" | grep -qx '#!/bin/sh'
		shellcheck -s sh "$f"
	done
}
