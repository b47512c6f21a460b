#!/usr/bin/env bash
# The whole test suite: unit, black-box (real clients) and race tests, then
# a short run of every fuzz target. Installs the Debian packages the
# black-box tests drive when they are missing and we are root.
# FUZZTIME (default 10s) sets each fuzz target's run time; FUZZTIME=0 skips.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "warning: ${need[*]} missing; tests that drive them will skip" >&2
  fi
fi

go test -race -count=1 -timeout 15m ./...

fuzztime=${FUZZTIME:-10s}
if [ "$fuzztime" != "0" ]; then
  # Every `func FuzzX(` in a _test.go file, run for $fuzztime each.
  grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
    pkg="./$(dirname "${file#./}")"
    for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
      echo "fuzz $pkg $target ($fuzztime)"
      go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/iotgw-fuzz.log 2>&1 || { cat /tmp/iotgw-fuzz.log; exit 1; }
    done
  done
fi
echo "all tests passed"
