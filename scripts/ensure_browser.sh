#!/usr/bin/env bash
# Makes sure the browser tests have a Chromium, and prints its path.
#
# Order: $CHROMIUM_PATH; a Chromium or Chrome already installed; Debian/Ubuntu's package (as root
# or with password-less sudo); Playwright's own download (macOS and machines that reach its CDN).
set -euo pipefail
found() { if [ -n "${1:-}" ] && [ -x "$1" ]; then echo "$1"; exit 0; fi; }
found "${CHROMIUM_PATH:-}"
for name in chromium chromium-browser google-chrome google-chrome-stable; do
  found "$(command -v "$name" 2>/dev/null || true)"
done
found "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
if command -v apt-get >/dev/null 2>&1; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  log="${TMPDIR:-/tmp}/tradeoptions-apt-chromium.log"
  echo "ensure_browser: installing Debian's chromium once (log: $log)" >&2
  if { $as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l \
       $as_root apt-get install -y -qq chromium; } >"$log" 2>&1; then
    found "$(command -v chromium)"
  fi
fi
echo "ensure_browser: trying Playwright's own Chromium" >&2
"$(dirname "$0")/../.venv/bin/playwright" install chromium >&2
for candidate in "$HOME"/.cache/ms-playwright/chromium-*/chrome-linux*/chrome \
    "$HOME"/Library/Caches/ms-playwright/chromium-*/chrome-mac*/*.app/Contents/MacOS/*; do
  found "$candidate"
done
echo "ensure_browser: no Chromium could be found or installed; set CHROMIUM_PATH" >&2
exit 1
