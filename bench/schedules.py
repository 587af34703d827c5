#!/usr/bin/env python3
"""The scheduler at scale: N schedules (default 100,000) load, sit idle, and fire on time.

Generates a project of N flows in 100 integration files, each started by an hourly cron
at minute n % 60 (so about N/60 schedules fire every minute), serves it with the release
binary on a fresh data folder, and reports:

- start: time from launch to /healthz answering (load, compile, sync to the store);
- memory: resident set size once started, and after the fires;
- idle: the process's CPU time over `--idle` seconds between two fire minutes;
- fires: how many fired at the next minute, and their lateness (scheduled time to
  execution queued) from switchboard_schedule_lateness_seconds.

    python3 bench/schedules.py               # builds the release binary first
    python3 bench/schedules.py --count 10000 --binary target/release/switchboard
"""

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def generate(folder: pathlib.Path, count: int) -> None:
    files = 100
    per_file = max(1, count // files)
    n = 0
    for i in range(files):
        lines = [f"name: tenants-{i:03d}", "flows:"]
        for _ in range(per_file):
            if n >= count:
                break
            lines.append(
                f"  t{n:06d}:\n"
                f"    trigger: {{ schedule: {{ cron: \"{n % 60} * * * *\" }} }}\n"
                f"    steps: [{{ id: run, log: tick }}]"
            )
            n += 1
        (folder / f"tenants-{i:03d}.yaml").write_text("\n".join(lines) + "\n")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lateness(metrics: str) -> tuple[int, list[tuple[float, int]]]:
    buckets = []
    count = 0
    for line in metrics.splitlines():
        match = re.match(r'switchboard_schedule_lateness_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if match and match.group(1) != "+Inf":
            buckets.append((float(match.group(1)), int(match.group(2))))
        match = re.match(r"switchboard_schedule_lateness_seconds_count (\d+)", line)
        if match:
            count = int(match.group(1))
    return count, buckets


def quantile(count: int, buckets: list[tuple[float, int]], q: float) -> str:
    for bound, seen in buckets:
        if seen >= q * count:
            return f"<= {bound * 1000:.0f} ms"
    return "> 300 s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--binary", help="a built switchboard binary (default: build release)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU to measure")
    parser.add_argument("--port", type=int, default=18190)
    args = parser.parse_args()

    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "-p", "switchboard"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", ROOT / "target")
        binary = str(pathlib.Path(target) / "release" / "switchboard")

    work = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    project, data = work / "project", work / "data"
    project.mkdir()
    generate(project, args.count)
    base = f"http://127.0.0.1:{args.port}"
    launched = time.monotonic()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{args.port}", "--data", str(data), str(project)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    try:
        while True:
            try:
                get(f"{base}/healthz")
                break
            except OSError:
                if server.poll() is not None:
                    print("serve exited", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        started = time.monotonic() - launched
        print(f"schedules: {args.count}")
        print(f"start (load, compile, sync): {started:.1f} s")
        print(f"memory after start: {rss_mib(server.pid):.0f} MiB")

        # Idle: between two fire minutes (start just after a minute's fires settle).
        now = time.time()
        wait = 60 - now % 60 + 5
        if wait + args.idle > 58:
            time.sleep(wait)
        before = cpu_seconds(server.pid)
        time.sleep(args.idle)
        used = cpu_seconds(server.pid) - before
        print(f"idle CPU over {args.idle:.0f} s: {used:.3f} s ({100 * used / args.idle:.2f} %)")

        # The next minute's fires.
        count_before, _ = lateness(get(f"{base}/metrics"))
        time.sleep(60 - time.time() % 60 + 10)
        count, buckets = lateness(get(f"{base}/metrics"))
        fired = count - count_before
        print(f"fired at the next minute: {fired} (expected about {args.count // 60})")
        if count:
            print(f"lateness p50 {quantile(count, buckets, 0.5)}, p99 {quantile(count, buckets, 0.99)}, "
                  f"max {quantile(count, buckets, 1.0)} (all fires so far: {count})")
        print(f"memory after the fires: {rss_mib(server.pid):.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
