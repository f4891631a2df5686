#!/usr/bin/env bash
# PostgreSQL for the SQL engine's tests, from Debian's packages. The tests start their own throwaway server
# (initdb + pg_ctl in a temporary folder, on a free port) and stop it afterwards; this only installs the
# binaries. Does nothing when initdb is already there. Fails, saying why, when it cannot install them:
# the SQL engine's tests are part of the suite and skip only where PostgreSQL cannot be installed.
set -uo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: no PostgreSQL and no apt-get; install PostgreSQL 13+ (initdb, pg_ctl, psql)" >&2; exit 1
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install-postgres: no PostgreSQL, and not root and no sudo to install it" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql postgresql-client >/dev/null \
    || { echo "install-postgres: apt-get install postgresql failed" >&2; exit 1; }
