#!/bin/sh
# test/deps.sh — install the Debian packages pg_kappa needs, when missing.
# Extra package names may be given as arguments (.ci/run adds node's).
set -eu
pkgs="postgresql-15 postgresql-server-dev-15 libpq-dev libipc-run-perl postgresql-15-wal2json make gcc $*"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "installing:$missing"
if [ "$(id -u)" = 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	sudo="sudo"
else
	echo "missing packages:$missing; run as root: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends $missing
# Debian creates and starts a "main" cluster with the server package; the
# project never uses it.
