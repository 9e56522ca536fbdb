"""The FinOps Foundation's focus-converter (provider `aws`) over every customer CUR export: it
must convert each export's `data/` folder, one FOCUS row per CUR row, and its BilledCost must
total the export's line_item_unblended_cost.

    check_focus_converter.py SUMMARY_JSON

Run with the interpreter of the venv focus-converter is installed in (its pyarrow reads the
result). focus-converter hangs instead of exiting on some errors: each conversion has a
timeout.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.compute as pc
import pyarrow.dataset as ds

CONVERTER = Path(sys.executable).parent / "focus-converter"


def main() -> None:
    summary = json.loads(Path(sys.argv[1]).read_text())
    problems = []
    for period in summary["periods"]:
        for export in period["exports"]:
            data = Path(urlparse(export["files"][0]).path).parent.parent
            cur = ds.dataset(data, format="parquet", partitioning="hive").to_table(
                columns=["line_item_unblended_cost"])
            expected = pc.sum(cur["line_item_unblended_cost"]).as_py() or 0.0
            with tempfile.TemporaryDirectory() as out:
                try:
                    run = subprocess.run(
                        [str(CONVERTER), "convert", "--provider", "aws",
                         "--data-format", "parquet", "--parquet-data-format", "dataset",
                         "--data-path", str(data), "--export-path", out,
                         "--no-export-include-source-columns"],
                        capture_output=True, text=True, timeout=300,
                    )
                except subprocess.TimeoutExpired:
                    problems.append(f"{data}: focus-converter did not finish in 300 s")
                    continue
                files = list(Path(out).glob("*.parquet"))
                if run.returncode != 0 or not files:
                    problems.append(f"{data}: focus-converter failed: {run.stderr[-2000:]}")
                    continue
                focus = ds.dataset(files, format="parquet").to_table(columns=["BilledCost"])
            billed = pc.sum(focus["BilledCost"]).as_py() or 0.0
            group = export["billing_group"]
            # Both are sums of the same doubles (CUR 2.0 money is double): equal to a millionth.
            ok = focus.num_rows == cur.num_rows and abs(billed - expected) < 1e-6
            print(f"{'ok  ' if ok else 'FAIL'} {period['period']} {group}: {focus.num_rows} FOCUS rows "
                  f"from {cur.num_rows}, Σ BilledCost {billed:.6f}, export {expected:.6f}")
            if not ok:
                problems.append(f"{data}: converted rows or BilledCost differ from the export")
    if problems:
        sys.exit("focus-converter check failed:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
