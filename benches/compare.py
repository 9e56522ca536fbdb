#!/usr/bin/env python3
"""rerate against the same job in DuckDB, and against a plain Parquet rewrite, on the same files.

    benches/compare.py [--sizes 1000000 10000000] [--repeat 3] [--bin PATH] [--cluster] [--write-readme]

For each size it generates one CUR 2.0 month with `rerate sample --rows N --seed 1`, then runs,
in turn and `--repeat` times, each as its own process timed by `/usr/bin/time` (wall seconds,
peak RSS):
  rerate   `rerate run --config sample-data/billing.toml --json`
  duckdb   benches/duckdb/run_job.py: the same job as one DuckDB SQL script
  floor    benches/floor.py: DataFusion reading every column and writing it back (no logic)
  cluster  with --cluster: `rerate run --cluster df://…` on a Ballista scheduler and two
           executors (`rerate cluster …`, started once on 127.0.0.1 for the whole comparison);
           its CPU and peak RSS add the scheduler's and executors' to the driver's
and checks once that DuckDB's outputs equal rerate's summary exactly (and the cluster run's);
a difference fails the run (exit 1). It prints a table of medians; --write-readme also puts it in benches/README.md with
the machine it ran on and the command. Python packages: benches/requirements.txt.
"""

import argparse
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
CONFIG = ROOT / "sample-data" / "billing.toml"
README = BENCHES / "README.md"
BEGIN, END = "<!-- compare.py results: begin -->", "<!-- compare.py results: end -->"
# The table's order.
TOOLS = ("rerate", "duckdb", "floor", "cluster")


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


class Cluster:
    """A Ballista scheduler and two executors (`rerate cluster …`) on 127.0.0.1, each a process
    of its own; their CPU time and peak RSS are read from /proc."""

    def __init__(self, binary: Path, work: Path):
        self.procs = []
        self.port = free_port()
        scheduler = f"127.0.0.1:{self.port}"
        self.spawn(binary, work, "scheduler", ["scheduler", "--bind", scheduler])
        wait_for(self.port)
        for i in range(2):
            flight, grpc = free_port(), free_port()
            (work / f"executor-{i}").mkdir(parents=True, exist_ok=True)
            self.spawn(binary, work, f"executor-{i}", [
                "executor", "--scheduler", scheduler, "--bind", f"127.0.0.1:{flight}",
                "--grpc-bind", f"127.0.0.1:{grpc}", "--work-dir", work / f"executor-{i}"])
            wait_for(flight)
            wait_for(grpc)

    def spawn(self, binary: Path, work: Path, name: str, args: list) -> None:
        log = open(work / f"cluster-{name}.log", "wb")
        self.procs.append(subprocess.Popen([binary, "cluster", *map(str, args)],
                                           stdout=subprocess.DEVNULL, stderr=log))

    @property
    def url(self) -> str:
        return f"df://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        """CPU seconds (user + system) the cluster's processes have used so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for p in self.procs:
            fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / tick

    def peak_rss_kib(self) -> int:
        """The sum of the processes' peak resident sets so far (VmHWM)."""
        total = 0
        for p in self.procs:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        return total

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"no cluster process listens on {port}")
            time.sleep(0.05)


def commands(binary: Path, python: str, cur: Path, out: Path, cluster) -> dict:
    """The command of each tool, reading `cur` and writing under `out`."""
    rerate = [binary, "run", "--config", CONFIG, "--input", cur, "--output", out, "--json"]
    tools = {"rerate": rerate}
    if cluster:
        tools["cluster"] = [*rerate, "--cluster", cluster.url]
    # DuckDB after both rerate runs: its outputs are checked against their summaries.
    tools["duckdb"] = [python, BENCHES / "duckdb" / "run_job.py", "--input", cur, "--output", out]
    tools["floor"] = [python, BENCHES / "floor.py", "--input", cur, "--output", out]
    return tools


def bench_size(rows: int, repeat: int, binary: Path, work: Path, cluster) -> list:
    """Generates the input once, times every tool `repeat` times, checks DuckDB against rerate
    (and against the cluster run)."""
    cur = work / f"cur-{rows}"
    if not cur.exists():
        subprocess.run([binary, "sample", "--output", cur, "--rows", str(rows), "--seed", "1"],
                       check=True, stderr=subprocess.DEVNULL)
    results = {}
    for i in range(repeat):
        for tool, cmd in commands(binary, sys.executable, cur, work / "out", cluster).items():
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            stdout = work / f"{tool}-{rows}.stdout"
            cpu_before = cluster.cpu() if tool == "cluster" else 0
            sample = timed(cmd, stdout, work / f"{tool}-{rows}.log")
            if tool == "cluster":
                sample.cpu += cluster.cpu() - cpu_before
                sample.rss_kib += cluster.peak_rss_kib()
            results.setdefault(tool, Result(rows, tool, [])).samples.append(sample)
            print(f"  {rows:>10,} {tool:<7} run {i + 1}/{repeat}: {sample.wall:.2f} s wall, "
                  f"{sample.cpu:.2f} s CPU, {sample.rss_kib / 1024:.0f} MiB", flush=True)
            if tool in ("rerate", "cluster"):
                shutil.copy(stdout, work / f"summary-{tool}-{rows}.json")
            if tool == "duckdb" and i == repeat - 1:
                check_equal(out, work / f"summary-rerate-{rows}.json", "rerate")
                if cluster:
                    check_equal(out, work / f"summary-cluster-{rows}.json", "the cluster run")
    return list(results.values())


def check_equal(duckdb_out: Path, summary: Path, who: str) -> None:
    """DuckDB's outputs must equal rerate's summary exactly; otherwise the comparison is void."""
    proc = subprocess.run(
        [sys.executable, BENCHES / "duckdb" / "run_job.py", "--no-run",
         "--output", duckdb_out, "--check-against", summary],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"DuckDB's totals differ from {who}'s: the comparison is void")
    print(f"  totals: DuckDB equals {who} exactly (billable, pro forma per group, margin per group)")


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
        for r in sorted(tools.values(), key=lambda r: list(TOOLS).index(r.tool)):
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
    parser.add_argument("--cluster", action="store_true",
                        help="also time `rerate run --cluster` on a scheduler and two executors here")
    parser.add_argument("--write-readme", action="store_true", help="put the table in benches/README.md")
    args = parser.parse_args()
    if not args.bin.is_file():
        parser.error(f"no rerate binary at {args.bin} (build it, or pass --bin)")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}: other work on this machine skews the timings")

    work = args.work or Path(tempfile.mkdtemp(prefix="rerate-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    cluster = None
    try:
        if args.cluster:
            cluster = Cluster(args.bin.resolve(), work)
        results = []
        for rows in args.sizes:
            print(f"{rows:,} rows:", flush=True)
            results += bench_size(rows, args.repeat, args.bin.resolve(), work, cluster)
    finally:
        if cluster:
            cluster.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    if args.write_readme:
        write_readme(results, args.bin, sys.argv[1:], load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
