#!/bin/sh
# test/check.sh — "make check": every suite on temporary instances.
#
# 1. Stage a private copy of the PostgreSQL installation with pg_kappa
#    installed into it (as PostgreSQL's own "make check" does), so that
#    neither root nor a normal user needs to touch the system installation.
# 2. Copy the test material next to it, in a directory under /tmp.
# 3. Run test/run_suites.sh there: directly as a normal user, or as the
#    postgres account when we are root (PostgreSQL refuses to run as root).
#
# The work directory is removed when every suite passed and kept otherwise.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$($PG_CONFIG --bindir)
pkglibdir=$($PG_CONFIG --pkglibdir)
sharedir=$($PG_CONFIG --sharedir)

work=$(mktemp -d /tmp/pg_kappa_check.XXXXXX)
chmod 755 "$work"
inst="$work/inst"

echo "staging installation in $inst"
mkdir -p "$inst$bindir" "$inst$pkglibdir" "$inst$sharedir"
cp -a "$bindir/." "$inst$bindir/"
cp -a "$pkglibdir/." "$inst$pkglibdir/"
cp -a "$sharedir/." "$inst$sharedir/"
make -C "$top" --no-print-directory -s install DESTDIR="$inst" PG_CONFIG="$PG_CONFIG" >/dev/null

mkdir -p "$work/src"
cp -a "$top/sql" "$top/expected" "$top/test" "$work/src/"

{
	echo "staged_bindir=$inst$bindir"
	echo "staged_pkglibdir=$inst$pkglibdir"
	echo "work=$work"
} > "$work/env.sh"

if [ "$(id -u)" = 0 ]; then
	chown -R postgres: "$work"
	runner="runuser -u postgres --"
else
	runner=""
fi

status=0
$runner sh "$work/src/test/run_suites.sh" "$work" || status=$?
if [ $status -eq 0 ] && [ -z "${KAPPA_KEEP_WORK:-}" ]; then
	rm -rf "$work"
else
	echo "work directory kept for inspection: $work"
fi
exit $status
