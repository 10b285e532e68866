#!/bin/sh
# test/bench/decode_bench.sh — decoding benchmark: pg_kappa against wal2json
# (format-version 2 and 1), test_decoding and pgoutput, on one workload.
#
# Creates a throwaway cluster under /tmp (as root the server runs as the
# postgres account), creates one slot per plugin, writes the workload
#
#   - one transaction: 1M inserts into a table with int, bigint, numeric,
#     text, timestamptz, bool and jsonb columns, then 250k updates and 100k
#     deletes of those rows (spilled to disk: default logical_decoding_work_mem)
#   - 100k one-row transactions
#
# and decodes the same WAL range with pg_logical_slot_peek_changes
# (pg_logical_slot_peek_binary_changes for pgoutput), consuming the output
# server-side with count(*) and sum(octet_length(data)) (length() of text
# would count characters, a cost that grows with the output) so the client
# is not the bottleneck.  "floor" is pg_kappa with a "tables" pattern that matches
# nothing: the decoding and reassembly cost every plugin pays.  Each
# configuration is decoded BENCH_ROUNDS times (alternating order); the best
# time is reported.  Times are the decoding backend's CPU time (from
# /proc/self/schedstat: user and system time, not time spent waiting for a
# CPU), which other jobs on the machine disturb far less than wall-clock
# time; wall-clock time is printed as well, and targets are judged on CPU
# time.  Then the decoding backend's peak RSS growth (VmHWM from
# /proc) is measured on a 5M-row transaction decoded by pg_kappa.
#
# Environment:
#   BENCH_SCALE=0.1   scale every row count (default 1)
#   BENCH_ROUNDS=N    decoding rounds (default 3)
#   BENCH_SO=path     pg_kappa.so to load (default: the installed one); it is
#                     copied at start, so a concurrent "make install" does not
#                     change the library in the middle of a run
#   BENCH_KEEP=1      keep the cluster (and print where it is)
#   PG_CONFIG         pg_config to use (default: from PATH)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$($PG_CONFIG --bindir)
pkglibdir=$($PG_CONFIG --pkglibdir)
scale=${BENCH_SCALE:-1}
rounds=${BENCH_ROUNDS:-3}
so=${BENCH_SO:-$pkglibdir/pg_kappa.so}

rows() { awk -v n="$1" -v s="$scale" 'BEGIN { r = int(n * s + 0.5); print (r < 1 ? 1 : r) }'; }
n_ins=$(rows 1000000)
n_small=$(rows 100000)
n_big=$(rows 5000000)

for lib in "$so" "$pkglibdir/wal2json.so" "$pkglibdir/test_decoding.so"; do
	[ -f "$lib" ] || { echo "missing $lib (make install; apt-get install postgresql-15-wal2json)" >&2; exit 1; }
done

if [ "$(id -u)" = 0 ]; then
	as() { runuser -u postgres -- "$@"; }
	dbuser=postgres
else
	as() { "$@"; }
	dbuser=$(id -un)
fi

dir=$(mktemp -d /tmp/pg_kappa_bench.XXXXXX)
chmod 755 "$dir"
mkdir "$dir/lib"
cp "$so" "$dir/lib/pg_kappa.so"
[ "$(id -u)" != 0 ] || chown -R postgres: "$dir"
port=5432

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
dynamic_library_path = '$dir/lib:\$libdir'
logical_decoding_work_mem = 64MB
max_wal_size = 50GB
checkpoint_timeout = 1h
fsync = off
autovacuum = off
shared_buffers = 256MB
work_mem = 4MB
CONF
} > "$dir/bench.conf"
as sh -c "cat '$dir/bench.conf' >> '$dir/data/postgresql.conf'"
as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
	-o "-p $port -k $dir -c listen_addresses=''" start >/dev/null

psql() { as "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$dbuser" -d postgres -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

echo "pg_kappa decoding benchmark"
echo "  command:  ${BENCH_SCALE:+BENCH_SCALE=$BENCH_SCALE }${BENCH_ROUNDS:+BENCH_ROUNDS=$BENCH_ROUNDS }${BENCH_SO:+BENCH_SO=$BENCH_SO }sh test/bench/decode_bench.sh"
echo "  library:  $so ($(md5sum < "$so" | cut -c1-12))"
echo "  server:   $(psql -At -c 'SELECT version()')"
echo "  machine:  $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/ { print $2 " GB RAM" }')"
echo "  load:     $(uptime | sed 's/.*load average/load average/') (at start)"
echo "  workload: one transaction of $n_ins inserts, $(rows 250000) updates, $(rows 100000) deletes; $n_small one-row transactions"

psql >/dev/null <<SQL
CREATE TABLE bench (id int PRIMARY KEY, b bigint, n numeric, t text,
                    ts timestamptz, f bool, j jsonb);
CREATE PUBLICATION bench_pub FOR TABLE bench;
SELECT 'x' FROM pg_create_logical_replication_slot('b_kappa', 'pg_kappa');
SELECT 'x' FROM pg_create_logical_replication_slot('b_wal2json', 'wal2json');
SELECT 'x' FROM pg_create_logical_replication_slot('b_test_decoding', 'test_decoding');
SELECT 'x' FROM pg_create_logical_replication_slot('b_pgoutput', 'pgoutput');

-- Decode slot's WAL up to upto with the given options; the output is
-- consumed here.  Returns CPU and wall-clock seconds, rows and bytes of
-- output, and the peak RSS growth of this backend (VmHWM, kB) during the call.
CREATE FUNCTION bench_hwm() RETURNS bigint LANGUAGE sql AS
\$\$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s*(\d+)'))[1]::bigint \$\$;
CREATE FUNCTION bench_cpu() RETURNS float8 LANGUAGE sql AS
\$\$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::float8 / 1e9 \$\$;
CREATE FUNCTION bench_decode(slot name, is_binary bool, upto pg_lsn,
                             VARIADIC opts text[],
                             OUT cpu float8, OUT secs float8, OUT nrows bigint,
                             OUT nbytes bigint, OUT hwm_kb bigint)
LANGUAGE plpgsql AS \$\$
DECLARE
    t0 timestamptz;
    c0 float8;
    h0 bigint := bench_hwm();
BEGIN
    c0 := bench_cpu();
    t0 := clock_timestamp();
    IF is_binary THEN
        SELECT count(*), sum(length(data)) INTO nrows, nbytes
          FROM pg_logical_slot_peek_binary_changes(slot, upto, NULL, VARIADIC opts);
    ELSE
        SELECT count(*), sum(octet_length(data)) INTO nrows, nbytes
          FROM pg_logical_slot_peek_changes(slot, upto, NULL, VARIADIC opts);
    END IF;
    secs := extract(epoch FROM clock_timestamp() - t0);
    cpu := bench_cpu() - c0;
    hwm_kb := bench_hwm() - h0;
END \$\$;
SQL

t=$(now)
psql <<SQL
BEGIN;
INSERT INTO bench
SELECT i, i::bigint * 1000003, round(i / 7.0, 4),
       CASE WHEN i % 100 = 0 THEN 'quote " backslash \\ tab ' || chr(9) || i
            ELSE 'customer ' || i || ' ' || md5(i::text) END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
       i % 2 = 0,
       jsonb_build_object('id', i, 'tag', 'x' || (i % 10), 'v', jsonb_build_array(i, i + 1))
  FROM generate_series(1, $n_ins) i;
UPDATE bench SET b = b + 1, t = t || ' upd', f = NOT f WHERE id % 4 = 0;
DELETE FROM bench WHERE id % 10 = 1;
COMMIT;
DO \$\$
BEGIN
    FOR i IN 1..$n_small LOOP
        INSERT INTO bench VALUES (10000000 + i, i, i * 0.5, 'small ' || i,
                                  timestamptz '2024-06-01 00:00:00+00', true,
                                  '{"small": true}');
        COMMIT;
    END LOOP;
END \$\$;
SQL
upto=$(psql -At -c "SELECT pg_current_wal_lsn()")
wal=$(psql -At -c "SELECT pg_size_pretty(pg_current_wal_lsn() - confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'b_kappa'")
echo "  workload written in $(elapsed "$t") s; $wal of WAL to decode (up to $upto)"
echo

# name|slot|binary|options (comma-separated name,value pairs)
configs="pg_kappa|b_kappa|false|
pg_kappa include-types|b_kappa|false|include-types,on
floor (pg_kappa, no table)|b_kappa|false|tables,none.none
wal2json v2|b_wal2json|false|format-version,2
wal2json v1|b_wal2json|false|format-version,1,write-in-chunks,1
test_decoding|b_test_decoding|false|
pgoutput|b_pgoutput|true|proto_version,1,publication_names,bench_pub"

results="$dir/results"
: > "$results"
[ "$(id -u)" != 0 ] || chown postgres: "$results"
# warm up: WAL into the page cache
psql -At -c "SELECT count(*) FROM pg_logical_slot_peek_changes('b_kappa', '$upto', NULL, 'tables', 'none.none')" >/dev/null
psql -At -c "SELECT pg_stat_reset_replication_slot(NULL)" >/dev/null
r=1
while [ $r -le "$rounds" ]; do
	if [ $((r % 2)) = 1 ]; then order=$(printf '%s\n' "$configs"); else order=$(printf '%s\n' "$configs" | tac); fi
	printf '%s\n' "$order" | while IFS='|' read -r name slot bin opts; do
		arr=$(printf '%s' "$opts" | awk -F, '{ for (i = 1; i <= NF; i++) printf "%s'\''%s'\''", (i > 1 ? "," : ""), $i }')
		[ -n "$arr" ] || arr="NULL"
		line=$(psql -At -F'|' -c "SELECT round(cpu::numeric, 3), round(secs::numeric, 3), nrows, nbytes, hwm_kb
			FROM bench_decode('$slot', $bin, '$upto', VARIADIC $( [ "$arr" = NULL ] && echo "'{}'::text[]" || echo "ARRAY[$arr]"))")
		echo "$name|$line" >> "$results"
		printf '  round %d  %-28s %8s s CPU %8s s wall\n' "$r" "$name" "${line%%|*}" "$(echo "$line" | cut -d'|' -f2)"
	done
	if [ $r = 1 ]; then
		echo "  spilled (round 1, per slot; pg_kappa's slot was decoded 3 times):"
		psql -At -F' ' -c "SELECT '    ' || slot_name, 'spill_txns', spill_txns, 'spill_count', spill_count, 'spill_bytes', pg_size_pretty(spill_bytes) FROM pg_stat_replication_slots ORDER BY 1"
	fi
	r=$((r + 1))
done
echo "  load:     $(uptime | sed 's/.*load average/load average/') (after decoding)"
echo

# best CPU and wall-clock times per configuration, in the order of $configs:
# name|cpu|wall|rows|bytes|rss
best()
{
	awk -F'|' -v n="$1" '$1 == n {
		if (c == "" || $2 < c) { c = $2; l = $0 }
		if (w == "" || $3 < w) w = $3
	} END { split(l, f, "|"); print f[1] "|" c "|" w "|" f[4] "|" f[5] "|" f[6] }' "$results"
}
kappa=$(best pg_kappa | cut -d'|' -f2)
kappa_wall=$(best pg_kappa | cut -d'|' -f3)
floor=$(best "floor (pg_kappa, no table)" | cut -d'|' -f2)
printf '%-28s %8s %6s %8s %6s %8s %6s %10s %8s %7s\n' "plugin" "CPU s" "ratio" ">floor" "ratio" "wall s" "ratio" "rows" "MB out" "RSS MB"
printf '%s\n' "$configs" | while IFS='|' read -r name slot bin opts; do
	best "$name" | awk -F'|' -v k="$kappa" -v kw="$kappa_wall" -v f="$floor" '{
		printf "%-28s %8.3f %6.2f %8.3f %6s %8.3f %6.2f %10d %8.1f %7.1f\n", $1, $2, $2 / k, $2 - f,
			(k - f > 0 ? sprintf("%.2f", ($2 - f) / (k - f)) : "-"), $3, $3 / kw,
			$4, $5 / 1048576, $6 / 1024 }'
done
echo "(CPU s: the decoding backend's CPU time; wall s: elapsed time; each the best of $rounds rounds;"
echo " ratio: to pg_kappa's; >floor: CPU time above the floor's, what the plugin adds to decoding and"
echo " reassembly; RSS MB: VmHWM growth of the decoding backend during the call)"
echo

w2=$(best "wal2json v2" | cut -d'|' -f2)
po=$(best pgoutput | cut -d'|' -f2)
w2_wall=$(best "wal2json v2" | cut -d'|' -f3)
po_wall=$(best pgoutput | cut -d'|' -f3)
verdict() { if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then echo PASS; else echo MISS; fi; }
printf '%s  pg_kappa <= 0.67 x wal2json v2: CPU %.3f s vs %.3f s (%.2f x); wall %.3f s vs %.3f s (%.2f x)\n' \
	"$(verdict "$kappa" "$(awk -v w="$w2" 'BEGIN { print 0.67 * w }')")" "$kappa" "$w2" \
	"$(awk -v k="$kappa" -v w="$w2" 'BEGIN { print k / w }')" \
	"$kappa_wall" "$w2_wall" "$(awk -v k="$kappa_wall" -v w="$w2_wall" 'BEGIN { print k / w }')"
printf '%s  pg_kappa <= 1.2 x pgoutput:     CPU %.3f s vs %.3f s (%.2f x); wall %.3f s vs %.3f s (%.2f x)\n' \
	"$(verdict "$kappa" "$(awk -v p="$po" 'BEGIN { print 1.2 * p }')")" "$kappa" "$po" \
	"$(awk -v k="$kappa" -v p="$po" 'BEGIN { print k / p }')" \
	"$kappa_wall" "$po_wall" "$(awk -v k="$kappa_wall" -v p="$po_wall" 'BEGIN { print k / p }')"

# Peak RSS growth of the decoding backend on one 5M-row transaction.
psql -c "SELECT 'x' FROM pg_create_logical_replication_slot('b_rss', 'pg_kappa')" >/dev/null
t=$(now)
psql <<SQL
CREATE TABLE bench_big (LIKE bench INCLUDING ALL);
INSERT INTO bench_big
SELECT i, i::bigint * 1000003, round(i / 7.0, 4), 'customer ' || i || ' ' || md5(i::text),
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i % 2 = 0,
       jsonb_build_object('id', i, 'tag', 'x' || (i % 10), 'v', jsonb_build_array(i, i + 1))
  FROM generate_series(1, $n_big) i;
SQL
upto=$(psql -At -c "SELECT pg_current_wal_lsn()")
echo
echo "$n_big-row transaction written in $(elapsed "$t") s"
line=$(psql -At -F'|' <<SQL
SELECT pg_backend_pid() AS pid, bench_hwm() AS hwm0 \gset
SELECT :pid, :hwm0, round(secs::numeric, 3), nrows, nbytes, bench_hwm(), round(cpu::numeric, 3)
  FROM bench_decode('b_rss', false, '$upto', VARIADIC '{}'::text[]);
SQL
)
echo "$line" | awk -F'|' '{ printf "pg_kappa: %.3f s CPU, %.3f s wall, %d lines, %.1f MB; backend %d VmHWM %.1f MB -> %.1f MB\n", $7, $3, $4, $5 / 1048576, $1, $2 / 1024, $6 / 1024 }'
grow=$(echo "$line" | awk -F'|' '{ printf "%.1f", ($6 - $2) / 1024 }')
printf '%s  RSS growth on the %d-row transaction < 300 MB: %s MB\n' \
	"$(verdict "$grow" 299.999)" "$n_big" "$grow"
echo "  load:     $(uptime | sed 's/.*load average/load average/') (at end)"
