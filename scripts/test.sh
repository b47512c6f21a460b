#!/usr/bin/env bash
# The whole test suite: unit, black-box (real clients) and race tests, then
# a short run of every fuzz target. Installs the Debian packages the
# black-box tests drive when they are missing and we are root (and the
# browser tests' npm packages), saying what first; NO_INSTALL=1 installs
# nothing, and the tests that need a missing tool skip with a line naming it.
# FUZZTIME (default 10s) sets each fuzz target's run time; FUZZTIME=0 skips.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the black-box tests drive, by the command that shows
# each is there.
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have mosquitto || need+=(mosquitto)
have mosquitto_pub || need+=(mosquitto-clients)
have coap-client-notls || need+=(libcoap3-bin) # also coap-client-openssl, for the DTLS tests
have openssl || need+=(openssl)
have argon2 || need+=(argon2)          # password file: lines from the argon2 reference CLI
have htpasswd || need+=(apache2-utils) # and from htpasswd -B (bcrypt $2y$)
have chromium || need+=(chromium)
have node || need+=(nodejs)
have npm || need+=(npm)
/usr/bin/python3 -c 'import stomp' >/dev/null 2>&1 || need+=(python3-stomp)
/usr/bin/python3 -c 'import paho.mqtt' >/dev/null 2>&1 || need+=(python3-paho-mqtt)
npm_dirs=()
for dir in $(find adapters -path '*/testdata/browser' -name browser -type d); do
  if [ -f "$dir/package-lock.json" ] && [ ! -d "$dir/node_modules" ]; then npm_dirs+=("$dir"); fi
done
if [ "${NO_INSTALL:-}" = 1 ]; then
  skipped=("${need[@]}")
  for dir in "${npm_dirs[@]}"; do skipped+=("npm ci in $dir"); done
  if [ ${#skipped[@]} -gt 0 ]; then
    echo "NO_INSTALL=1: not installing $(printf '%s, ' "${skipped[@]}" | sed 's/, $//'); tests that drive them will skip" >&2
  fi
else
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && have apt-get; then
      echo "installing the Debian packages the black-box tests drive (NO_INSTALL=1 skips): apt-get update; apt-get install ${need[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
      echo "warning: ${need[*]} missing (not root, so not installed); tests that drive them will skip" >&2
    fi
  fi
  # npm packages for the browser tests (pinned by package-lock.json).
  for dir in "${npm_dirs[@]}"; do
    if have npm; then
      echo "installing the npm packages of $dir (npm ci; NO_INSTALL=1 skips)"
      (cd "$dir" && npm ci --no-audit --no-fund --silent) || echo "warning: npm ci failed in $dir; browser tests will skip" >&2
    fi
  done
fi

go test -race -count=1 -timeout 15m ./...

fuzztime=${FUZZTIME:-10s}
if [ "$fuzztime" != "0" ]; then
  # Every `func FuzzX(` in a _test.go file, run for $fuzztime each.
  grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
    pkg="./$(dirname "${file#./}")"
    for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
      echo "fuzz $pkg $target ($fuzztime)"
      if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/iotgw-fuzz.log 2>&1; then
        # Go's fuzzer sometimes ends a clean run with "context deadline
        # exceeded" when fuzztime expires under load; only a failing input
        # (written to testdata/fuzz) is a real failure.
        if grep -q 'context deadline exceeded' /tmp/iotgw-fuzz.log && ! grep -q 'Failing input written' /tmp/iotgw-fuzz.log; then
          echo "  (fuzzer stopped at its deadline without a failing input; not a failure)"
        else
          cat /tmp/iotgw-fuzz.log; exit 1
        fi
      fi
    done
  done
fi
echo "all tests passed"
