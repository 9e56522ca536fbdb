#!/usr/bin/env python3
"""The physical floor: a plain Parquet rewrite of a CUR export with DataFusion.

    floor.py --input CUR_DIR --output OUT_DIR

Reads every column of every row of <input>/data/ and writes them back as zstd Parquet, with
no logic at all: the least any job that reads and rewrites the data can cost on this machine
with the engine rerate is built on. benches/compare.py times it next to rerate and DuckDB.
"""

import argparse
from pathlib import Path

from datafusion import SessionContext


def rewrite(input_dir: Path, output_dir: Path) -> None:
    """COPY (SELECT * FROM the input) TO the output folder, compressed like rerate's tables."""
    ctx = SessionContext()
    ctx.register_parquet("cur", str(input_dir.resolve() / "data") + "/")
    target = str(output_dir.resolve()).replace("'", "''") + "/"
    ctx.sql(
        f"COPY (SELECT * FROM cur) TO '{target}' STORED AS PARQUET "
        "OPTIONS ('format.compression' 'zstd(1)')"
    ).collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True, help="CUR 2.0 export (folder holding data/)")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    args = parser.parse_args()
    rewrite(args.input, args.output)


if __name__ == "__main__":
    main()
