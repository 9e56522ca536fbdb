# Sourced by the browser checks: `chrome ARGS…` runs Debian's Chromium headless as this machine
# needs it (no sandbox as root, no background networking: the network is closed), with a fresh
# profile under "$work" (the caller's temporary folder), its output kept out of the way unless
# it fails. CHROMIUM overrides the binary.
browser=${CHROMIUM:-chromium}

chrome() {
  "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d -p "$work")" "$@" >"$work/chromium.log" 2>&1 \
    || { cat "$work/chromium.log" >&2; return 1; }
}
