#!/usr/bin/env bash
# Java 17+ for the Spark engine's tests (PySpark 4 runs on Java 17 or 21), from Debian's packages.
# Does nothing when a Java 17+ runtime is already on PATH or in JAVA_HOME. Fails, saying why, when it
# cannot install one: the Spark tests are part of the suite and must not be skipped silently.
set -uo pipefail
java_major() {
    "$1" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'
}
for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$(java_major "$candidate")" -ge 17 ] 2>/dev/null; then
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-java: no Java 17+ and no apt-get; install a Java 17+ runtime for the Spark engine" >&2; exit 1
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install-java: no Java 17+, and not root and no sudo to install it" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null \
    || { echo "install-java: apt-get install openjdk-17-jre-headless failed" >&2; exit 1; }
