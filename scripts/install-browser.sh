#!/usr/bin/env bash
# Headless Chromium for the report's browser test (tests/report/test_browser.py), from Debian's packages.
# Does nothing when a Chromium binary is already there; without root or sudo it says why and carries on
# (the test then skips with that reason).
set -uo pipefail
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get here; install Chromium by hand for the browser test" >&2; exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install-browser: not root and no sudo; the browser test will be skipped" >&2; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null \
    || echo "install-browser: apt-get install chromium failed; the browser test will be skipped" >&2
exit 0
