#!/usr/bin/env python3
"""A large CSV processed in bounded memory: `for_each: { file: ... }` reads rows as needed.

Writes a CSV of `--megabytes` (default 1024) into a temporary folder, runs one flow over
it with `switchboard run` (each batch of rows is summed and one line per batch appended
to an NDJSON file), and reports the time, the rows and batches, and the process's peak
resident memory, beside the file's size.

    python3 bench/files.py                       # builds the release binary first
    python3 bench/files.py --megabytes 100 --binary target/release/switchboard
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

FLOW = """
name: bench
flows:
  load:
    trigger: { call: {} }
    steps:
      - id: each
        for_each:
          file: { path: big.csv, batch: %(batch)d }
          steps:
            - id: total
              transform: '{batch: $index, rows: ($item | length), sum: ([$item[].amount | tonumber] | add)}'
            - id: out
              files: { write: out/batches.ndjson, data: '$steps.total', append: true }
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--binary", help="a built switchboard binary (default: build release)")
    args = parser.parse_args()

    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "-p", "switchboard"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", ROOT / "target")
        binary = str(pathlib.Path(target) / "release" / "switchboard")

    work = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-bench-files-"))
    try:
        big = work / "big.csv"
        row = "customer-{n:09d},{amount},2026-11-23T10:00:00Z,some padding to make rows realistic\n"
        target = args.megabytes * 1024 * 1024
        rows = 0
        with big.open("w") as out:
            out.write("id,amount,at,note\n")
            written = 0
            chunk = []
            while written < target:
                line = row.format(n=rows, amount=rows % 100)
                chunk.append(line)
                written += len(line)
                rows += 1
                if len(chunk) == 10_000:
                    out.write("".join(chunk))
                    chunk = []
            out.write("".join(chunk))
        (work / "bench.yaml").write_text(FLOW % {"batch": args.batch})
        started = time.monotonic()
        result = subprocess.run(
            [binary, "run", "bench.yaml", "load", "--timeout", "2h"],
            cwd=work,
            capture_output=True,
            text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        took = time.monotonic() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
            return 1
        execution = json.loads(result.stdout)
        output = next(step for step in execution["steps"] if step["id"] == "each")["output"]
        print(f"file: {big.stat().st_size / 1024 / 1024:.0f} MiB, {rows} rows")
        print(f"processed: {output['rows']} rows in {output['batches']} batches of {args.batch}, {took:.1f} s")
        print(f"peak resident memory of the process: {peak_kib / 1024:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
