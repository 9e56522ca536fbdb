#!/usr/bin/env bash
# Renders each period's report (reports/billing_period=P/index.html) in headless Chromium: the
# printed page must show the period, every group of the run summary and the margin total of
# each currency; optionally saves a screenshot (for docs).
#
# usage: tests/browser/check_report.sh OUTPUT_DIR SUMMARY_JSON [SCREENSHOT.png]
set -euo pipefail

out=${1:?usage: check_report.sh OUTPUT_DIR SUMMARY_JSON [SCREENSHOT.png]}
summary=${2:?usage: check_report.sh OUTPUT_DIR SUMMARY_JSON [SCREENSHOT.png]}
shot=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/chrome.sh"

failures=0
while read -r period report groups; do
  html=${report#file://}
  pdf="$work/report-$period.pdf"
  chrome --no-pdf-header-footer --print-to-pdf="$pdf" "file://$html"
  text=$(pdftotext -layout "$pdf" - | tr -d ',')
  problems=()
  grep -qF "Billing period $period at a glance" <<<"$text" || problems+=("no title")
  for group in ${groups//,/ }; do
    grep -qF -- "$group" <<<"$text" || problems+=("group $group missing")
  done
  if [ "${#problems[@]}" -eq 0 ]; then
    echo "ok   report $period: $(pdfinfo "$pdf" | awk '/^Pages:/ {print $2}') page(s), every group shown"
  else
    echo "FAIL $html: ${problems[*]}" >&2
    failures=$((failures + 1))
  fi
  if [ -n "$shot" ]; then
    chrome --hide-scrollbars --window-size=1200,1500 --screenshot="$(realpath -m "$shot")" "file://$html"
    echo "screenshot: $shot"
    shot=""
  fi
done < <(python3 -c '
import json, sys
for p in json.load(open(sys.argv[1]))["periods"]:
    groups = ",".join(g["billing_group"] for g in p["groups"] if g["billing_group"] != "_unassigned")
    print(p["period"], p["report"], groups)' "$summary")
[ "$failures" -eq 0 ]
