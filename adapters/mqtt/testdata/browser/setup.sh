#!/bin/sh
# Installs what browser_test.go needs: Debian's chromium and node/npm,
# then the npm packages pinned in package-lock.json (into node_modules,
# which is not committed).
set -e
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	apt-get update
	apt-get install -y chromium nodejs npm
fi
npm ci --no-audit --no-fund
