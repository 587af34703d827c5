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


def measure(binary: str, count: int, idle: float = 10.0, port: int = 18190) -> dict:
    """Runs the scenario with `binary`; answers what it measured."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    project, data = work / "project", work / "data"
    project.mkdir()
    generate(project, count)
    base = f"http://127.0.0.1:{port}"
    launched = time.monotonic()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data", str(data), str(project)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    result = {"schedules": count}
    try:
        while True:
            try:
                get(f"{base}/healthz")
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("serve exited")
                time.sleep(0.1)
        result["start_s"] = time.monotonic() - launched
        result["rss_start_mib"] = rss_mib(server.pid)

        # Idle: between two fire minutes (start just after a minute's fires settle).
        wait = 60 - time.time() % 60 + 5
        if wait + idle > 58:
            time.sleep(wait)
        before = cpu_seconds(server.pid)
        time.sleep(idle)
        result["idle_cpu_percent"] = 100 * (cpu_seconds(server.pid) - before) / idle

        # The next minute's fires.
        count_before, _ = lateness(get(f"{base}/metrics"))
        time.sleep(60 - time.time() % 60 + 10)
        fires, buckets = lateness(get(f"{base}/metrics"))
        result["fired"] = fires - count_before
        result["expected"] = count // 60
        result["lateness_p50"] = quantile(fires, buckets, 0.5)
        result["lateness_p99"] = quantile(fires, buckets, 0.99)
        result["lateness_p99_s"] = quantile_seconds(fires, buckets, 0.99)
        result["rss_after_fires_mib"] = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    return result


def quantile_seconds(count: int, buckets: list[tuple[float, int]], q: float) -> float:
    for bound, seen in buckets:
        if seen >= q * count:
            return bound
    return float("inf")


def build_release() -> str:
    """Builds the release binary; answers its path."""
    subprocess.run(["cargo", "build", "--release", "-p", "switchboard"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", ROOT / "target")
    return str(pathlib.Path(target) / "release" / "switchboard")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--binary", help="a built switchboard binary (default: build release)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU to measure")
    parser.add_argument("--port", type=int, default=18190)
    args = parser.parse_args()
    binary = args.binary or build_release()
    result = measure(binary, args.count, args.idle, args.port)
    print(f"schedules: {result['schedules']}")
    print(f"start (load, compile, sync): {result['start_s']:.1f} s")
    print(f"memory after start: {result['rss_start_mib']:.0f} MiB")
    print(f"idle CPU over {args.idle:.0f} s: {result['idle_cpu_percent']:.2f} %")
    print(f"fired at the next minute: {result['fired']} (expected about {result['expected']})")
    print(f"lateness p50 {result['lateness_p50']}, p99 {result['lateness_p99']}")
    print(f"memory after the fires: {result['rss_after_fires_mib']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
