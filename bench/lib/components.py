#!/usr/bin/env python3
"""bench/lib/components.py - CPU per message per container of the container
variants (bench/run split; bench/lib/container-target).

usage: components.py DIR

DIR holds the harness's runs.jsonl and components.tsv, which
bench/lib/container-target wrote: before every run (its drain step, the
harness's --pre-cmd) one reading of cpuacct.usage of every container of
every container instance (the child cgroups it moved them into), and one
more when the first instance stops. The harness runs the pre-command of
each run right before it, and one per target in the warm-up, so reading
k+1 minus reading k is run k's CPU (plus the harness's settle and grace
pauses around it, when the containers are idle). Prints Markdown tables:
per path, configuration and target, median [min-max] CPU µs per message
of each container (edge1 = smtpd and the edge's trivial-rewrite/proxymap;
bridge-edge1 and bridge-queue = the socat bridges, the scripts that run
them, and their TLS; queue = cleanup, qmgr, trivial-rewrite, ...;
delivery = smtp or lmtp; log = postlogd; single = everything in one
container), the bridges' sum and share, and the interval's total next to
the harness's MTA CPU for the same run. Also writes DIR/components.json.
"""

import collections
import json
import os
import statistics
import sys

ORDER = ["edge1", "bridge-edge1", "bridge-queue", "queue", "delivery", "log", "single"]
BRIDGES = ("bridge-edge1", "bridge-queue")


def human(size):
    return f"{size >> 10} KiB" if size % 1024 == 0 else f"{size} B"


def mmm(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return (statistics.median(vals), min(vals), max(vals))


def fv(x, p=0):
    if x is None:
        return "-"
    return f"{x[0]:.{p}f} [{x[1]:.{p}f}-{x[2]:.{p}f}]"


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    runs = [json.loads(line) for line in open(os.path.join(d, "runs.jsonl"))]
    blocks = []          # [(why, caller, {(instance, comp): usage_ns})]
    key = None
    with open(os.path.join(d, "components.tsv")) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) != 6:
                continue
            k = (p[0], p[1], p[2])
            if k != key:
                blocks.append((p[1], p[2], {}))
                key = k
            blocks[-1][2][(p[3], p[4])] = int(p[5])
    run_blocks = [b for b in blocks if b[0] == "run"]
    stop_blocks = [b for b in blocks if b[0] == "stop"]
    warm = len(run_blocks) - len(runs)
    if warm < 0:
        print(f"components.py: {len(run_blocks)} readings for {len(runs)} runs", file=sys.stderr)
        return 1
    seq = run_blocks[warm:] + stop_blocks[:1]
    for i, r in enumerate(runs):
        if seq[i][1] != r["target"]:
            print(f"components.py: reading {warm + i} was made for {seq[i][1]}, "
                  f"run {i} is {r['target']}", file=sys.stderr)
            return 1
    rows = collections.defaultdict(lambda: collections.defaultdict(list))
    per_run = []
    for i, r in enumerate(runs):
        if i + 1 >= len(seq):
            break
        a, b = seq[i][2], seq[i + 1][2]
        comps = {}
        for (inst, comp), u0 in a.items():
            if inst != r["target"] or (inst, comp) not in b:
                continue
            comps[comp] = (b[(inst, comp)] - u0) / 1e3 / r["n"]
        per_run.append(dict(target=r["target"], size=r["size"], conc=r["conc"], rep=r["rep"],
                            n=r["n"], ok=r["ok"], discarded=bool(r.get("discarded")),
                            mta_cpu_us=r.get("mta_cpu_us"), e2e_rate=r.get("e2e_rate"),
                            components=comps))
        if r.get("discarded") or not r["ok"]:
            continue
        row = rows[(r["kind"], r["size"], r["conc"], r["target"])]
        for comp, v in comps.items():
            row[comp].append(v)
        if any(c in comps for c in BRIDGES):
            row["bridges"].append(sum(comps.get(c, 0) for c in BRIDGES))
            if comps.get("TOTAL"):
                row["bridge share"].append(100 * row["bridges"][-1] / comps["TOTAL"])
        row["harness"].append(r.get("mta_cpu_us"))
    with open(os.path.join(d, "components.json"), "w") as f:
        json.dump(per_run, f, indent=1)

    out = []
    w = out.append
    w("CPU µs per message of each container (median [min-max] over repetitions), "
      "from the readings before each run; `total` is the whole instance over the "
      "same interval, `harness` the harness's MTA CPU of the run (its cgroup, over "
      "the run itself only).")
    targets = sorted({k[3] for k in rows}, key=lambda t: (t.split("-")[-1], t))
    for path in ("relay", "lmtp"):
        keys = sorted(k for k in rows if k[0] == path)
        if not keys:
            continue
        comps = [c for c in ORDER if any(c in rows[k] for k in keys)]
        w("")
        w(f"#### {path}: CPU µs/msg per container")
        w("")
        w("| S | C | target | " + " | ".join(comps) + " | bridges | bridge share | total | harness |")
        w("|---|---|---|" + "---|" * (len(comps) + 4))
        for k in sorted(keys, key=lambda k: (k[1], k[2], targets.index(k[3]))):
            row = rows[k]
            cells = [fv(mmm(row[c])) if row.get(c) else "" for c in comps]
            share = mmm(row["bridge share"]) if row.get("bridge share") else None
            w(f"| {human(k[1])} | {k[2]} | {k[3]} | " + " | ".join(cells) +
              f" | {fv(mmm(row['bridges'])) if row.get('bridges') else ''}"
              f" | {fv(share) + ' %' if share else ''}"
              f" | {fv(mmm(row.get('TOTAL', [])))} | {fv(mmm(row['harness']))} |")
        # pooled over configurations: each container's median per target
        w("")
        w(f"#### {path}: all configurations pooled (median [min-max] of every run)")
        w("")
        w("| target | " + " | ".join(comps) + " | bridges | bridge share | total |")
        w("|---|" + "---|" * (len(comps) + 3))
        for t in targets:
            ks = [k for k in keys if k[3] == t]
            if not ks:
                continue
            pool = collections.defaultdict(list)
            for k in ks:
                for c, v in rows[k].items():
                    pool[c].extend(v)
            cells = [fv(mmm(pool[c])) if pool.get(c) else "" for c in comps]
            share = mmm(pool["bridge share"]) if pool.get("bridge share") else None
            w(f"| {t} | " + " | ".join(cells) +
              f" | {fv(mmm(pool['bridges'])) if pool.get('bridges') else ''}"
              f" | {fv(share) + ' %' if share else ''} | {fv(mmm(pool.get('TOTAL', [])))} |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
