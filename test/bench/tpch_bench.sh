#!/bin/sh
# test/bench/tpch_bench.sh — TPC-H-derived views, engine 1 against engine 2
# against recomputing the query.
#
# Creates a throwaway cluster under /tmp (as root the server runs as the
# postgres account), loads TPC-H-shaped tables at scale factor BENCH_SF
# (test/bench/tpch_gen.sql: SQL only, deterministic), with the TPC-H
# primary keys and indexes on the foreign-key join columns, and then, for
# each query Q1, Q3, Q5, Q6, Q10, Q12, Q14 (adapted to what derived views
# accept: no ORDER BY/LIMIT, date literals, Q14's ratio as two sums) and
# each engine, alone (create one view, measure, drop it):
#
#   create  kappa.create_view's time, and until kappa.wait says the view is
#           fresh (engine 1 decodes the copies it wrote); its NOTICEs
#   rounds  BENCH_ROUNDS (default 3) refresh rounds, a second apart, each
#           one transaction: TPC-H RF1 (0.1% new orders with their lines),
#           RF2 (0.1% of orders deleted with their lines), 0.1% of lineitem
#           rows updated (quantity, price, discount) and 0.1% of customer
#           rows (account balance, market segment); then the time from its
#           commit (the commit record's timestamp, track_commit_timestamp:
#           a writer the scheduler leaves waiting just after its commit
#           would otherwise start the clock late) until
#           kappa.wait(view, timeout => '30min') returns.  The
#           first round after create_view (and the VACUUM ANALYZE of the
#           sources, which makes the view plan its statements again) is
#           reported on its own; the view's commit-to-fresh time and ratio
#           are the median of the later rounds, a view's steady state (one
#           round: that round)
#   verify  kappa.verify(view) after every round: every difference is a bug
#   recompute  CREATE TABLE AS the view's query on the same data, best of 2
#           (default settings: parallel query allowed), and with
#           max_parallel_workers_per_gather = 0 (serial)
#   storage the view's internal schema kappa_v<id> (pg_total_relation_size
#           of its tables) after create and after the round; the derived
#           table itself; against the sources' total size
#
# Between views: the view is dropped, the worker exits (last view), and the
# sources' replica identity is set back to DEFAULT, so engine 2's
# create_view sets FULL again (its NOTICE) and engine 1 runs with DEFAULT.
# The engines alternate which goes first from one view to the next.  Each
# round changes the data (new keys, other rows), so later rounds run on
# slightly different data; the recompute is always on the same data as the
# round it is compared with.
#
# Targets (issue "Delta engine v2"): engine 2 commit-to-fresh <= 0.1 x
# recompute for every view; all seven views' internal state together
# <= 5% of the sources' size for engine 2.
#
# Writes BENCH_PLOT_DIR/tpch_ratio.dat and tpch_ratio.png (per view, each
# engine's commit-to-fresh / recompute, log scale) when gnuplot is there.
#
# Environment:
#   BENCH_SF=0.2           scale factor (default 0.2: lineitem ~1.2M rows)
#   BENCH_VIEWS="q1 q3 .." views to run (default all seven)
#   BENCH_ENGINES="1 2"    engines to run (default both)
#   BENCH_ROUNDS=3         refresh rounds per view (the first reported apart)
#   BENCH_EXPLAIN=1        auto_explain in the cluster (log_nested_statements,
#                          log_analyze, buffers): the worker's statements of
#                          each round slower than BENCH_EXPLAIN_MS (100) are
#                          kept in BENCH_EXPLAIN_DIR (default $dir/explain;
#                          kept with the cluster only if BENCH_KEEP=1) and
#                          the slowest listed after each round.  Timing
#                          instrumentation slows the worker: do not compare
#                          such a run's ratios with a plain one.
#   BENCH_PLOT_DIR=dir     where the .dat and .png go (default test/bench;
#                          empty: none)
#   BENCH_CONF="..."       extra postgresql.conf lines
#   BENCH_PREWARM=1        before each view's rounds, load the sources and
#                          their indexes into shared buffers (pg_prewarm,
#                          shipped with PostgreSQL), as on a server that
#                          keeps them cached: give shared_buffers room for
#                          them (BENCH_CONF="shared_buffers = 6GB").  The
#                          recompute's scans read through a small ring of
#                          buffers either way, from the kernel's cache.
#   BENCH_KEEP=1           keep the cluster (and print where it is)
#   PG_CONFIG              pg_config to use (default: from PATH)
#   BENCH_STAGE=1          (default) run this tree's pg_kappa: stage a private
#                          copy of PG_CONFIG's installation with it (make install
#                          DESTDIR=..., as test/check.sh does); 0: use the
#                          pg_kappa installed there
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
sf=${BENCH_SF:-0.2}
views=${BENCH_VIEWS:-q1 q3 q5 q6 q10 q12 q14}
engines=${BENCH_ENGINES:-1 2}
rounds=${BENCH_ROUNDS:-3}
explain=${BENCH_EXPLAIN:-0}
explain_ms=${BENCH_EXPLAIN_MS:-100}
prewarm=${BENCH_PREWARM:-0}
plotdir=${BENCH_PLOT_DIR-$top/test/bench}

if [ "$(id -u)" = 0 ]; then
	as() { runuser -u postgres -- "$@"; }
	dbuser=postgres
else
	as() { "$@"; }
	dbuser=$(id -un)
fi

dir=$(mktemp -d /tmp/pg_kappa_tpch.XXXXXX)
chmod 755 "$dir"
port=$((20000 + $$ % 10000))
bindir=$($PG_CONFIG --bindir)

cleanup()
{
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "cluster kept: $bindir/pg_ctl -D $dir/data stop; psql -h $dir -p $port -U $dbuser postgres"
		return
	fi
	[ ! -d "$dir/data" ] || as "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# this tree's pg_kappa in a staged copy of PG_CONFIG's installation, or the installed one
if [ "${BENCH_STAGE:-1}" != 0 ]; then
	inst=$dir/inst
	libdir=$($PG_CONFIG --pkglibdir) sharedir=$($PG_CONFIG --sharedir)
	mkdir -p "$inst$bindir" "$inst$libdir" "$inst$sharedir"
	cp -a "$bindir/." "$inst$bindir/"
	cp -a "$libdir/." "$inst$libdir/"
	cp -a "$sharedir/." "$inst$sharedir/"
	make -C "$top" --no-print-directory -s install DESTDIR="$inst" PG_CONFIG="$PG_CONFIG" >/dev/null
	PG_CONFIG=$inst$bindir/pg_config
	bindir=$($PG_CONFIG --bindir)
	staged=" (staged from this tree: make install DESTDIR=$inst)"
else
	staged=" (installed)"
fi
so=$($PG_CONFIG --pkglibdir)/pg_kappa.so
[ -f "$so" ] || { echo "missing $so (make install, or BENCH_STAGE=1)" >&2; exit 1; }
[ "$(id -u)" != 0 ] || chown -R postgres: "$dir"

as "$bindir/initdb" -D "$dir/data" -A trust -U "$dbuser" >/dev/null
{
	sh "$top/test/conf.sh" "$bindir"
	cat <<CONF
# benchmark settings (later lines win over test/conf.sh's)
logical_decoding_work_mem = 64MB
max_wal_size = 50GB
checkpoint_timeout = 1h
track_commit_timestamp = on
fsync = off
shared_buffers = 1GB
work_mem = 32MB
maintenance_work_mem = 512MB
max_connections = 50
log_line_prefix = '%m [%p] %b: '
CONF
	if [ "$explain" = 1 ]; then
		cat <<CONF
shared_preload_libraries = 'pg_kappa,auto_explain'
auto_explain.log_min_duration = '${explain_ms}ms'
auto_explain.log_nested_statements = on
auto_explain.log_analyze = on
auto_explain.log_buffers = on
CONF
	fi
	[ -z "${BENCH_CONF:-}" ] || printf '%s\n' "$BENCH_CONF"
} > "$dir/bench.conf"
as sh -c "cat '$dir/bench.conf' >> '$dir/data/postgresql.conf'"
as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
	-o "-p $port -k $dir -c listen_addresses=''" start >/dev/null

psqlx() { as "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$dbuser" -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql() { PGOPTIONS='-c client_min_messages=warning' psqlx "$@"; }
q() { psql -At -c "$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
load() { uptime | sed 's/.*load average: //'; }
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)
# the "Time: N ms" lines psql's \timing printed, in order
timings() { awk '/^Time: / { print $2 }'; }
export PGOPTIONS=

echo "pg_kappa TPC-H derived views benchmark, SF $sf"
echo "  command:  $(env | grep '^BENCH_' | sort | tr '\n' ' ')sh test/bench/tpch_bench.sh"
echo "  library:  $so$staged ($(md5sum < "$so" | cut -c1-12)); tree at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$top" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src')"
echo "  server:   $(q 'SELECT version()' | sed 's/ on x86_64.*//')"
echo "  machine:  $(nproc) cores (nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -h | awk '/^Mem:/ { print $2 }') RAM (free -h)"
echo "  settings: fsync=off, shared_buffers=$(q 'SHOW shared_buffers')$([ "$prewarm" = 1 ] && echo ' (sources prewarmed)'), work_mem=32MB, autovacuum on, max_parallel_workers_per_gather=$(q 'SHOW max_parallel_workers_per_gather'), pg_kappa.batch_max_changes=$(q 'SHOW pg_kappa.batch_max_changes'), naptime=$(q 'SHOW pg_kappa.naptime')$([ "$explain" = 1 ] && echo ", auto_explain (analyze, buffers) >= ${explain_ms}ms")"
echo "  date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  load:     $(load) (at start)"
echo

t=$(now)
psql -c "CREATE EXTENSION pg_kappa"
psql -v sf="$sf" -f "$top/test/bench/tpch_gen.sql" >/dev/null
gen_secs=$(elapsed "$t")
psql >/dev/null <<'SQL'
CREATE TABLE results (view text, engine int, kind text, create_ms float8, fresh_ms float8,
                      round_ms float8, changes bigint, lag_ms float8, worker_cpu_s float8,
                      recompute_ms float8, recompute_serial_ms float8, view_rows bigint,
                      internal_create bigint, internal_round bigint, view_bytes bigint,
                      internal_tables text, verify_missing bigint, verify_extra bigint, internal_state bigint,
                      first_lag_ms float8, lags text, first_ratio float8);
CREATE TABLE findings (view text, engine int, kind text, "row" jsonb, count bigint);
CREATE FUNCTION internal_bytes(v regclass) RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
      FROM kappa.views w JOIN pg_class c ON c.relnamespace = ('kappa_v' || w.id)::regnamespace
     WHERE w.relid = v AND c.relkind IN ('r', 'm', 'p')
$$;
-- what stays between batches: engine 2's per-group state g, engine 1's copies a_<n>
-- (the other tables, d_<n>, dq, dc, k, p, w_<n>, are emptied after every batch, d_<n> once
-- the worker is idle)
CREATE FUNCTION internal_state_bytes(v regclass) RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
      FROM kappa.views w JOIN pg_class c ON c.relnamespace = ('kappa_v' || w.id)::regnamespace
     WHERE w.relid = v AND c.relkind IN ('r', 'm', 'p') AND (c.relname = 'g' OR c.relname LIKE 'a\_%')
$$;
CREATE FUNCTION internal_tables(v regclass) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || pg_size_pretty(pg_total_relation_size(c.oid)), ' ' ORDER BY c.relname)
      FROM kappa.views w JOIN pg_class c ON c.relnamespace = ('kappa_v' || w.id)::regnamespace
     WHERE w.relid = v AND c.relkind IN ('r', 'm', 'p', 'v')
$$;
CREATE TABLE round_log (r int, view text, engine int, round_ms float8, lag_ms float8, ok bool,
                        new_orders bigint, new_lines bigint, del_orders bigint, del_lines bigint,
                        upd_lines bigint, upd_customers bigint);
-- One refresh round against view v, round number r: RF1, RF2, updates,
-- one transaction; then from its commit until kappa.wait returns.
CREATE PROCEDURE bench_round(v regclass, r int, eng int) LANGUAGE plpgsql AS $$
DECLARE
    p tpch_params;
    n int;
    t0 timestamptz;
    t_round float8;
    t_lag float8;
    ok bool;
    x xid8;
    rf2 int[];
    c_no bigint; c_nl bigint; c_do bigint; c_dl bigint; c_ul bigint; c_uc bigint;
BEGIN
    SELECT * INTO p FROM tpch_params;
    n := greatest(round(p.n_orders * 0.001), 1);
    PERFORM setseed(r / 1000.0);
    t0 := clock_timestamp();
    -- RF1: new orders and their lines
    PERFORM tpch_stage_orders(n, r);
    c_nl := tpch_insert_staged();
    c_no := n;
    -- RF2: 0.1% of orders and their lines deleted (not those just inserted)
    -- (no DDL in the round: a temporary table or a TRUNCATE would make the
    -- worker forget its catalog caches and plans, which has its own cost)
    SELECT array_agg(o_orderkey) INTO rf2 FROM orders TABLESAMPLE BERNOULLI (0.1) REPEATABLE (r)
     WHERE o_orderkey NOT IN (SELECT o_orderkey FROM tpch_stage);
    DELETE FROM lineitem WHERE l_orderkey = ANY (rf2);
    GET DIAGNOSTICS c_dl = ROW_COUNT;
    DELETE FROM orders WHERE o_orderkey = ANY (rf2);
    GET DIAGNOSTICS c_do = ROW_COUNT;
    -- 0.1% of lineitem: quantity (and so price) and discount
    UPDATE lineitem l SET l_quantity = x.q,
                          l_extendedprice = round(l.l_extendedprice / l.l_quantity * x.q, 2),
                          l_discount = x.d
      FROM (SELECT l_orderkey, l_linenumber, (1 + floor(random() * 50))::numeric AS q,
                   floor(random() * 11)::numeric / 100 AS d
              FROM lineitem TABLESAMPLE BERNOULLI (0.1) REPEATABLE (r + 1000)) x
     WHERE l.l_orderkey = x.l_orderkey AND l.l_linenumber = x.l_linenumber;
    GET DIAGNOSTICS c_ul = ROW_COUNT;
    -- 0.1% of customer: balance and market segment
    UPDATE customer c SET c_acctbal = x.b, c_mktsegment = x.s
      FROM (SELECT c_custkey, round((random() * 10998.99 - 999.99)::numeric, 2) AS b,
                   (ARRAY['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'])[1 + floor(random() * 5)::int] AS s
              FROM customer TABLESAMPLE BERNOULLI (0.1) REPEATABLE (r + 2000)) x
     WHERE c.c_custkey = x.c_custkey;
    GET DIAGNOSTICS c_uc = ROW_COUNT;
    DELETE FROM tpch_stage;
    x := pg_current_xact_id();
    COMMIT;
    t_round := extract(epoch FROM clock_timestamp() - t0) * 1000;
    ok := kappa.wait(v, pg_current_wal_insert_lsn(), '30min');
    t_lag := extract(epoch FROM clock_timestamp() - pg_xact_commit_timestamp(x::text::xid)) * 1000;
    INSERT INTO round_log VALUES (r, v::text, eng, t_round, t_lag, ok, c_no, c_nl, c_do, c_dl, c_ul, c_uc);
END $$;
SQL

# the views' queries (ORDER BY, LIMIT dropped; date literals; Q14 as two sums)
query()
{
	case $1 in
	q1) cat <<'Q'
SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price,
       sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
       sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
       avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc,
       count(*) AS count_order
  FROM lineitem
 WHERE l_shipdate <= date '1998-09-02'
 GROUP BY l_returnflag, l_linestatus
Q
	;;
	q3) cat <<'Q'
SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
  FROM customer, orders, lineitem
 WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
   AND o_orderdate < date '1995-03-15' AND l_shipdate > date '1995-03-15'
 GROUP BY l_orderkey, o_orderdate, o_shippriority
Q
	;;
	q5) cat <<'Q'
SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue
  FROM customer, orders, lineitem, supplier, nation, region
 WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey
   AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
   AND r_name = 'ASIA' AND o_orderdate >= date '1994-01-01' AND o_orderdate < date '1995-01-01'
 GROUP BY n_name
Q
	;;
	q6) cat <<'Q'
SELECT sum(l_extendedprice * l_discount) AS revenue
  FROM lineitem
 WHERE l_shipdate >= date '1994-01-01' AND l_shipdate < date '1995-01-01'
   AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24
Q
	;;
	q10) cat <<'Q'
SELECT c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) AS revenue, c_acctbal, n_name,
       c_address, c_phone, c_comment
  FROM customer, orders, lineitem, nation
 WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey
   AND o_orderdate >= date '1993-10-01' AND o_orderdate < date '1994-01-01'
   AND l_returnflag = 'R' AND c_nationkey = n_nationkey
 GROUP BY c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
Q
	;;
	q12) cat <<'Q'
SELECT l_shipmode,
       sum(CASE WHEN o_orderpriority = '1-URGENT' OR o_orderpriority = '2-HIGH' THEN 1 ELSE 0 END) AS high_line_count,
       sum(CASE WHEN o_orderpriority <> '1-URGENT' AND o_orderpriority <> '2-HIGH' THEN 1 ELSE 0 END) AS low_line_count
  FROM orders, lineitem
 WHERE o_orderkey = l_orderkey AND l_shipmode IN ('MAIL', 'SHIP')
   AND l_commitdate < l_receiptdate AND l_shipdate < l_commitdate
   AND l_receiptdate >= date '1994-01-01' AND l_receiptdate < date '1995-01-01'
 GROUP BY l_shipmode
Q
	;;
	q14) cat <<'Q'
SELECT sum(CASE WHEN p_type LIKE 'PROMO%' THEN l_extendedprice * (1 - l_discount) ELSE 0 END) AS promo_revenue,
       sum(l_extendedprice * (1 - l_discount)) AS revenue
  FROM lineitem, part
 WHERE l_partkey = p_partkey AND l_shipdate >= date '1995-09-01' AND l_shipdate < date '1995-10-01'
Q
	;;
	*) echo "unknown view $1" >&2; exit 1;;
	esac
}

sources="region, nation, supplier, customer, part, partsupp, orders, lineitem"
src_bytes=$(q "SELECT sum(pg_total_relation_size(c)) FROM unnest('{region,nation,supplier,customer,part,partsupp,orders,lineitem}'::regclass[]) c")
src7_bytes=$(q "SELECT sum(pg_total_relation_size(c)) FROM unnest('{region,nation,supplier,customer,part,orders,lineitem}'::regclass[]) c")
echo "data: generated and indexed in $gen_secs s (test/bench/tpch_gen.sql, SF $sf)"
psql -At -F'|' -c "SELECT c::text, pg_size_pretty(pg_table_size(c)), pg_size_pretty(pg_indexes_size(c))
                   FROM unnest('{region,nation,supplier,customer,part,partsupp,orders,lineitem}'::regclass[]) c" > "$dir/sizes.txt"
while IFS='|' read -r t ts is; do
	printf '  %-9s %10s rows  table %8s  indexes %8s\n' "$t" "$(q "SELECT count(*) FROM $t")" "$ts" "$is"
done < "$dir/sizes.txt"
echo "  all eight: $(q "SELECT pg_size_pretty($src_bytes::bigint)") with indexes; the seven the queries read (not partsupp): $(q "SELECT pg_size_pretty($src7_bytes::bigint)")"
echo

# wait until no apply worker runs and no slot is left (views dropped)
settle()
{
	i=0
	while [ "$(q "SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM kappa.worker_status() WHERE pid IS NOT NULL)")" != 0 ]; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "slots or workers left over" >&2; q "SELECT * FROM pg_replication_slots"; exit 1; }
		sleep 0.1
	done
}

# byte offset of the server log (auto_explain output of a round is cut out of it)
logpos() { wc -c < "$dir/server.log"; }
explain_dir=${BENCH_EXPLAIN_DIR:-$dir/explain}
[ "$explain" != 1 ] || mkdir -p "$explain_dir"

round=0
run_one()	# view engine
{
	v=$1 e=$2 name=tpch_$1
	q "SELECT format('ALTER TABLE %s REPLICA IDENTITY DEFAULT', c) FROM unnest('{$(echo "$sources" | tr -d ' ')}'::regclass[]) c" |
		while read -r stmt; do q "$stmt" >/dev/null; done
	psql -c "CHECKPOINT"
	# create: NOTICEs (and their hints) on stderr
	qtext=$(query "$v")
	out=$(psqlx -At -c "SET pg_kappa.engine = $e" -c '\timing on' \
		-c "SELECT kappa.create_view('$name', \$Q\$$qtext\$Q\$)" \
		-c "SELECT kappa.wait('$name', timeout => '30min')" 2> "$dir/notices.txt") ||
		{ cat "$dir/notices.txt" >&2; exit 1; }
	create_ms=$(printf '%s\n' "$out" | timings | sed -n 1p)
	fresh_ms=$(awk -v a="$create_ms" -v b="$(printf '%s\n' "$out" | timings | sed -n 2p)" 'BEGIN { print a + b }')
	[ "$(printf '%s\n' "$out" | grep -x '[tf]')" = t ] || { echo "$name (engine $e) did not become fresh" >&2; q "SELECT * FROM kappa.status"; exit 1; }
	kind=$(q "SELECT kind FROM kappa.views WHERE relid = '$name'::regclass")
	int_create=$(q "SELECT internal_bytes('$name')")
	printf '  %-4s engine %s  created in %.0f ms, fresh after %.0f ms (%s)\n' "$v" "$e" "$create_ms" "$fresh_ms" "$kind"
	sed -e 's/^psql:[^:]*:[0-9]*: //' -e 's/^/         /' "$dir/notices.txt" | grep -v '^ *$' || true
	psql -c "VACUUM ANALYZE $sources" -c "CHECKPOINT"
	if [ "$prewarm" = 1 ]; then
		psql -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm" -c "
			SELECT sum(pg_prewarm(c.oid)) AS prewarmed_blocks FROM pg_class c
			 WHERE c.oid = ANY (string_to_array(replace('$sources', ' ', ''), ',')::regclass[])
			    OR c.oid IN (SELECT indexrelid FROM pg_index
			                  WHERE indrelid = ANY (string_to_array(replace('$sources', ' ', ''), ',')::regclass[]))"
	fi
	wpid=$(q "SELECT pid FROM kappa.worker_status() WHERE pid IS NOT NULL LIMIT 1")
	cpu0=$(cputicks "$wpid")
	lp=$(logpos)
	first=$((round + 1))
	k=0
	while [ $k -lt "$rounds" ]; do
		k=$((k + 1))
		round=$((round + 1))
		[ $k = 1 ] || sleep 1
		psql -c "CALL bench_round('$name', $round, $e)"
		[ "$(q "SELECT ok FROM round_log WHERE r = $round")" = t ] || { echo "$name (engine $e): kappa.wait timed out after round $round" >&2; exit 1; }
		# verify: in a transaction of its own
		psql -c "INSERT INTO findings SELECT '$v', $e, kind, \"row\", count FROM kappa.verify('$name')"
	done
	cpu1=$(cputicks "$wpid")
	wpid1=$(q "SELECT pid FROM kappa.worker_status() WHERE pid IS NOT NULL LIMIT 1")
	# anything the server complained about during the rounds
	tail -c +"$((lp + 1))" "$dir/server.log" | grep -a -E '(ERROR|FATAL|PANIC|WARNING|terminated|exited with)' |
		grep -v 'duration: ' | head -5 | sed 's/^/         server log: /' || true
	[ "$wpid1" = "$wpid" ] || { echo "         the apply worker changed during the rounds: pid $wpid, now ${wpid1:-none}; its CPU time is not counted"; cpu1=$cpu0; }
	if [ "$explain" = 1 ]; then
		tail -c +"$((lp + 1))" "$dir/server.log" > "$explain_dir/${v}_engine$e.log"
	fi
	int_round=$(q "SELECT internal_bytes('$name')")
	int_state=$(q "SELECT internal_state_bytes('$name')")
	int_tables=$(q "SELECT internal_tables('$name')")
	view_bytes=$(q "SELECT pg_total_relation_size('$name')")
	view_rows=$(q "SELECT count(*) FROM $name")
	missing=$(q "SELECT count(*) FROM findings WHERE view = '$v' AND engine = $e AND kind = 'missing'")
	extra=$(q "SELECT count(*) FROM findings WHERE view = '$v' AND engine = $e AND kind = 'extra'")
	# recompute on the same data: twice with default settings, once serial
	rc=$(psqlx -At -c '\timing on' -c "CREATE TABLE recompute AS $qtext" -c "DROP TABLE recompute" \
		-c "CREATE TABLE recompute AS $qtext" -c "DROP TABLE recompute" \
		-c "SET max_parallel_workers_per_gather = 0" -c "CREATE TABLE recompute AS $qtext" -c "DROP TABLE recompute" | timings)
	recompute_ms=$(printf '%s\n' "$rc" | sed -n '1p;3p' | sort -g | head -1)
	serial_ms=$(printf '%s\n' "$rc" | sed -n 6p)
	# the view's time: the median of the rounds after the first (or the one round)
	q "INSERT INTO results
	   SELECT '$v', $e, '$kind', $create_ms, $fresh_ms, avg(l.round_ms),
	          avg(l.new_orders + l.new_lines + l.del_orders + l.del_lines + l.upd_lines + l.upd_customers)::bigint,
	          coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY l.lag_ms) FILTER (WHERE l.r > $first),
	                   max(l.lag_ms)),
	          ($cpu1 - $cpu0)::float8 / $hz / count(*), $recompute_ms, $serial_ms, $view_rows,
	          $int_create, $int_round, $view_bytes, '$int_tables', $missing, $extra, $int_state,
	          max(l.lag_ms) FILTER (WHERE l.r = $first),
	          string_agg(round(l.lag_ms::numeric, 1)::text, ' ' ORDER BY l.r),
	          max(l.lag_ms) FILTER (WHERE l.r = $first) / $recompute_ms
	     FROM round_log l WHERE l.r BETWEEN $first AND $round" >/dev/null
	psql -At -F'|' -c "SELECT round(lag_ms::numeric, 1), round(recompute_ms::numeric, 1), round((lag_ms / recompute_ms)::numeric, 4),
	                          round(round_ms::numeric), changes, round(worker_cpu_s::numeric, 2), pg_size_pretty(internal_round),
	                          lags, round(first_ratio::numeric, 4)
	                     FROM results WHERE view = '$v' AND engine = $e" |
	while IFS='|' read -r lag rcm ratio rnd ch cpu isz lags fr; do
		printf '         rounds %s-%s: about %s changes in %s ms each; commit to fresh %s ms (rounds: %s; worker CPU %s s a round)\n' \
			"$first" "$round" "$ch" "$rnd" "$lag" "$lags" "$cpu"
		printf '         recompute %s ms (serial %s); ratio %s (first round %s); internal %s; verify %s missing, %s extra\n' \
			"$rcm" "$serial_ms" "$ratio" "$fr" "$isz" "$missing" "$extra"
	done
	if [ "$missing" != 0 ] || [ "$extra" != 0 ]; then
		echo "         VERIFY FAILED: first differences:"
		psql -At -c "SELECT kind, count, \"row\" FROM findings WHERE view = '$v' AND engine = $e ORDER BY kind, \"row\"::text LIMIT 6" | sed 's/^/           /'
	fi
	if [ "$explain" = 1 ]; then
		echo "         slowest statements of the round (auto_explain, worker):"
		grep -a 'duration: ' "$explain_dir/${v}_engine$e.log" | grep -av 'client backend' |
			sed 's/.*duration: \([0-9.]*\) ms.*/\1/' | sort -gr | head -5 | tr '\n' ' ' | sed 's/^/           ms: /'
		echo
	fi
	q "SELECT kappa.drop_view('$name')" >/dev/null
	settle
}

echo "views, one at a time (create, $rounds refresh rounds each verified, recompute, drop):"
i=0
for v in $views; do
	i=$((i + 1))
	if [ $((i % 2)) = 1 ]; then order=$engines; else order=$(echo "$engines" | tr ' ' '\n' | sort -r | tr '\n' ' '); fi
	for e in $order; do
		run_one "$v" "$e"
	done
done
echo "  load:     $(load)"
echo

echo "summary (commit to fresh / recompute; target for engine 2: <= 0.1):"
printf '  %-5s %-15s %10s %10s %10s %10s %12s %12s %9s %9s %9s %12s %12s %8s\n' view kind "create ms" "fresh ms" \
	"e1 lag ms" "e2 lag ms" "recompute ms" "serial ms" "e1 ratio" "e2 ratio" "e2 first" "e1 internal" "e2 internal" verify
psql -At -F'|' <<'SQL' > "$dir/summary.txt"
SELECT v.view, coalesce(e2.kind, e1.kind),
       coalesce(round(e1.create_ms) || '', '-') || '/' || coalesce(round(e2.create_ms) || '', '-'),
       coalesce(round(e1.fresh_ms) || '', '-') || '/' || coalesce(round(e2.fresh_ms) || '', '-'),
       coalesce(round(e1.lag_ms::numeric, 1) || '', '-'), coalesce(round(e2.lag_ms::numeric, 1) || '', '-'),
       round(least(coalesce(e1.recompute_ms, e2.recompute_ms), coalesce(e2.recompute_ms, e1.recompute_ms))::numeric, 1),
       round(least(coalesce(e1.recompute_serial_ms, e2.recompute_serial_ms), coalesce(e2.recompute_serial_ms, e1.recompute_serial_ms))::numeric, 1),
       coalesce(round((e1.lag_ms / e1.recompute_ms)::numeric, 4) || '', '-'),
       coalesce(round((e2.lag_ms / e2.recompute_ms)::numeric, 4) || '', '-'),
       coalesce(round(e2.first_ratio::numeric, 4) || '', '-'),
       coalesce(pg_size_pretty(e1.internal_round), '-'), coalesce(pg_size_pretty(e2.internal_round), '-'),
       CASE WHEN coalesce(e1.verify_missing + e1.verify_extra, 0) + coalesce(e2.verify_missing + e2.verify_extra, 0) = 0
            THEN 'exact' ELSE 'DIFFERS' END
  FROM (SELECT DISTINCT view, min(ctid) AS o FROM results GROUP BY view) v
  LEFT JOIN results e1 ON e1.view = v.view AND e1.engine = 1
  LEFT JOIN results e2 ON e2.view = v.view AND e2.engine = 2
 ORDER BY v.o;
SQL
while IFS='|' read -r v k c f l1 l2 rc rs r1 r2 f2 i1 i2 ok; do
	printf '  %-5s %-15s %10s %10s %10s %10s %12s %12s %9s %9s %9s %12s %12s %8s\n' "$v" "$k" "$c" "$f" "$l1" "$l2" "$rc" "$rs" "$r1" "$r2" "$f2" "$i1" "$i2" "$ok"
done < "$dir/summary.txt"
echo "  (create/fresh: engine 1/engine 2; lag: commit of a round to kappa.wait returning, the median of the rounds after"
echo "   the first; recompute: CREATE TABLE AS, best of 2, the smaller of the two engines' runs; serial:"
echo "   max_parallel_workers_per_gather = 0; ratio: lag / recompute of the same run; e2 first: the first round's ratio;"
echo "   internal: pg_total_relation_size of kappa_v<id>'s tables after the rounds)"
echo

e2_int=$(q "SELECT coalesce(sum(internal_round), 0) FROM results WHERE engine = 2")
e2_state=$(q "SELECT coalesce(sum(internal_state), 0) FROM results WHERE engine = 2")
e1_int=$(q "SELECT coalesce(sum(internal_round), 0) FROM results WHERE engine = 1")
echo "storage: sources $(q "SELECT pg_size_pretty($src_bytes::bigint)") (all eight tables with indexes)"
echo "  engine 2, all views' internal tables: $(q "SELECT pg_size_pretty($e2_int::bigint)") = $(awk -v a="$e2_int" -v b="$src_bytes" 'BEGIN { printf "%.3f%%", 100 * a / b }') of the sources, of which state kept between batches (g) $(q "SELECT pg_size_pretty($e2_state::bigint)") = $(awk -v a="$e2_state" -v b="$src_bytes" 'BEGIN { printf "%.3f%%", 100 * a / b }'), the rest batch scratch tables (d_<n>, dq, dc, k, p: emptied by DELETE, so they keep their largest batch's size); derived tables $(q "SELECT pg_size_pretty(coalesce(sum(view_bytes), 0)) FROM results WHERE engine = 2")"
echo "  engine 1, all views' internal state: $(q "SELECT pg_size_pretty($e1_int::bigint)") = $(awk -v a="$e1_int" -v b="$src_bytes" 'BEGIN { printf "%.1f%%", 100 * a / b }') of the sources"
psql -At -F' ' -c "SELECT view, engine, internal_tables FROM results ORDER BY engine, ctid" | sed 's/^/    /'
echo

# data file and plot
if [ -n "$plotdir" ]; then
	psql -At -F' ' -c "SELECT upper(v.view),
	                          coalesce(round((e1.lag_ms / e1.recompute_ms)::numeric, 5)::text, 'NaN'),
	                          coalesce(round((e2.lag_ms / e2.recompute_ms)::numeric, 5)::text, 'NaN'),
	                          coalesce(round(e1.lag_ms::numeric, 1)::text, 'NaN'), coalesce(round(e2.lag_ms::numeric, 1)::text, 'NaN'),
	                          round(least(coalesce(e1.recompute_ms, e2.recompute_ms), coalesce(e2.recompute_ms, e1.recompute_ms))::numeric, 1),
	                          coalesce(round(e2.first_ratio::numeric, 5)::text, 'NaN')
	                     FROM (SELECT view, min(ctid) AS o FROM results GROUP BY view) v
	                     LEFT JOIN results e1 ON e1.view = v.view AND e1.engine = 1
	                     LEFT JOIN results e2 ON e2.view = v.view AND e2.engine = 2 ORDER BY v.o" > "$dir/ratio.dat"
	{
		echo "# pg_kappa tpch_bench.sh, SF $sf, $(date -u '+%Y-%m-%d'), tree $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
		echo "# view  engine1_ratio  engine2_ratio  engine1_lag_ms  engine2_lag_ms  recompute_ms  engine2_first_round_ratio"
		echo "# (ratio = commit-to-fresh / recompute; commit-to-fresh: median of rounds 2-$rounds, or the one round)"
		cat "$dir/ratio.dat"
	} > "$plotdir/tpch_ratio.dat"
	if command -v gnuplot >/dev/null 2>&1; then
		# the engines that ran (a column of NaN only makes gnuplot fail)
		plots=""
		for e in $engines; do
			case $e in
			1) p='using 2:xtic(1) title "engine 1" lc rgb "#7f7f7f"' ;;
			*) p='using 3:xtic(1) title "engine 2" lc rgb "#1f77b4", "'"$plotdir"'/tpch_ratio.dat" using 7:xtic(1) title "engine 2, first round after create" lc rgb "#aec7e8"' ;;
			esac
			plots="${plots:+$plots, }\"$plotdir/tpch_ratio.dat\" $p"
		done
		gnuplot <<GP
set terminal pngcairo size 900,520 font "sans,10"
set output "$plotdir/tpch_ratio.png"
set title "TPC-H SF $sf derived views: commit-to-fresh after a refresh round (median of rounds 2-$rounds) / recompute"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set logscale y
set yrange [0.001:100]
set ylabel "ratio to recompute (log scale, lower is better)"
set grid ytics
set key top left
set arrow from graph 0, first 0.1 to graph 1, first 0.1 nohead dt 2 lw 2 lc rgb "red"
set label "target 0.1" at graph 0.99, first 0.125 right tc rgb "red"
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 3 lc rgb "black"
plot $plots
GP
		echo "plot: $plotdir/tpch_ratio.png (data $plotdir/tpch_ratio.dat)"
	else
		echo "plot: gnuplot not found (apt-get install gnuplot-nox); data in $plotdir/tpch_ratio.dat"
	fi
	echo
fi

# verdicts
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo MISS; fi; }
echo "targets:"
if [ -n "$(q "SELECT 1 FROM results WHERE engine = 2 LIMIT 1")" ]; then
	q "SELECT view, round((lag_ms / recompute_ms)::numeric, 4), round(first_ratio::numeric, 4) FROM results WHERE engine = 2 ORDER BY ctid" |
	while IFS='|' read -r v r fr; do
		echo "$(verdict "$(awk -v r="$r" 'BEGIN { print (r <= 0.1) ? 1 : 0 }')")  $v engine 2 commit-to-fresh <= 0.1 x recompute: $r (first round after create: $fr)"
	done
	echo "$(verdict "$(awk -v a="$e2_int" -v b="$src_bytes" 'BEGIN { print (a <= 0.05 * b) ? 1 : 0 }')")  engine 2 internal state of all views <= 5% of the sources: $(awk -v a="$e2_int" -v b="$src_bytes" 'BEGIN { printf "%.3f%%", 100 * a / b }')"
	echo "info  of which state kept between batches (g tables): $(awk -v a="$e2_state" -v b="$src_bytes" 'BEGIN { printf "%.3f%%", 100 * a / b }'); the rest is batch scratch space"
fi
bad=$(q "SELECT count(*) FROM findings")
echo "$([ "$bad" = 0 ] && echo PASS || echo FAIL)  kappa.verify after every round: $bad differing rows"
echo "  load:     $(load) (at end)"
echo "  library:  $so ($(md5sum < "$so" | cut -c1-12)) at end"
