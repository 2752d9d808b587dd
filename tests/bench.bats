#!/usr/bin/env bats
# The benchmark keeps working (issue 10): "make bench-smoke" runs the
# shared harness (../shared/bench/mta-bench) once, with a small matrix
# (1 KiB and 100 KiB at C=10, 200 messages, one repetition), at our
# unprivileged build, the switch-off build and Debian's stock Postfix, on
# the relay and LMTP paths, then bench/startup once per variant. The full
# benchmark ("make bench", docs/BENCHMARKS.md) is not run here.
# Ports 20650-20699 (bench/run smoke), 127.0.0.1 only.

PORT_BASE=20650

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
}

teardown_file() {
	BENCH_WORKDIR=$BW "$TOP/bench/run" stop smoke >/dev/null 2>&1 || true
	suite_cleanup
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
	! grep -q 'FAILED' "$OUT/summary.txt" "$OUT/table.md"
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

@test "bench scripts are POSIX sh and shellcheck clean" {
	local f
	for f in "$TOP"/bench/run "$TOP"/bench/startup "$TOP"/bench/profile \
		"$TOP"/bench/lib/postfix-target \
		"$TOP"/bench/targets/*; do
		head -n 1 "$f" | grep -qx '#!/bin/sh'
		shellcheck -s sh "$f"
	done
}
