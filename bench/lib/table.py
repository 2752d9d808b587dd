#!/usr/bin/env python3
"""bench/lib/table.py - Markdown tables from one mta-bench results directory.

usage: table.py [--pair VARIANT=REF]... [--e2e-min 0.95] [--cpu-max 1.05] DIR

Reads DIR/runs.jsonl and DIR/meta.json (written by ../shared/bench/mta-bench)
and prints, per path (relay, lmtp):
  * for every pair VARIANT=REF: e2e msgs/s ratio and MTA CPU us/msg ratio of
    target VARIANT-PATH to REF-PATH, median [min-max] over repetitions, each
    ratio taken from the two runs of the same repetition (as the harness's
    --ref does; runs it discarded or that failed are left out), and the
    same over all configurations pooled;
  * absolute values: e2e and ingress msgs/s, CPU us/msg of every component,
    flushes/msg, host busy and background CPU, medians;
  * a verdict for each pair named in --judge (default: the first pair):
    e2e ratio >= --e2e-min and CPU ratio <= --cpu-max, per configuration.
Exit 1 if DIR has no usable runs.
"""

import argparse
import json
import os
import statistics
import sys


def mmm(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return (statistics.median(vals), min(vals), max(vals), len(vals))


def fr(x, p=3):
    if x is None:
        return "-"
    return f"{x[0]:.{p}f} [{x[1]:.{p}f}-{x[2]:.{p}f}]"


def fv(x, p=0):
    if x is None:
        return "-"
    return f"{x[0]:.{p}f} [{x[1]:.{p}f}-{x[2]:.{p}f}]"


def human(size):
    return f"{size >> 10} KiB" if size % 1024 == 0 else f"{size} B"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--pair", action="append", default=[])
    ap.add_argument("--judge", action="append", default=[])
    ap.add_argument("--e2e-min", type=float, default=0.95)
    ap.add_argument("--cpu-max", type=float, default=1.05)
    a = ap.parse_args()

    runs = []
    with open(os.path.join(a.dir, "runs.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if not r.get("discarded"):
                runs.append(r)
    if not runs:
        print("table.py: no runs", file=sys.stderr)
        return 1
    meta = {}
    try:
        with open(os.path.join(a.dir, "meta.json")) as f:
            meta = json.load(f)
    except OSError:
        pass
    order = [t[0] for t in meta.get("targets", [])] or sorted({r["target"] for r in runs})
    pairs = [p.split("=", 1) for p in a.pair]
    judge = a.judge or (a.pair[:1])
    judge = [p.split("=", 1) for p in judge]

    by = {}
    for r in runs:
        by.setdefault((r["size"], r["conc"], r["target"]), {})[r["rep"]] = r
    configs = sorted({(r["size"], r["conc"], r["n"]) for r in runs})
    reps = sorted({r["rep"] for r in runs})

    def ratios(size, conc, x, y, key):
        rx, ry = by.get((size, conc, x), {}), by.get((size, conc, y), {})
        out = []
        for rep, u in rx.items():
            v = ry.get(rep)
            if u["ok"] and v and v["ok"] and u.get(key) and v.get(key):
                out.append(u[key] / v[key])
        return out

    paths = [p for p in ("relay", "lmtp") if any(r["kind"] == p for r in runs)]
    out = []
    w = out.append
    w(f"Repetitions: {len(reps)}. Ratios: median [min-max] of per-repetition ratios "
      "(runs of the same repetition, made back to back). e2e = messages/s until the "
      "final consumer holds all N; CPU = MTA cgroup CPU µs per message.")
    verdicts = []
    for path in paths:
        w("")
        w(f"#### {path}: ratios")
        w("")
        hdr = "| S | C | N |"
        sep = "|---|---|---|"
        for v, ref in pairs:
            hdr += f" e2e {v}/{ref} | CPU {v}/{ref} |"
            sep += "---|---|"
        w(hdr)
        w(sep)
        pooled = {tuple(p): ([], []) for p in pairs}
        for size, conc, n in configs:
            row = f"| {human(size)} | {conc} | {n} |"
            for v, ref in pairs:
                e = ratios(size, conc, f"{v}-{path}", f"{ref}-{path}", "e2e_rate")
                c = ratios(size, conc, f"{v}-{path}", f"{ref}-{path}", "mta_cpu_us")
                pooled[(v, ref)][0].extend(e)
                pooled[(v, ref)][1].extend(c)
                row += f" {fr(mmm(e))} | {fr(mmm(c))} |"
                if [v, ref] in judge:
                    me, mc = mmm(e), mmm(c)
                    ok = (me is not None and mc is not None and me[0] >= a.e2e_min
                          and mc[0] <= a.cpu_max)
                    verdicts.append((path, size, conc, v, ref, me, mc, ok))
            w(row)
        row = "| all | | |"
        for v, ref in pairs:
            e, c = pooled[(v, ref)]
            row += f" **{fr(mmm(e))}** | **{fr(mmm(c))}** |"
        w(row)

        w("")
        w(f"#### {path}: absolute values (median [min-max]; other components: median µs/msg)")
        w("")
        w("| S | C | target | e2e msg/s | ingress msg/s | MTA CPU µs/msg | other CPU µs/msg | flush/msg | host busy | bg CPU |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        names = [t for t in order if any(r["target"] == t and
                                         (r["kind"] == path or
                                          (path == "relay" and r["kind"] == "sink") or
                                          (path == "lmtp" and r["kind"] == "lmtp-direct"))
                                         for r in runs)]
        for size, conc, n in configs:
            for t in names:
                rs = [r for r in by.get((size, conc, t), {}).values() if r["ok"]]
                allr = list(by.get((size, conc, t), {}).values())
                if not allr:
                    continue
                comps = sorted({k for r in rs for k in r["cpu_us_per_msg"]} - {t})
                other = []
                for k in comps:
                    vals = [r["cpu_us_per_msg"][k] for r in rs if k in r["cpu_us_per_msg"]]
                    med = statistics.median(vals) if vals else 0
                    if med >= 5:
                        other.append(f"{k} {med:.0f}")
                fail = "" if len(rs) == len(allr) else f" **{len(allr) - len(rs)} FAILED**"
                busy = mmm([r["host_busy"] * 100 for r in rs])
                bg = mmm([r["bg_cpu_frac"] * 100 for r in rs if r.get("bg_cpu_frac") is not None])
                fl = mmm([r.get("flushes_per_msg") for r in rs])
                w(f"| {human(size)} | {conc} | {t}{fail} | {fv(mmm([r['e2e_rate'] for r in rs]))} "
                  f"| {fv(mmm([r['ingress_rate'] for r in rs]))} "
                  f"| {fv(mmm([r['mta_cpu_us'] for r in rs]))} | {', '.join(other) or '-'} "
                  f"| {fl[0]:.2f} | {busy[0]:.0f}% | {bg[0]:.0f}% |" if busy and fl else
                  f"| {human(size)} | {conc} | {t}{fail} | - | - | - | - | - | - | - |")
    if verdicts:
        w("")
        w(f"#### Targets: e2e ratio >= {a.e2e_min} and CPU ratio <= {a.cpu_max} (medians)")
        w("")
        w("| path | S | C | pair | e2e | CPU | met |")
        w("|---|---|---|---|---|---|---|")
        for path, size, conc, v, ref, me, mc, ok in verdicts:
            w(f"| {path} | {human(size)} | {conc} | {v}/{ref} | {fr(me)} | {fr(mc)} | "
              f"{'yes' if ok else '**no**'} |")
        met = sum(1 for x in verdicts if x[-1])
        w("")
        w(f"Met in {met} of {len(verdicts)} configurations.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
