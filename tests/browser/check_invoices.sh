#!/usr/bin/env bash
# Renders every HTML document of a run (drafts, invoices, credit notes) in headless Chromium,
# prints it to PDF, and checks with pdftotext that the printed page is not empty, shows the
# number and total from the document's JSON, and says DRAFT exactly when the JSON's status is
# "draft". Optionally saves a screenshot of one group's invoice (for docs).
#
# usage: tests/browser/check_invoices.sh OUTPUT_DIR [SCREENSHOT.png [GROUP]]
set -euo pipefail

out=${1:?usage: check_invoices.sh OUTPUT_DIR [SCREENSHOT.png [GROUP]]}
shot=${2:-}
shot_group=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/chrome.sh"

mapfile -t pages < <(find "$out/invoices" -name '*.html' | sort)
if [ "${#pages[@]}" -eq 0 ]; then
  echo "FAIL no HTML invoice under $out/invoices" >&2
  exit 1
fi

failures=0
for html in "${pages[@]}"; do
  json="${html%.html}.json"
  read -r number total currency status < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["number"], d["total"], d["currency"], d["status"])' "$json")
  pdf="$work/$(basename "${html%.html}").pdf"
  start=$(date +%s%N)
  chrome --no-pdf-header-footer --print-to-pdf="$pdf" "file://$(realpath "$html")"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  text=$(pdftotext -layout "$pdf" -)
  pages_printed=$(pdfinfo "$pdf" | awk '/^Pages:/ {print $2}')
  # Amounts print with thousands separators: compare without them.
  plain=$(printf '%s' "$text" | tr -d ',')
  problems=()
  [ -n "$(printf '%s' "$text" | tr -d '[:space:]')" ] || problems+=("no text")
  grep -qF -- "$number" <<<"$plain" || problems+=("number $number missing")
  grep -qF -- "$currency $total" <<<"$plain" || problems+=("total $currency $total missing")
  if [ "$status" = draft ]; then
    [ "$(grep -c DRAFT <<<"$text")" -ge 2 ] || problems+=("a draft without its DRAFT mark")
  else
    ! grep -q DRAFT <<<"$text" || problems+=("an issued document marked DRAFT")
  fi
  if [ "${#problems[@]}" -eq 0 ]; then
    echo "ok   $number ($status): $currency $total, $pages_printed page(s), printed in ${ms} ms"
  else
    echo "FAIL $html: ${problems[*]}" >&2
    failures=$((failures + 1))
  fi
done

if [ -n "$shot" ]; then
  page=${pages[0]}
  for p in "${pages[@]}"; do
    [ "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["billing_group"])' "${p%.html}.json")" = "$shot_group" ] && page=$p
  done
  chrome --hide-scrollbars --window-size=820,1380 --screenshot="$shot" "file://$(realpath "$page")"
  echo "screenshot of $page: $shot"
fi

if [ "$failures" -gt 0 ]; then
  echo "$failures invoice(s) failed the browser check" >&2
  exit 1
fi
echo "all ${#pages[@]} invoices render and print in Chromium"
