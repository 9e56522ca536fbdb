#!/usr/bin/env python3
"""rerate against the same job in DuckDB, and against a plain Parquet rewrite, on the same files.

    benches/compare.py [--sizes 1000000 10000000] [--repeat 3] [--bin PATH] [--write-readme]

For each size it generates one CUR 2.0 month with `rerate sample --rows N --seed 1`, then runs,
in turn and `--repeat` times, each as its own process timed by `/usr/bin/time` (wall seconds,
peak RSS):
  rerate   `rerate run --config sample-data/billing.toml --json`
  duckdb   benches/duckdb/run_job.py: the same job as one DuckDB SQL script
  floor    benches/floor.py: DataFusion reading every column and writing it back (no logic)
and checks once that DuckDB's outputs equal rerate's summary exactly; a difference fails the run
(exit 1). It prints a table of medians; --write-readme also puts it in benches/README.md with
the machine it ran on and the command. Python packages: benches/requirements.txt.
"""

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
CONFIG = ROOT / "sample-data" / "billing.toml"
README = BENCHES / "README.md"
BEGIN, END = "<!-- compare.py results: begin -->", "<!-- compare.py results: end -->"


@dataclass
class Sample:
    """One timed process: wall seconds, CPU seconds (user + system), peak resident KiB."""

    wall: float
    cpu: float
    rss_kib: int


@dataclass
class Result:
    """All samples of one tool at one size."""

    rows: int
    tool: str
    samples: list

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    @property
    def rss_mib(self) -> float:
        return max(s.rss_kib for s in self.samples) / 1024


def default_bin() -> Path:
    """The release binary in the project's target directory."""
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache" / "rerate-target"))
    return Path(target) / "release" / "rerate"


def timed(cmd: list, stdout_path: Path, log_path: Path) -> Sample:
    """Runs `cmd` under /usr/bin/time; stdout and stderr go to files; a failure raises."""
    time_path = log_path.with_suffix(".time")
    with open(stdout_path, "wb") as out, open(log_path, "wb") as log:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(time_path), *map(str, cmd)],
            stdout=out, stderr=log,
        )
    if proc.returncode != 0:
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(map(str, cmd))}")
    wall, user, system, rss = time_path.read_text().split()[-4:]
    return Sample(float(wall), float(user) + float(system), int(rss))


def commands(binary: Path, python: str, cur: Path, out: Path) -> dict:
    """The command of each tool, reading `cur` and writing under `out`."""
    return {
        "rerate": [binary, "run", "--config", CONFIG, "--input", cur, "--output", out, "--json"],
        "duckdb": [python, BENCHES / "duckdb" / "run_job.py", "--input", cur, "--output", out],
        "floor": [python, BENCHES / "floor.py", "--input", cur, "--output", out],
    }


def bench_size(rows: int, repeat: int, binary: Path, work: Path) -> list:
    """Generates the input once, times every tool `repeat` times, checks DuckDB against rerate."""
    cur = work / f"cur-{rows}"
    if not cur.exists():
        subprocess.run([binary, "sample", "--output", cur, "--rows", str(rows), "--seed", "1"],
                       check=True, stderr=subprocess.DEVNULL)
    results = {}
    for i in range(repeat):
        for tool, cmd in commands(binary, sys.executable, cur, work / "out").items():
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            stdout = work / f"{tool}-{rows}.stdout"
            sample = timed(cmd, stdout, work / f"{tool}-{rows}.log")
            results.setdefault(tool, Result(rows, tool, [])).samples.append(sample)
            print(f"  {rows:>10,} {tool:<7} run {i + 1}/{repeat}: {sample.wall:.2f} s wall, "
                  f"{sample.cpu:.2f} s CPU, {sample.rss_kib / 1024:.0f} MiB", flush=True)
            if tool == "rerate":
                shutil.copy(stdout, work / f"summary-{rows}.json")
            if tool == "duckdb" and i == repeat - 1:
                check_equal(out, work / f"summary-{rows}.json")
    return list(results.values())


def check_equal(duckdb_out: Path, summary: Path) -> None:
    """DuckDB's outputs must equal rerate's summary exactly; otherwise the comparison is void."""
    proc = subprocess.run(
        [sys.executable, BENCHES / "duckdb" / "run_job.py", "--no-run",
         "--output", duckdb_out, "--check-against", summary],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit("DuckDB's totals differ from rerate's: the comparison is void")
    print("  totals: DuckDB equals rerate exactly (billable, pro forma per group, margin per group)")


def table(results: list) -> str:
    """The results as a Markdown table; ratios are wall-time ratios against DuckDB and the floor."""
    lines = [
        "| rows | tool | median wall (s) | rows/s | median CPU (s) | peak RSS (MiB) "
        "| wall / DuckDB | wall / floor |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_size = {}
    for r in results:
        by_size.setdefault(r.rows, {})[r.tool] = r
    for rows, tools in by_size.items():
        duck, floor = tools["duckdb"].wall, tools["floor"].wall
        for r in tools.values():
            lines.append(
                f"| {rows:,} | {r.tool} | {r.wall:.2f} | {rows / r.wall:,.0f} | {r.cpu:.2f} "
                f"| {r.rss_mib:,.0f} "
                f"| {r.wall / duck:.2f} | {r.wall / floor:.2f} |"
            )
    return "\n".join(lines)


def machine() -> str:
    """CPU model, cores, memory, OS, and the versions of the engines compared."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
    versions = subprocess.run(
        [sys.executable, "-c",
         "import duckdb, datafusion; print(duckdb.__version__, datafusion.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return (f"{cpu}, {os.cpu_count()} CPUs (nproc), {mem_kib / 2**20:.1f} GiB memory, "
            f"{platform.system()} {platform.release()}; DuckDB {versions[0]} (Python), "
            f"DataFusion {versions[1]} (Python) for the floor")


def write_readme(results: list, binary: Path, argv: list, load: float) -> None:
    """Replaces the results section of benches/README.md."""
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    profile = binary.parent.name
    section = "\n".join([
        BEGIN,
        f"Machine: {machine()}.",
        f"Binary: `{version}`, `{profile}` profile. "
        f"Load average before the run: {load:.2f}.",
        "",
        "```sh",
        shlex.join(["benches/compare.py", *argv]),
        "```",
        "",
        table(results),
        END,
    ])
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    README.write_text(text[:start] + section + text[end:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="input rows per run (default: 1000000 10000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool per size")
    parser.add_argument("--bin", type=Path, default=default_bin(),
                        help="the rerate binary (default: $CARGO_TARGET_DIR/release/rerate)")
    parser.add_argument("--work", type=Path, help="keep inputs and outputs here (default: a temporary folder)")
    parser.add_argument("--write-readme", action="store_true", help="put the table in benches/README.md")
    args = parser.parse_args()
    if not args.bin.is_file():
        parser.error(f"no rerate binary at {args.bin} (build it, or pass --bin)")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}: other work on this machine skews the timings")

    work = args.work or Path(tempfile.mkdtemp(prefix="rerate-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = []
        for rows in args.sizes:
            print(f"{rows:,} rows:", flush=True)
            results += bench_size(rows, args.repeat, args.bin.resolve(), work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    if args.write_readme:
        write_readme(results, args.bin, sys.argv[1:], load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
