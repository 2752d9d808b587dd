#!/usr/bin/env python3
"""bench/lib/probe.py - measurements for bench/startup (stdlib only).

  probe.py banner PORT TIMEOUT CMD...
      Run CMD, and from the moment it is started poll 127.0.0.1:PORT every
      5 ms until a server sends its first line; print
      "banner_ms=<ms from CMD's start to a line starting with 220>
       cmd_ms=<ms until CMD exited> line=<the line>".
      Exit 1 if no 220 line came within TIMEOUT seconds.
  probe.py mem PID
      Sum resident memory over PID and all its descendants (from
      /proc/PID/smaps_rollup); print "rss_kib=N pss_kib=N nprocs=N
      procs=name,name,...".

Only 127.0.0.1 is ever contacted; every loop is bounded in count and time.
"""

import os
import socket
import subprocess
import sys
import time


def banner(port, timeout, argv):
    deadline_s = float(timeout)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=sys.stderr)
    t_cmd = None
    line = None
    interval = 0.005
    for _ in range(int(deadline_s / interval) + 10):
        if t_cmd is None and proc.poll() is not None:
            t_cmd = time.monotonic()
            if proc.returncode != 0:
                print(f"probe: start command failed rc={proc.returncode}", file=sys.stderr)
                return 1
        left = deadline_s - (time.monotonic() - t0)
        if left <= 0:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=min(left, 5.0)) as s:
                s.settimeout(min(left, 5.0))
                data = b""
                # bounded: at most 64 reads, one line of at most 1 KiB
                for _r in range(64):
                    chunk = s.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                    if b"\n" in data or len(data) > 1024:
                        break
                line = data.split(b"\n", 1)[0].decode(errors="replace").strip()
                if line.startswith("220"):
                    t_banner = time.monotonic()
                    break
                line = None
        except OSError:
            pass
        time.sleep(interval)
    if line is None:
        print(f"probe: no 220 banner on 127.0.0.1:{port} within {timeout}s", file=sys.stderr)
        return 1
    if t_cmd is None:
        try:
            proc.wait(timeout=max(1.0, deadline_s - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            print("probe: start command did not exit", file=sys.stderr)
            return 1
        t_cmd = time.monotonic()
        if proc.returncode != 0:
            print(f"probe: start command failed rc={proc.returncode}", file=sys.stderr)
            return 1
    print(f"banner_ms={(t_banner - t0) * 1e3:.1f} cmd_ms={(t_cmd - t0) * 1e3:.1f} line={line}")
    return 0


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def mem(pid):
    kids = children_map()
    todo, seen = [pid], []
    # bounded: a process tree of at most 10000 processes
    while todo and len(seen) < 10000:
        p = todo.pop()
        seen.append(p)
        todo.extend(kids.get(p, []))
    rss = pss = 0
    names = []
    for p in seen:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            with open(f"/proc/{p}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            continue
    print(f"rss_kib={rss} pss_kib={pss} nprocs={len(names)} procs={','.join(sorted(names))}")
    return 0 if names else 1


def main(argv):
    if len(argv) >= 4 and argv[0] == "banner":
        return banner(int(argv[1]), float(argv[2]), argv[3:])
    if len(argv) == 2 and argv[0] == "mem":
        return mem(int(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
