#!/usr/bin/env bash
# System packages the test suite uses, from Debian (idempotent; skips what is there):
#   promtool (package prometheus) validates the live /metrics output,
#   chromium renders the dashboard in the browser test.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "test dependencies ready: $(promtool --version 2>&1 | head -1); $(/usr/bin/chromium --version 2>/dev/null)"
