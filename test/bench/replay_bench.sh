#!/bin/sh
# test/bench/replay_bench.sh — kappa.replay (by compaction) against loading
# the same rows with COPY and recomputing the view's query (issue 11), and
# kappa.verify against a plain EXCEPT ALL both ways (issue 5).
#
# In a throwaway cluster under /tmp: src(id int primary key, g int, v bigint),
# ROWS rows, g = id % 1000; kappa.capture('src') (a snapshot in the log); view
#   agg = SELECT g, count(*) AS n, sum(v) AS s FROM src GROUP BY g   (default engine)
# CHANGES logged changes (UPDATE src SET v = v + 1 over id ranges, 10000 rows
# per transaction), the first half, then "mid" (the LSN, and src copied to a
# file), then the second half; kappa.wait('agg', pg_current_wal_insert_lsn()).
# Timed server-side (clock_timestamp() before and after, in one session;
# also the CPU time of that backend, from /proc/self/stat), best of RUNS (3)
# each, every replay checked afterwards (kappa.verify, or EXCEPT ALL against
# the query over the copied rows), the worker waited for:
#   0. the baseline: CREATE TABLE fresh (LIKE src); COPY fresh FROM the final
#      rows' file  +  CREATE TEMP TABLE r AS <the query over fresh>; run
#      once before every replay, so that each ratio compares runs made
#      under the same load (the machine may be shared);
#   1. SELECT kappa.replay('agg')                       (in place)
#   2. SELECT kappa.replay('agg', new_name => 'agg_green')   (a new view,
#      engine 1), then dropped;
#   3. SELECT kappa.replay('agg', until_lsn => mid, new_name => 'agg_mid')
#      (time travel to the middle; compared with the query over the rows
#      copied at mid), then dropped;
#   4. with pg_kappa.engine = 2: a new view (which sets REPLICA IDENTITY
#      FULL on src, after all changes), then that view replayed in place.
#   Target: each <= 2x the baseline (COPY + query), wall time; the CPU
#   ratio is shown too.  Each replay's steps (from its DEBUG1 progress
#   lines) are shown; a replay that kills its backend is reported CRASHED,
#   one that errors FAILED; the run goes on.  The replaying backend's RSS
#   (anonymous memory, sampled every 0.2 s from /proc) and its progress in
#   pg_stat_activity.query are sampled too.
# 5. SELECT count(*) FROM kappa.verify('agg') against
#    (q EXCEPT ALL agg) UNION ALL (agg EXCEPT ALL q)  (best of 3 each,
#    alternating).  Target: <= 1.5x.
# Also: the log's size, and reading it (issue 11): SELECT count(*) FROM
# kappa.events() and COPY (SELECT e FROM kappa.events() e) TO '/dev/null'
# against COPY ... TO '/dev/null' of the same records kept as jsonb in a
# plain table (ev), and of src's final rows, in records (rows) per second,
# best of RUNS each, alternating, ratios printed.
# Run:  sh test/bench/replay_bench.sh  (ROWS=2000000 CHANGES=1000000; quick:
#       ROWS=20000 CHANGES=10000); RUNS=3; BENCH_KEEP=1 keeps the cluster;
#       PG_CONFIG.
# Server: fsync=off, shared_buffers=512MB, work_mem=16MB,
# maintenance_work_mem=256MB (replay sorts within it), no parallel query
# (for the baseline's query and replay's view query alike), autovacuum
# on, ulimit -v BENCH_MEM_GB (see below).  max_parallel_maintenance_workers
# is BENCH_READER (1): replay reads the log in a parallel worker while its
# backend sorts (replay_reader.c); it also lets an index build of engine 1's
# copies take a worker.  The CPU column counts the replaying backend only.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$($PG_CONFIG --bindir) so=$($PG_CONFIG --pkglibdir)/pg_kappa.so
rows=${ROWS:-2000000} changes=${CHANGES:-1000000} runs=${RUNS:-3}
[ -f "$so" ] || { echo "missing $so (make install)" >&2; exit 1; }

# as root the server and clients run as the postgres account
if [ "$(id -u)" = 0 ]; then as() { runuser -u postgres -- "$@"; }; dbuser=postgres
else as() { "$@"; }; dbuser=$(id -un); fi

dir=$(mktemp -d /tmp/pg_kappa_rbench.XXXXXX) port=$((20000 + $$ % 10000))
chmod 755 "$dir"; [ "$(id -u)" != 0 ] || chown -R postgres: "$dir"
sampler=
cleanup()
{
	[ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
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
		"fsync = off" "shared_buffers = 512MB" "work_mem = 16MB" "maintenance_work_mem = 256MB" \
		"# one process per query, the baseline's and replay's alike; replay's" \
		"# log reader is a parallel worker (BENCH_READER=0: none)" \
		"max_parallel_workers_per_gather = 0" "max_parallel_maintenance_workers = ${BENCH_READER:-1}"
} > "$dir/bench.conf"
as sh -c "cat '$dir/bench.conf' >> '$dir/data/postgresql.conf'"
# a backstop: past BENCH_MEM_GB (default 3/4 of RAM) a backend fails, not
# the OOM killer
mem_kb=$(awk -v g="${BENCH_MEM_GB:-0}" '/^MemTotal/ { printf "%d", (g > 0 ? g * 1048576 : $2 * 3 / 4) }' /proc/meminfo)
as sh -c "ulimit -v $mem_kb && exec '$bindir/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w \
	-o \"-p $port -k $dir -c listen_addresses=''\" start" >/dev/null

psql() { as env PGOPTIONS='-c client_min_messages=warning' "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$dbuser" -d postgres -v ON_ERROR_STOP=1 "$@"; }
q() { psql -At -c "$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y > 0) printf "%.2f", x / y; else printf "-" }'; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISSED; fi; }
min() { printf '%s\n' "$@" | sort -g | head -1; }
# seconds one statement takes, measured by the server in its session, and
# the CPU seconds its backend used (utime + stime, 10 ms ticks): "wall cpu";
# its DEBUG1 lines (replay's steps) go to $dir/err
timed()
{
	psql -At <<SQL 2>"$dir/err" | tail -1
SELECT clock_timestamp() AS t0, (split_part(s, ' ', 14)::int + split_part(s, ' ', 15)::int) AS c0
FROM pg_read_file('/proc/self/stat') s \gset
SET client_min_messages = debug1;
$1 \g /dev/null
RESET client_min_messages;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3) || ' ' ||
       round(((split_part(s, ' ', 14)::int + split_part(s, ' ', 15)::int) - :c0) / 100.0, 2)
FROM pg_read_file('/proc/self/stat') s;
SQL
}
wall() { echo "${1%% *}"; }
cpu() { echo "${1#* }"; }
# the steps of the last replay, from its progress lines: each line says how
# long the step before it took
steps()
{
	sed -n 's/.*kappa\.replay([^)]*): \(.*\) (\([0-9.]*\) s after the step before)$/\2|\1/p' "$dir/err" |
	awk -F'|' '
		function cat(s) { sub(/ [0-9].*| of .*| over .*|:.*| \(.*/, "", s); return s }
		NR > 1 { t[prev] += $1; if (!(prev in seen)) { seen[prev] = 1; order[++n] = prev } }
		{ prev = cat($2) }
		END { for (i = 1; i <= n; i++) printf "%s%s %.2f", (i > 1 ? ", " : ""), order[i], t[order[i]]; print "" }'
}
# sample the replaying backend: its anonymous memory (max, MB) and progress
sample_start()
{
	: > "$dir/rss"; : > "$dir/progress"
	(
		while :; do
			psql -At -c "SELECT pid || '|' || query FROM pg_stat_activity WHERE query LIKE 'kappa.replay(%'" 2>/dev/null |
			while IFS='|' read -r pid text; do
				awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" >> "$dir/rss" 2>/dev/null || true
				echo "$text" >> "$dir/progress"
			done
			sleep 0.2
		done
	) &
	sampler=$!
}
sample_stop()
{
	kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=
	rss_mb=$(sort -n "$dir/rss" | tail -1 | awk '{ printf "%d", $1 / 1024 }')
	[ -n "$rss_mb" ] || rss_mb="-"
}
query='SELECT g, count(*) AS n, sum(v) AS s FROM src GROUP BY g'

echo "pg_kappa replay and verify benchmark"
echo "  command:  ROWS=$rows CHANGES=$changes RUNS=$runs sh test/bench/replay_bench.sh"
echo "  library:  $so ($(md5sum < "$so" | cut -c1-12)); $(git -C "$top" rev-parse --abbrev-ref HEAD 2>/dev/null || echo '?') at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
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
# one transaction per statement, 10000 rows each, wrapping around src
updates()
{
	awk -v from="$1" -v n="$2" -v r="$rows" 'BEGIN { for (d = from; d < n; d += b - a + 1) { a = d % r + 1; b = a + 9999
		if (b > r) b = r; if (b > a + n - d - 1) b = a + n - d - 1; print "UPDATE src SET v = v + 1 WHERE id BETWEEN " a " AND " b ";" } }' |
		psql >/dev/null
}
t=$(now)
half=$((changes / 2))
updates 0 "$half"
mid=$(q "SELECT pg_current_wal_insert_lsn()")
q "COPY src TO '$dir/mid.copy'" >/dev/null
updates "$half" "$changes"
upd=$(elapsed "$t")
t=$(now) i=0
until [ "$(q "SELECT kappa.wait('agg', pg_current_wal_insert_lsn(), '600s')")" = t ]; do
	i=$((i + 1)); [ $i -lt 6 ] || { echo "agg did not catch up in an hour" >&2; exit 1; }
done
echo "  changes:  $changes updates in $upd s (mid at $mid); the worker had applied them $(elapsed "$t") s later"
echo "  log:      $(q "SELECT count(*) || ' rows, ' || sum(change_count) || ' records, ' || pg_size_pretty(sum(pg_column_size(events))) || ' stored, ' || pg_size_pretty(sum(octet_length(events))) || ' of text' FROM kappa.event_log")"
q "COPY src TO '$dir/final.copy'" >/dev/null
psql -c "VACUUM ANALYZE" -c "CHECKPOINT"
echo

bad() { q "SELECT count(*) FROM kappa.verify('$1')"; }
diff_mid() { q "SELECT count(*) FROM ((SELECT * FROM $1 EXCEPT ALL SELECT * FROM mid_r) UNION ALL (SELECT * FROM mid_r EXCEPT ALL SELECT * FROM $1)) d"; }
[ "$(bad agg)" = 0 ] || { echo "agg differs from its query before replay" >&2; exit 1; }
psql >/dev/null <<SQL
CREATE TABLE mid_src (LIKE src);
COPY mid_src FROM '$dir/mid.copy';
CREATE TABLE mid_r AS SELECT g, count(*) AS n, sum(v) AS s FROM mid_src GROUP BY g;
DROP TABLE mid_src;
SQL

# the baseline: the final rows loaded with COPY into a fresh table, and the
# query over them: "wall cpu"
baseline()
{
	c=$(timed "CREATE TABLE fresh (LIKE src); COPY fresh FROM '$dir/final.copy'")
	r=$(timed "CREATE TEMP TABLE r AS $(echo "$query" | sed 's/FROM src/FROM fresh/')")
	q "DROP TABLE fresh" >/dev/null
	echo "$(awk -v a="$(wall "$c")" -v b="$(wall "$r")" 'BEGIN { print a + b }') $(awk -v a="$(cpu "$c")" -v b="$(cpu "$r")" 'BEGIN { print a + b }')"
}
bases=
for i in $(seq "$runs"); do
	c=$(timed "CREATE TABLE fresh (LIKE src); COPY fresh FROM '$dir/final.copy'")
	r=$(timed "CREATE TEMP TABLE r AS $(echo "$query" | sed 's/FROM src/FROM fresh/')")
	q "DROP TABLE fresh" >/dev/null
	bases="$bases; COPY $c + query $r"
done

# replay: $1 label, $2 statement, $3 check after (a command printing 0), $4
# cleanup after.  Each run is preceded by a run of the baseline, so that
# both see the same load; prints "ratio; details" with the ratios of the
# best replay to the best baseline, of wall and of CPU time
replay()
{
	bw= bc= rw= rc= detail= i=0
	while [ $i -lt "$runs" ]; do
		i=$((i + 1))
		b=$(baseline)
		# the worker gets past the baseline's COPY first: a replay into a
		# new view waits for it to have logged everything up to then
		q "SELECT kappa.wait('agg', pg_current_wal_insert_lsn(), '600s')" >/dev/null
		n0=$(grep -c 'terminated by signal' "$dir/server.log" || true)
		sample_start
		s=$(timed "$2")
		sample_stop
		if [ -z "$s" ]; then
			s="FAILED: $(grep -m1 ERROR "$dir/err" | sed 's/.*ERROR: *//')"
			[ "$(grep -c 'terminated by signal' "$dir/server.log" || true)" = "$n0" ] || s=CRASHED
			j=0; until q "SELECT 1" >/dev/null 2>&1; do j=$((j + 1)); [ $j -lt 120 ] || exit 1; sleep 1; done
			echo "MISSED  $s"; return
		fi
		st=$(steps)
		t=$(now)	# the worker then decodes the replay's own writes
		[ "$(q "SELECT kappa.wait('agg', timeout => '600s')")" = t ] && [ "$($3)" = 0 ] ||
			{ echo "$1 wrong after replay" >&2; exit 1; }
		catch=$(elapsed "$t")
		[ -z "$4" ] || q "$4" >/dev/null
		[ -n "$bw" ] && awk -v a="$(wall "$b")" -v b="$bw" 'BEGIN { exit !(a >= b) }' || bw=$(wall "$b")
		[ -n "$bc" ] && awk -v a="$(cpu "$b")" -v b="$bc" 'BEGIN { exit !(a >= b) }' || bc=$(cpu "$b")
		[ -n "$rc" ] && awk -v a="$(cpu "$s")" -v b="$rc" 'BEGIN { exit !(a >= b) }' || rc=$(cpu "$s")
		if [ -z "$rw" ] || awk -v a="$(wall "$s")" -v b="$rw" 'BEGIN { exit !(a < b) }'; then
			rw=$(wall "$s")
			detail="steps (s): $st; backend RssAnon max ${rss_mb} MB; worker caught up ${catch} s after"
			cp "$dir/progress" "$dir/progress.last"
		fi
	done
	rr=$(ratio "$rw" "$bw")
	echo "$(verdict "$rw <= 2 * $bw")  $rw s = ${rr}x baseline $bw s (CPU: $rc s = $(ratio "$rc" "$bc")x baseline $bc s); $detail"
}
# reading the log: kappa.events() against COPY ... TO of the same records
# (the jsonb kappa.events() returns, kept in a plain table) and of the
# source's final rows; best of RUNS each, alternating, records per second
nev=$(q "SELECT count(*) FROM kappa.events()")
q "CREATE TABLE ev AS SELECT e FROM kappa.events() e" >/dev/null; q "VACUUM ANALYZE ev" >/dev/null
evs= evc= cpe= cps=
for i in $(seq "$runs"); do
	evs="$evs $(wall "$(timed "SELECT count(*) FROM kappa.events()")")"
	evc="$evc $(wall "$(timed "COPY (SELECT e FROM kappa.events() e) TO '/dev/null'")")"
	cpe="$cpe $(wall "$(timed "COPY ev TO '/dev/null'")")"
	cps="$cps $(wall "$(timed "COPY src TO '/dev/null'")")"
done
q "DROP TABLE ev" >/dev/null
# shellcheck disable=SC2086
ev=$(min $evs); evc1=$(min $evc); cpe1=$(min $cpe); cps1=$(min $cps)
per_s() { awk -v n="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.0f", n / t; else printf "-" }'; }
r1=$(replay "in place" "SELECT kappa.replay('agg')" "bad agg" "")
prog=$(sort -u "$dir/progress.last" 2>/dev/null | head -3 | tr '\n' '|' || true)
r2=$(replay "new view" "SELECT kappa.replay('agg', new_name => 'agg_green')" "bad agg_green" "SELECT kappa.drop_view('agg_green')")
r3=$(replay "time travel" "SELECT kappa.replay('agg', until_lsn => '$mid', new_name => 'agg_mid')" "diff_mid agg_mid" "DROP TABLE agg_mid")
# engine 2: a new view, then that view in place
r4=$(replay "new view, engine 2" "SET pg_kappa.engine = 2; SELECT kappa.replay('agg', new_name => 'agg_e2')" "bad agg_e2" "SELECT kappa.drop_view('agg_e2')")
psql -c "SET pg_kappa.engine = 2" -c "SELECT kappa.replay('agg', new_name => 'agg_e2')" >/dev/null
r5=$(replay "in place, engine 2" "SELECT kappa.replay('agg_e2')" "bad agg_e2" "")

echo "0. kappa.events() throughput against COPY ... TO, best of $runs (s: events()$evs; COPY of events()$evc; COPY ev$cpe; COPY src$cps)"
echo "  SELECT count(*) FROM kappa.events():            $nev records in $ev s = $(per_s "$nev" "$ev") records/s"
echo "  COPY (SELECT e FROM kappa.events() e) TO file:  $nev records in $evc1 s = $(per_s "$nev" "$evc1") records/s"
echo "  COPY ev TO file (the same records as jsonb):    $nev rows in $cpe1 s = $(per_s "$nev" "$cpe1") rows/s"
echo "  COPY src TO file (the final rows of the table): $rows rows in $cps1 s = $(per_s "$rows" "$cps1") rows/s"
echo "  ratio events()/COPY of the same records: $(ratio "$(per_s "$nev" "$ev")" "$(per_s "$nev" "$cpe1")") (count), $(ratio "$(per_s "$nev" "$evc1")" "$(per_s "$nev" "$cpe1")") (COPY of events()); events() records/s per COPY src rows/s: $(ratio "$(per_s "$nev" "$ev")" "$(per_s "$rows" "$cps1")")"
echo
echo "1. replay by compaction vs COPY + recompute (target: replay <= 2x baseline)"
echo "  baseline: COPY of the final rows into a fresh table + the query over it, wall and CPU s:"
echo "            ${bases#; }"
echo "            (and once before every replay, below: the best of those is the baseline of that line)"
echo "  reading the log alone (count(*) FROM kappa.events()): $ev s"
echo "  kappa.replay('agg'), in place: $r1"
echo "      progress seen in pg_stat_activity.query: $prog"
echo "  kappa.replay('agg', new_name => ...), a new view: $r2"
echo "  kappa.replay('agg', until_lsn => mid, new_name => ...), time travel: $r3"
echo "  engine 2, a new view: $r4"
echo "  engine 2, in place: $r5"
echo

ea="SELECT count(*) FROM ((($query) EXCEPT ALL SELECT * FROM agg) UNION ALL (SELECT * FROM agg EXCEPT ALL ($query))) x"
vf= ex=
for i in 1 2 3; do vf="$vf $(wall "$(timed "SELECT count(*) FROM kappa.verify('agg')")")" ex="$ex $(wall "$(timed "$ea")")"; done
# shellcheck disable=SC2086
v=$(min $vf); e=$(min $ex)
echo "2. verify vs EXCEPT ALL both ways"
echo "  kappa.verify('agg'):  $v s (best of$vf)"
echo "  EXCEPT ALL both ways: $e s (best of$ex)"
echo "  $(verdict "$v <= 1.5 * $e")  verify/EXCEPT ALL $(ratio "$v" "$e")x (target <= 1.5x)"
echo
echo "  load:     $(uptime | sed 's/.*load average: //') (at end)"
