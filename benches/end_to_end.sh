#!/usr/bin/env bash
# End-to-end throughput of `rerate run` on a generated month: wall time, rows/s, peak RSS.
#
#   benches/end_to_end.sh [ROWS] [PROFILE]      # defaults: 1000000 release
#
# Uses the sample config (sample-data/billing.toml) on `rerate sample` data of ROWS rows.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
profile=${2:-release}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rerate-target}"
cargo build --quiet --profile "$profile"
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
bin="$CARGO_TARGET_DIR/$dir/rerate"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" sample --output "$work/cur" --rows "$rows" --seed 1 2>/dev/null
input_bytes=$(du -sb "$work/cur" | cut -f1)
/usr/bin/time -f '%e %M' -o "$work/time" \
  "$bin" run --config sample-data/billing.toml --input "$work/cur" --output "$work/out" --json > "$work/summary.json" 2>"$work/log"
read -r wall rss_kib < "$work/time"
python3 - "$rows" "$wall" "$rss_kib" "$input_bytes" "$work/summary.json" <<'PY'
import json, sys
rows, wall, rss_kib, input_bytes, summary = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = json.load(open(summary))
written = sum(p["control"]["billable_rows_written"] for p in s["periods"])
assert written == rows, f"billable holds {written} rows, input {rows}"
print(f"rows={rows} input={input_bytes / 2**20:.1f} MiB wall={wall:.2f}s "
      f"rows/s={rows / wall:,.0f} peak_rss={rss_kib / 1024:.0f} MiB")
PY
