#!/bin/sh
# test/bench/replay_bench.sh — kappa.replay against recomputing the view's
# query, and kappa.verify against a plain EXCEPT ALL both ways (issue 5).
#
# In a throwaway cluster under /tmp: src(id int primary key, g int, v bigint),
# ROWS rows, g = id % 1000; kappa.capture('src') (a snapshot in the log); view
#   agg = SELECT g, count(*) AS n, sum(v) AS s FROM src GROUP BY g;
# CHANGES logged changes (UPDATE src SET v = v + 1 over id ranges, 10000 rows
# per transaction); kappa.wait('agg', pg_current_wal_insert_lsn(), '600s').
# Timed server-side (clock_timestamp() before and after, in one session):
#   1. SELECT kappa.replay('agg')  (in place, snapshot + all changes through
#      the delta engine), with pg_kappa.batch_max_changes 10000 (default),
#      100000 and 2147483647 (the whole log one batch), set by ALTER SYSTEM +
#      reload (the setting is PGC_SIGHUP), against CREATE TEMP TABLE r AS
#      <the query> (best of 3).  Target: <= 2x.  A replay that kills its
#      backend is reported CRASHED, one that errors FAILED; the run goes on.
#   2. SELECT count(*) FROM kappa.verify('agg') against
#      (q EXCEPT ALL agg) UNION ALL (agg EXCEPT ALL q)  (best of 3 each,
#      alternating).  Target: <= 1.5x.
# Also: reading the log alone (count(*) FROM kappa.events()), the log's size.
# Run:  sh test/bench/replay_bench.sh  (ROWS=2000000 CHANGES=1000000; quick:
#       ROWS=20000 CHANGES=10000); BENCH_KEEP=1 keeps the cluster; PG_CONFIG.
# Server: fsync=off, shared_buffers=512MB, work_mem=16MB, autovacuum on,
# ulimit -v BENCH_MEM_GB (see below).
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$($PG_CONFIG --bindir) so=$($PG_CONFIG --pkglibdir)/pg_kappa.so
rows=${ROWS:-2000000} changes=${CHANGES:-1000000}
[ -f "$so" ] || { echo "missing $so (make install)" >&2; exit 1; }

# as root the server and clients run as the postgres account
if [ "$(id -u)" = 0 ]; then as() { runuser -u postgres -- "$@"; }; dbuser=postgres
else as() { "$@"; }; dbuser=$(id -un); fi

dir=$(mktemp -d /tmp/pg_kappa_rbench.XXXXXX) port=$((20000 + $$ % 10000))
chmod 755 "$dir"; [ "$(id -u)" != 0 ] || chown -R postgres: "$dir"
cleanup()
{
	[ "${BENCH_KEEP:-0}" != 1 ] || { echo "cluster kept: $bindir/pg_ctl -D $dir/data stop; psql -h $dir -p $port"; return; }
	as "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT; trap 'exit 130' INT TERM

as "$bindir/initdb" -D "$dir/data" -A trust -U "$dbuser" >/dev/null
{
	sh "$top/test/conf.sh" "$bindir"
	printf '%s\n' "# benchmark settings (later lines win over test/conf.sh's)" \
		"logical_decoding_work_mem = 64MB" "max_wal_size = 50GB" "checkpoint_timeout = 1h" \
		"fsync = off" "shared_buffers = 512MB" "work_mem = 16MB" "maintenance_work_mem = 256MB"
} > "$dir/bench.conf"
as sh -c "cat '$dir/bench.conf' >> '$dir/data/postgresql.conf'"
# replay holds a batch in memory (13 GB for a 2M-row snapshot): past
# BENCH_MEM_GB (default 3/4 of RAM) a backend fails, not the OOM killer
mem_kb=$(awk -v g="${BENCH_MEM_GB:-0}" '/^MemTotal/ { printf "%d", (g > 0 ? g * 1048576 : $2 * 3 / 4) }' /proc/meminfo)
as sh -c "ulimit -v $mem_kb && exec '$bindir/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w \
	-o \"-p $port -k $dir -c listen_addresses=''\" start" >/dev/null

psql() { as env PGOPTIONS='-c client_min_messages=warning' "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$dbuser" -d postgres -v ON_ERROR_STOP=1 "$@"; }
q() { psql -At -c "$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", x / y }'; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISSED; fi; }
min() { printf '%s\n' "$@" | sort -g | head -1; }
# seconds one statement takes, measured by the server in its session
timed()
{
	psql -At <<SQL 2>"$dir/err" | tail -1
SELECT clock_timestamp() AS t0 \gset
$1 \g /dev/null
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3);
SQL
}
query='SELECT g, count(*) AS n, sum(v) AS s FROM src GROUP BY g'

echo "pg_kappa replay and verify benchmark"
echo "  command:  ROWS=$rows CHANGES=$changes sh test/bench/replay_bench.sh"
echo "  library:  $so ($(md5sum < "$so" | cut -c1-12)); main at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "  server:   $(q 'SELECT version()' | sed 's/ on x86_64.*//')"
echo "  machine:  $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/ { print $2 " GB RAM" }')"
echo "  load:     $(uptime | sed 's/.*load average: //') (at start)"

t=$(now)
psql >/dev/null <<SQL
CREATE EXTENSION pg_kappa;
CREATE TABLE src (id int PRIMARY KEY, g int NOT NULL, v bigint NOT NULL);
INSERT INTO src SELECT i, i % 1000, i FROM generate_series(1, $rows) i;
VACUUM ANALYZE src;
SELECT kappa.capture('src');
SELECT kappa.create_view('agg', '$query');
SQL
[ "$(q "SELECT kappa.wait('agg', timeout => '900s')")" = t ] || { echo "agg did not come up" >&2; exit 1; }
echo "  setup:    src loaded, captured, agg created and fresh in $(elapsed "$t") s"
t=$(now)	# one transaction per statement, 10000 rows each, wrapping around src
awk -v n="$changes" -v r="$rows" 'BEGIN { for (d = 0; d < n; d += b - a + 1) { a = d % r + 1; b = a + 9999
	if (b > r) b = r; if (b > a + n - d - 1) b = a + n - d - 1; print "UPDATE src SET v = v + 1 WHERE id BETWEEN " a " AND " b ";" } }' |
	psql >/dev/null
upd=$(elapsed "$t")
t=$(now) i=0
until [ "$(q "SELECT kappa.wait('agg', pg_current_wal_insert_lsn(), '600s')")" = t ]; do
	i=$((i + 1)); [ $i -lt 6 ] || { echo "agg did not catch up in an hour" >&2; exit 1; }
done
echo "  changes:  $changes updates in $upd s; the worker had applied them $(elapsed "$t") s later"
echo "  log:      $(q "SELECT count(*) || ' batches, ' || sum(change_count) || ' changes, ' || pg_size_pretty(sum(pg_column_size(events))) FROM kappa.event_log")"
psql -c "VACUUM ANALYZE" -c "CHECKPOINT"
echo

bad() { q "SELECT count(*) FROM kappa.verify('agg')"; }
[ "$(bad)" = 0 ] || { echo "agg differs from its query before replay" >&2; exit 1; }
# replay in place with batch_max_changes $1: s = seconds, or CRASHED/FAILED
replay()
{
	psql -c "ALTER SYSTEM SET pg_kappa.batch_max_changes = $1" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	[ "$(q 'SHOW pg_kappa.batch_max_changes')" = "$1" ] || { echo "batch_max_changes not reloaded" >&2; exit 1; }
	n0=$(grep -c 'terminated by signal' "$dir/server.log" || true)
	s=$(timed "SELECT kappa.replay('agg')")
	if [ -z "$s" ]; then
		s="FAILED: $(grep -m1 ERROR "$dir/err" | sed 's/.*ERROR: *//')"
		[ "$(grep -c 'terminated by signal' "$dir/server.log" || true)" = "$n0" ] || s=CRASHED
		i=0; until q "SELECT 1" >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt 120 ] || exit 1; sleep 1; done
	fi
	t=$(now)	# the worker then decodes the replay's own writes
	[ "$(q "SELECT kappa.wait('agg', timeout => '600s')")" = t ] && [ "$(bad)" = 0 ] ||
		{ echo "agg wrong after replay (batch_max_changes $1)" >&2; exit 1; }
	s="$s; worker caught up $(elapsed "$t") s after"
}
recompute() { timed "CREATE TEMP TABLE r AS $query"; }
rc1=$(recompute)
replay 10000; rp1=$s
rc2=$(recompute)
replay 100000; rp2=$s
rc3=$(recompute)
replay 2147483647; rp3=$s
psql -c "ALTER SYSTEM RESET pg_kappa.batch_max_changes" -c "SELECT pg_reload_conf()" >/dev/null
rc=$(min "$rc1" "$rc2" "$rc3")
ev=$(timed "SELECT count(*) FROM kappa.events()")
rr()
{
	x=${1%%;*}
	case $x in *[!0-9.]*) echo "MISSED  $1";; *) echo "$(verdict "$x <= 2 * $rc")  $x s = $(ratio "$x" "$rc")x recompute${1#"$x"}";; esac
}
echo "1. replay vs recompute (target: replay <= 2x recompute)"
echo "  recompute (CREATE TEMP TABLE r AS q): $rc s (best of $rc1 $rc2 $rc3)"
echo "  reading the log alone (count(*) FROM kappa.events()): $ev s"
echo "  kappa.replay('agg'), batch_max_changes 10000 (default): $(rr "$rp1")"
echo "  kappa.replay('agg'), batch_max_changes 100000: $(rr "$rp2")"
echo "  kappa.replay('agg'), batch_max_changes 2147483647 (the whole log one batch): $(rr "$rp3")"
echo

ea="SELECT count(*) FROM ((($query) EXCEPT ALL SELECT * FROM agg) UNION ALL (SELECT * FROM agg EXCEPT ALL ($query))) x"
vf= ex=
for i in 1 2 3; do vf="$vf $(timed "SELECT count(*) FROM kappa.verify('agg')")" ex="$ex $(timed "$ea")"; done
# shellcheck disable=SC2086
v=$(min $vf); e=$(min $ex)
echo "2. verify vs EXCEPT ALL both ways"
echo "  kappa.verify('agg'):  $v s (best of$vf)"
echo "  EXCEPT ALL both ways: $e s (best of$ex)"
echo "  $(verdict "$v <= 1.5 * $e")  verify/EXCEPT ALL $(ratio "$v" "$e")x (target <= 1.5x)"
echo
echo "  load:     $(uptime | sed 's/.*load average: //') (at end)"
