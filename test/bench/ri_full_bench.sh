#!/bin/sh
# test/bench/ri_full_bench.sh — what REPLICA IDENTITY FULL (which engine 2
# sets on its sources) costs writers: pgbench -N (update-heavy: UPDATE
# pgbench_accounts, SELECT, INSERT pgbench_history) on a pgbench -i
# database, 2 clients, with pgbench_accounts, pgbench_branches and
# pgbench_tellers at REPLICA IDENTITY DEFAULT and at FULL.
#
# Throwaway cluster under /tmp (as root the server runs as the postgres
# account), wal_level = logical (the old row is written only then), no
# slot, no pg_kappa.  Each run: VACUUM, CHECKPOINT (every run starts with
# the same full-page-write state), pg_stat_reset_shared('wal'), pgbench
# -N -c 2 -j 2 -T BENCH_SECS; WAL bytes = pg_current_wal_lsn() after
# minus before, per transaction, and pg_stat_wal's records and full-page
# images per transaction.  The two settings alternate order from round to
# round; best tps of BENCH_ROUNDS rounds each, WAL per transaction of the
# same runs (median).
#
# Environment:
#   BENCH_SECS=20      seconds per pgbench run (default 20)
#   BENCH_ROUNDS=3     rounds (default 3)
#   BENCH_SCALE=10     pgbench -i scale (default 10: 1M accounts)
#   BENCH_CLIENTS=2    pgbench clients (default 2)
#   BENCH_FSYNC=off    fsync (default off: CPU-bound commits, like the other
#                      benchmarks; on: disk-bound)
#   BENCH_KEEP=1       keep the cluster
#   PG_CONFIG          pg_config to use (default: from PATH)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$($PG_CONFIG --bindir)
secs=${BENCH_SECS:-20}
rounds=${BENCH_ROUNDS:-3}
scale=${BENCH_SCALE:-10}
clients=${BENCH_CLIENTS:-2}
fsync=${BENCH_FSYNC:-off}

if [ "$(id -u)" = 0 ]; then
	as() { runuser -u postgres -- "$@"; }
	dbuser=postgres
else
	as() { "$@"; }
	dbuser=$(id -un)
fi

dir=$(mktemp -d /tmp/pg_kappa_ribench.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" != 0 ] || chown -R postgres: "$dir"
port=$((20000 + $$ % 10000))

cleanup()
{
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "cluster kept: $bindir/pg_ctl -D $dir/data stop; psql -h $dir -p $port -U $dbuser postgres"
		return
	fi
	as "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

as "$bindir/initdb" -D "$dir/data" -A trust -U "$dbuser" >/dev/null
as sh -c "cat >> '$dir/data/postgresql.conf'" <<CONF
wal_level = logical
max_wal_size = 50GB
checkpoint_timeout = 1h
fsync = $fsync
shared_buffers = 1GB
max_connections = 50
CONF
as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
	-o "-p $port -k $dir -c listen_addresses=''" start >/dev/null

psql() { as env PGOPTIONS='-c client_min_messages=warning' "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$dbuser" -d postgres -v ON_ERROR_STOP=1 "$@"; }
q() { psql -At -c "$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
load() { uptime | sed 's/.*load average: //'; }

echo "REPLICA IDENTITY DEFAULT vs FULL: pgbench -N, $clients clients, ${secs} s per run, best of $rounds rounds"
echo "  command:  $(env | grep '^BENCH_' | sort | tr '\n' ' ')sh test/bench/ri_full_bench.sh"
echo "  server:   $(q 'SELECT version()' | sed 's/ on x86_64.*//')"
echo "  machine:  $(nproc) cores (nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -h | awk '/^Mem:/ { print $2 }') RAM (free -h)"
echo "  settings: wal_level=logical, fsync=$fsync, shared_buffers=1GB, full_page_writes=$(q 'SHOW full_page_writes'), wal_compression=$(q 'SHOW wal_compression'), autovacuum on"
echo "  date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  load:     $(load) (at start)"
t=$(now)
as "$bindir/pgbench" -i -q -s "$scale" -h "$dir" -p "$port" -U "$dbuser" postgres > "$dir/init.out" 2>&1 ||
	{ cat "$dir/init.out" >&2; exit 1; }
echo "  data:     pgbench -i -s $scale in $(elapsed "$t") s; pgbench_accounts $(q "SELECT pg_size_pretty(pg_table_size('pgbench_accounts'))")"
echo

q "CREATE TABLE ri_results (config text, round int, tps float8, txns bigint, wal_bytes numeric, wal_records bigint, wal_fpi bigint,
                            rec_bytes bigint, fpi_bytes bigint, upd_n bigint, upd_bytes bigint)" >/dev/null

run()	# config round
{
	for t in pgbench_accounts pgbench_branches pgbench_tellers; do
		q "ALTER TABLE $t REPLICA IDENTITY $1" >/dev/null
	done
	psql -c "VACUUM" -c "CHECKPOINT"
	q "SELECT pg_stat_reset_shared('wal')" >/dev/null
	lsn0=$(q "SELECT pg_current_wal_lsn()")
	as "$bindir/pgbench" -n -N -h "$dir" -p "$port" -U "$dbuser" -c "$clients" -j "$clients" -T "$secs" postgres > "$dir/pgbench.out" 2>&1 ||
		{ cat "$dir/pgbench.out" >&2; exit 1; }
	tps=$(awk '/^tps = / { print $3; exit }' "$dir/pgbench.out")
	n=$(awk '/number of transactions actually processed:/ { print $NF; exit }' "$dir/pgbench.out" | sed 's|/.*||')
	# pg_stat_wal is written by the backends at their exit / periodically: give it a moment
	sleep 1
	lsn1=$(q "SELECT pg_current_wal_lsn()")
	# the same range by pg_waldump: record bytes without and with full-page images,
	# and the heap updates (UPDATE, HOT_UPDATE: the records that carry the old row)
	as "$bindir/pg_waldump" --stats=record -p "$dir/data/pg_wal" -s "$lsn0" -e "$lsn1" > "$dir/waldump.txt" 2>&1 ||
		{ cat "$dir/waldump.txt" >&2; exit 1; }
	set -- "$1" "$2" $(awk '$1 == "Total" { rec = $3; fpi = $5 }
		$1 == "Heap/UPDATE" || $1 == "Heap/HOT_UPDATE" { un += $2; ub += $5 }
		END { print rec + 0, fpi + 0, un + 0, ub + 0 }' "$dir/waldump.txt")
	q "INSERT INTO ri_results SELECT '$1', $2, $tps, $n, '$lsn1'::pg_lsn - '$lsn0'::pg_lsn, wal_records, wal_fpi, $3, $4, $5, $6 FROM pg_stat_wal" >/dev/null
	psql -At -F' ' -c "SELECT round(tps::numeric, 1), txns, round(wal_bytes / txns, 1), round(rec_bytes::numeric / txns, 1),
	                          round(fpi_bytes::numeric / txns, 1), round(wal_records::numeric / txns, 2), round(upd_bytes::numeric / nullif(upd_n, 0), 1)
	                     FROM ri_results WHERE config = '$1' AND round = $2" |
	while read -r tp tx wb rb fb wr ub; do
		printf '  round %d  %-7s %9s tps %8s txns  WAL/txn %7s B = records %6s + FPI %6s; %5s records/txn; heap update record %6s B  [load %s]\n' \
			"$2" "$1" "$tp" "$tx" "$wb" "$rb" "$fb" "$wr" "$ub" "$(load | cut -d, -f1)"
	done
}

r=1
while [ $r -le "$rounds" ]; do
	if [ $((r % 2)) = 1 ]; then order="DEFAULT FULL"; else order="FULL DEFAULT"; fi
	for c in $order; do
		run "$c" "$r"
	done
	r=$((r + 1))
done
echo
printf '  %-7s %9s %11s %16s %20s %16s %12s %22s\n' config "best tps" "median tps" "WAL B/txn" "w/o FPI B/txn" "FPI B/txn" "records/txn" "heap update record B"
echo "  (medians over the rounds except best tps; w/o FPI: pg_waldump's record bytes without full-page images)"
psql -At -F' ' <<'SQL' > "$dir/summary.txt"
SELECT config, round(max(tps)::numeric, 1), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY tps)::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY (wal_bytes / txns)::float8)::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY rec_bytes::float8 / txns)::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY fpi_bytes::float8 / txns)::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY wal_records::float8 / txns)::numeric, 2),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY upd_bytes::float8 / nullif(upd_n, 0))::numeric, 1)
  FROM ri_results GROUP BY config ORDER BY config DESC;
SQL
while read -r c b m w rb fb r ub; do
	printf '  %-7s %9s %11s %16s %20s %16s %12s %22s\n' "$c" "$b" "$m" "$w" "$rb" "$fb" "$r" "$ub"
done < "$dir/summary.txt"
psql -At -F' ' <<'SQL' | while read -r tr wr rr; do echo "  FULL / DEFAULT: tps $tr (best of each); WAL bytes per transaction $wr, without full-page images $rr (medians)"; done
SELECT round(((SELECT max(tps) FROM ri_results WHERE config = 'FULL') / (SELECT max(tps) FROM ri_results WHERE config = 'DEFAULT'))::numeric, 3),
       round(((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY (wal_bytes / txns)::float8) FROM ri_results WHERE config = 'FULL')
           / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY (wal_bytes / txns)::float8) FROM ri_results WHERE config = 'DEFAULT'))::numeric, 3),
       round(((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY rec_bytes::float8 / txns) FROM ri_results WHERE config = 'FULL')
           / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY rec_bytes::float8 / txns) FROM ri_results WHERE config = 'DEFAULT'))::numeric, 3);
SQL
echo "  load:     $(load) (at end)"
