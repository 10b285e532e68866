#!/bin/sh
# test/node/setup.sh: install the node consumer's dependencies (called by
# .ci/run).  Uses the lock file when there is one.  Exits 0 without doing
# anything when node or npm is missing: test/t/065_node_consumer.pl then
# skips with a message saying so.
set -eu
cd "$(dirname "$0")"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "test/node: node or npm not found; the node consumer test will be skipped"
	exit 0
fi
if [ -f package-lock.json ]; then
	npm ci --no-audit --no-fund --loglevel=error
else
	npm install --no-audit --no-fund --loglevel=error
fi
