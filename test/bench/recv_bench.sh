#!/bin/sh
# test/bench/recv_bench.sh — end-to-end consumer benchmark: kappa_recv
# writing to a file (fsync and state file per transaction, and group fsync)
# against pg_recvlogical with the same plugin (pg_kappa) and with wal2json.
#
# Creates a throwaway cluster under /tmp (as root the server runs as the
# postgres account), one slot per consumer, then writes the workload
#
#   - BENCH_TXNS transactions (default 5000) of BENCH_ROWS inserts each
#     (default 10) into a table with int, bigint, numeric, text,
#     timestamptz, bool and jsonb columns
#
# and times each consumer from its start until it exits at --endpos (the
# end of the workload): server-side decoding, the replication protocol,
# the consumer's checks and its writes to a file on the same disk as the
# cluster, and its fsyncs.  Events/s counts change records (rows).  Each
# consumer runs BENCH_ROUNDS times on a fresh slot (alternating order); the
# best time is reported.  The server runs with fsync = off, so that only the
# consumers' fsyncs touch the disk.
#
# Environment:
#   BENCH_TXNS=N, BENCH_ROWS=N   workload size (default 5000 x 10)
#   BENCH_ROUNDS=N               rounds (default 2)
#   BENCH_KEEP=1                 keep the cluster (and print where it is)
#   PG_CONFIG                    pg_config to use (default: from PATH)
set -eu

PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$($PG_CONFIG --bindir)
pkglibdir=$($PG_CONFIG --pkglibdir)
top=$(cd "$(dirname "$0")/../.." && pwd)
txns=${BENCH_TXNS:-5000}
rowsper=${BENCH_ROWS:-10}
rounds=${BENCH_ROUNDS:-2}
events=$((txns * rowsper))
kr=$(command -v kappa_recv 2>/dev/null || echo "$bindir/kappa_recv")

for f in "$kr" "$bindir/pg_recvlogical" "$pkglibdir/pg_kappa.so" "$pkglibdir/wal2json.so"; do
	[ -e "$f" ] || { echo "missing $f (make install; apt-get install postgresql-15-wal2json)" >&2; exit 1; }
done

if [ "$(id -u)" = 0 ]; then
	as() { runuser -u postgres -- "$@"; }
	dbuser=postgres
else
	as() { "$@"; }
	dbuser=$(id -un)
fi

dir=$(mktemp -d /tmp/pg_kappa_recv_bench.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" != 0 ] || chown postgres: "$dir"
port=5433

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
trap 'exit 130' INT TERM

as "$bindir/initdb" -D "$dir/data" -A trust -U "$dbuser" >/dev/null
{
	sh "$top/test/conf.sh" "$bindir"
	cat <<CONF
# benchmark settings (later lines win over test/conf.sh's)
logical_decoding_work_mem = 64MB
max_wal_size = 10GB
checkpoint_timeout = 1h
fsync = off
autovacuum = off
shared_buffers = 256MB
CONF
} > "$dir/bench.conf"
as sh -c "cat '$dir/bench.conf' >> '$dir/data/postgresql.conf'"
as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
	-o "-p $port -k $dir -c listen_addresses=''" start >/dev/null

psql() { as "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$dbuser" -d postgres -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
conn="host=$dir port=$port user=$dbuser dbname=postgres"

echo "kappa_recv end-to-end benchmark"
echo "  command:  ${BENCH_TXNS:+BENCH_TXNS=$BENCH_TXNS }${BENCH_ROWS:+BENCH_ROWS=$BENCH_ROWS }${BENCH_ROUNDS:+BENCH_ROUNDS=$BENCH_ROUNDS }sh test/bench/recv_bench.sh"
echo "  server:   $(psql -At -c 'SELECT version()')"
echo "  machine:  $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/ { print $2 " GB RAM" }')"
echo "  disk:     $(df -T "$dir" | awk 'NR == 2 { print $2 " on " $1 }') (sink files and cluster in $dir)"
echo "  load:     $(uptime | sed 's/.*load average/load average/') (at start)"
echo "  workload: $txns transactions of $rowsper inserts = $events events"

# name|command (SLOT, OUT and END are substituted)
configs="kappa_recv, fsync per transaction|$kr -d '$conn' -S SLOT -f OUT -E END
kappa_recv, group fsync (-F 1000)|$kr -d '$conn' -S SLOT -f OUT -F 1000 -E END
pg_recvlogical -P pg_kappa|$bindir/pg_recvlogical -d '$conn' -S SLOT --start --no-loop -f OUT -E END
pg_recvlogical -P wal2json (v2)|$bindir/pg_recvlogical -d '$conn' -S SLOT --start --no-loop -f OUT -E END -o format-version=2"

psql <<SQL
CREATE TABLE bench (id int PRIMARY KEY, b bigint, n numeric, t text,
                    ts timestamptz, f bool, j jsonb);
SQL

# one slot per consumer and round, all created before the workload
r=1
while [ $r -le "$rounds" ]; do
	i=1
	printf '%s\n' "$configs" | while IFS='|' read -r name cmd; do
		plugin=pg_kappa
		case $name in *wal2json*) plugin=wal2json ;; esac
		psql -At -c "SELECT 'x' FROM pg_create_logical_replication_slot('s${r}_$i', '$plugin')" >/dev/null
		i=$((i + 1))
	done
	r=$((r + 1))
done

t=$(now)
psql <<SQL
DO \$\$
BEGIN
    FOR x IN 0..$txns - 1 LOOP
        INSERT INTO bench
        SELECT i, i::bigint * 1000003, round(i / 7.0, 4), 'customer ' || i || ' ' || md5(i::text),
               timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i % 2 = 0,
               jsonb_build_object('id', i, 'tag', 'x' || (i % 10))
          FROM generate_series(x * $rowsper + 1, x * $rowsper + $rowsper) i;
        COMMIT;
    END LOOP;
END \$\$;
SQL
end=$(psql -At -c "SELECT pg_current_wal_lsn()")
echo "  workload written in $(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s, up to $end"
echo

results="$dir/results"
: > "$results"
[ "$(id -u)" != 0 ] || chown postgres: "$results"
# warm up: WAL into the page cache
psql -At -c "SELECT count(*) FROM pg_logical_slot_peek_changes('s1_1', '$end', NULL, 'tables', 'none.none')" >/dev/null

r=1
while [ $r -le "$rounds" ]; do
	if [ $((r % 2)) = 1 ]; then order=$(printf '%s\n' "$configs" | nl -w1 -s'|'); else order=$(printf '%s\n' "$configs" | nl -w1 -s'|' | tac); fi
	printf '%s\n' "$order" | while IFS='|' read -r i name cmd; do
		out="$dir/out_${r}_$i"
		c=$(printf '%s' "$cmd" | sed "s|SLOT|s${r}_$i|; s|OUT|$out|; s|END|$end|")
		t=$(now)
		as sh -c "$c" 2>"$dir/err_${r}_$i" || { echo "$name failed:"; cat "$dir/err_${r}_$i"; exit 1; }
		secs=$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
		lines=$(wc -l < "$out")
		bytes=$(wc -c < "$out")
		echo "$name|$secs|$lines|$bytes" >> "$results"
		printf '  round %d  %-36s %8s s  %8d lines\n' "$r" "$name" "$secs" "$lines"
	done
	r=$((r + 1))
done
echo "  load:     $(uptime | sed 's/.*load average/load average/') (at end)"
echo

best()
{
	awk -F'|' -v n="$1" '$1 == n && (b == "" || $2 < b) { b = $2; l = $0 } END { print l }' "$results"
}
ref=$(best "pg_recvlogical -P pg_kappa" | cut -d'|' -f2)
printf '%-36s %8s %11s %9s %8s\n' "consumer" "seconds" "events/s" "MB out" "ratio"
printf '%s\n' "$configs" | while IFS='|' read -r name cmd; do
	best "$name" | awk -F'|' -v e="$events" -v r="$ref" '{
		printf "%-36s %8.3f %11.0f %9.1f %8.2f\n", $1, $2, e / $2, $4 / 1048576, r / $2 }'
done
echo "(events/s: change records delivered per second, end to end; ratio: events/s relative"
echo " to pg_recvlogical -P pg_kappa; best of $rounds rounds; pg_recvlogical fsyncs every"
echo " 10 s (its default) and at exit, kappa_recv fsyncs the file and writes its state file"
echo " (fsync, rename, fsync of the directory) per transaction or per group, and checks"
echo " every transaction's checksum)"
