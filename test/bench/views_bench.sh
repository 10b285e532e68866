#!/bin/sh
# test/bench/views_bench.sh — derived views: what they cost writers, how far
# they lag, and incremental maintenance against REFRESH MATERIALIZED VIEW.
#
# Creates a throwaway cluster under /tmp (as root the server runs as the
# postgres account) and, in one run:
#
# 1. Writer overhead.  pgbench single-row inserts into
#      orders(id bigserial primary key, customer int, amount numeric, created timestamptz)
#    (customer uniform in 1..1000; orders starts with 100k rows, customers
#    with 1000 rows in 10 regions), BENCH_SECS seconds each, 1 and 2 clients,
#    in three configurations:
#      (a) no views, no slot;
#      (b) the decoding floor: no views, a logical slot consumed continuously by
#          pg_recvlogical -P wal2json with a table filter that matches nothing
#          (format-version 2, no transaction records: it emits nothing);
#      (c) pg_kappa maintaining an aggregate view
#            SELECT customer, count(*), sum(amount) FROM orders GROUP BY customer
#          and a join view
#            SELECT o.id, o.customer, o.amount, c.region FROM orders o JOIN customers c ON c.id = o.customer
#          (engine 2 keeps it as a bag: it does not select the key of customers)
#    Tables, views, slots are dropped and created again (and a checkpoint
#    taken) before every run, so each starts equal.  Configurations run in
#    alternating order for BENCH_ROUNDS rounds; the best tps of each is
#    reported.  For (b) and (c) the consumer's CPU time (walsender, or apply
#    worker) per 1000 transactions is printed too, a measure other jobs on the
#    machine disturb less than tps; for (c) also how long the views took to
#    catch up after pgbench stopped, and a check that both equal their query.
# 2. Commit-to-view lag at half of (a)'s 1-client rate: pgbench --rate inserts
#    while a sampler (a procedure, in its own session) every 50 ms inserts a
#    row of its own (a new group of the aggregate view), commits, and measures
#    from just after its commit until either
#      poll: the row's group is visible in the view (checked every 5 ms, the
#            worker left alone), or
#      wait: kappa.wait(view, pg_current_wal_insert_lsn()) returns true
#            (read-your-writes; kappa.wait also wakes the worker),
#    alternating the two.  p50/p99 over the run and over its first and last
#    thirds (is lag growing?).
# 3. Incremental against REFRESH: a 2M-row table, a materialized view and a
#    pg_kappa view with the same aggregate query; one transaction updates 1%
#    of the rows (chosen by a hash of the key, so spread over the groups);
#    then the time from that commit until kappa.wait returns, against the
#    time of REFRESH MATERIALIZED VIEW; the two are checked equal.  Twice:
#    100k groups of 20 rows, and 10 groups of 200k rows (the engine
#    recomputes every group a change touches, so big groups cost it more).
#    Also timed: decoding the same change alone (a slot of the pg_kappa
#    plugin created before the UPDATE, read after it with a table filter
#    that matches nothing): the floor no logical-decoding consumer can beat.
#
# Targets (issue 4): (c)/(a) >= 0.75 with 2 clients, (c) within 0.07 of (b)
# at 1 and 2 clients, lag p99 <= 200 ms and not growing (last third's p50 at
# most 1.5x the first's + 10 ms), incremental >= 100x faster than REFRESH.
#
# Server settings: fsync = off (commits are CPU-bound, not disk-bound: the
# hardest case for the ratios; BENCH_FSYNC=on to keep fsync), autovacuum on.
#
# Environment:
#   BENCH_SECS=15     seconds per pgbench run in part 1 (default 15)
#   BENCH_ROUNDS=3    rounds of part 1 (default 3)
#   BENCH_LAG_SECS=60 seconds of part 2 (default 60)
#   BENCH_LAG_RATE=N  part 2's pgbench --rate (default: half of (a)'s 1-client tps)
#   BENCH_PARTS="1 2 3"  parts to run (default all; part 2 without part 1
#                     needs BENCH_LAG_RATE)
#   BENCH_BIG_ROWS=N  rows of part 3's table (default 2000000)
#   BENCH_FSYNC=on    keep fsync on
#   BENCH_CONF="..."  extra postgresql.conf lines (e.g. pg_kappa.naptime = 10ms)
#   (the installed pg_kappa is used: CREATE EXTENSION loads it by its
#   installed path, so a copy elsewhere would be loaded twice; its checksum
#   is printed at start and end)
#   BENCH_ENGINE=2    delta engine of the views (pg_kappa.engine; default: the
#                     server's default)
#   BENCH_PLOT_DIR=dir  part 2 writes lag.dat and lag.png (lag over the run and
#                     its distribution, per method) there when gnuplot is
#                     installed (default test/bench; empty: no plot)
#   BENCH_KEEP=1      keep the cluster (and print where it is)
#   PG_CONFIG         pg_config to use (default: from PATH)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$($PG_CONFIG --bindir)
pkglibdir=$($PG_CONFIG --pkglibdir)
sharedir=$($PG_CONFIG --sharedir)
secs=${BENCH_SECS:-15}
rounds=${BENCH_ROUNDS:-3}
lag_secs=${BENCH_LAG_SECS:-60}
big_rows=${BENCH_BIG_ROWS:-2000000}
fsync=${BENCH_FSYNC:-off}
so=$pkglibdir/pg_kappa.so

for f in "$so" "$pkglibdir/wal2json.so" "$sharedir/extension/pg_kappa.control" \
	"$bindir/pgbench" "$bindir/pg_recvlogical"; do
	[ -f "$f" ] || { echo "missing $f (make install; apt-get install postgresql-15-wal2json)" >&2; exit 1; }
done

if [ "$(id -u)" = 0 ]; then
	as() { runuser -u postgres -- "$@"; }
	dbuser=postgres
else
	as() { "$@"; }
	dbuser=$(id -un)
fi

dir=$(mktemp -d /tmp/pg_kappa_vbench.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" != 0 ] || chown -R postgres: "$dir"
port=$((20000 + $$ % 10000))
recv_pid=

cleanup()
{
	[ -z "$recv_pid" ] || q "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'floor'" >/dev/null 2>&1 || true
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
max_wal_size = 50GB
checkpoint_timeout = 1h
fsync = $fsync
shared_buffers = 512MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_connections = 50
CONF
	# extra settings, e.g. BENCH_CONF="pg_kappa.naptime = 10ms"
	[ -z "${BENCH_CONF:-}" ] || printf '%s\n' "$BENCH_CONF"
} > "$dir/bench.conf"
as sh -c "cat '$dir/bench.conf' >> '$dir/data/postgresql.conf'"
as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
	-o "-p $port -k $dir -c listen_addresses=''" start >/dev/null

engine_opt=
[ -z "${BENCH_ENGINE:-}" ] || engine_opt=" -c pg_kappa.engine=$BENCH_ENGINE"
psql() { as env PGOPTIONS="-c client_min_messages=warning$engine_opt" "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$dbuser" -d postgres -v ON_ERROR_STOP=1 "$@"; }
q() { psql -At -c "$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
load() { uptime | sed 's/.*load average: //'; }
# CPU time (clock ticks) of a process
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

echo "pg_kappa derived views benchmark"
echo "  command:  $(env | grep '^BENCH_' | sort | tr '\n' ' ')sh test/bench/views_bench.sh"
echo "  library:  $so ($(md5sum < "$so" | cut -c1-12)); main at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "  server:   $(q 'SELECT version()' | sed 's/ on x86_64.*//')"
echo "  machine:  $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/ { print $2 " GB RAM" }')"
echo "  settings: fsync=$fsync, shared_buffers=512MB, autovacuum on, pg_kappa.engine=$(q 'SHOW pg_kappa.engine'), pg_kappa.batch_max_changes=$(q 'SHOW pg_kappa.batch_max_changes'), batch_max_ms=$(q 'SHOW pg_kappa.batch_max_ms'), naptime=$(q 'SHOW pg_kappa.naptime')"
echo "  load:     $(load) (at start)"
echo

cat > "$dir/insert.sql" <<'SQL'
\set c random(1, 1000)
INSERT INTO orders (customer, amount, created) VALUES (:c, round((random() * 100)::numeric, 2), clock_timestamp());
SQL
[ "$(id -u)" != 0 ] || chown postgres: "$dir/insert.sql"

psql >/dev/null <<'SQL'
CREATE EXTENSION pg_kappa;
CREATE TABLE results (part text, config text, clients int, round int, value float8, effective float8, extra text);
CREATE PROCEDURE bench_reset() LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kappa.drop_view(relid) FROM kappa.views;
    DROP TABLE IF EXISTS orders, customers;
    CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL,
                         amount numeric NOT NULL, created timestamptz NOT NULL);
    INSERT INTO customers SELECT i, 'region ' || i % 10 FROM generate_series(1, 1000) i;
    INSERT INTO orders (customer, amount, created)
    SELECT 1 + i % 1000, round((i % 9973) / 100.0, 2),
           timestamptz '2024-01-01' + i * interval '1 s'
      FROM generate_series(1, 100000) i;
END $$;
SQL

# wait until no apply worker runs and no slot is left (views dropped)
settle()
{
	i=0
	while [ "$(q "SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM kappa.worker_status() WHERE pid IS NOT NULL)")" != 0 ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || { echo "slots or workers left over" >&2; q "SELECT * FROM pg_replication_slots"; exit 1; }
		sleep 0.1
	done
}

setup()
{
	psql -c "CALL bench_reset()"
	settle
	psql -c "VACUUM ANALYZE customers, orders" -c "CHECKPOINT"
}

create_views()
{
	psql >/dev/null <<'SQL'
SELECT kappa.create_view('v_agg', 'SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer');
SELECT kappa.create_view('v_join', 'SELECT o.id, o.customer, o.amount, c.region FROM orders o JOIN customers c ON c.id = o.customer');
SQL
	# the worker is up and has applied everything so far
	[ "$(q "SELECT kappa.wait('v_agg', timeout => '60s') AND kappa.wait('v_join', timeout => '60s')")" = t ] ||
		{ echo "views did not come up" >&2; q "SELECT * FROM kappa.status"; exit 1; }
	psql -c "CHECKPOINT"
}

# pgbench: prints tps
bench()
{
	as "$bindir/pgbench" -n -h "$dir" -p "$port" -U "$dbuser" -f "$dir/insert.sql" \
		-c "$1" -j "$1" -T "$secs" postgres > "$dir/pgbench.out" 2>&1 ||
		{ cat "$dir/pgbench.out" >&2; exit 1; }
	awk '/^tps = / { print $3; exit }' "$dir/pgbench.out"
}

run_config()	# config clients round
{
	cfg=$1 c=$2 r=$3
	setup
	pid= extra= catchup=0
	case $cfg in
	b)
		as "$bindir/pg_recvlogical" -h "$dir" -p "$port" -U "$dbuser" -d postgres \
			-S floor -P wal2json --create-slot
		as "$bindir/pg_recvlogical" -h "$dir" -p "$port" -U "$dbuser" -d postgres \
			-S floor --start --no-loop -f /dev/null -o format-version=2 -o include-transaction=false \
			-o add-tables=nothing.nothing > "$dir/recv.log" 2>&1 &
		recv_pid=$!
		i=0
		while [ -z "$pid" ]; do
			pid=$(q "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'floor'")
			i=$((i + 1)); [ $i -lt 100 ] || { cat "$dir/recv.log" >&2; exit 1; }
			[ -n "$pid" ] || sleep 0.1
		done
		;;
	c)
		create_views
		pid=$(q "SELECT pid FROM kappa.worker_status() WHERE pid IS NOT NULL")
		;;
	esac
	n0=$(q "SELECT count(*) FROM orders")
	cpu0=0; [ -z "$pid" ] || cpu0=$(cputicks "$pid")
	tps=$(bench "$c")
	cpu1=0; [ -z "$pid" ] || cpu1=$(cputicks "$pid")
	n=$(($(q "SELECT count(*) FROM orders") - n0))
	case $cfg in
	b)
		# wait until the slot has consumed everything, then stop
		t=$(now)
		i=0
		while [ "$(q "SELECT confirmed_flush_lsn >= pg_current_wal_flush_lsn() - 1024 * 1024 FROM pg_replication_slots WHERE slot_name = 'floor'")" != t ]; do
			i=$((i + 1)); [ $i -lt 1200 ] || break
			sleep 0.1
		done
		# pg_recvlogical (--no-loop) exits when its walsender ends
		q "SELECT pg_terminate_backend($pid)" >/dev/null
		wait "$recv_pid" 2>/dev/null || true; recv_pid=
		i=0
		while [ "$(q "SELECT active FROM pg_replication_slots WHERE slot_name = 'floor'")" != f ]; do
			i=$((i + 1)); [ $i -lt 100 ] || { echo "slot floor still active" >&2; exit 1; }
			sleep 0.1
		done
		q "SELECT pg_drop_replication_slot('floor')" >/dev/null
		extra="consumer CPU $(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.3f", (b - a) / hz / n * 1000 }') s/1k txns"
		;;
	c)
		t=$(now)
		ok=$(q "SELECT kappa.wait('v_agg', timeout => '300s') AND kappa.wait('v_join', timeout => '300s')")
		catchup=$(elapsed "$t")
		cpu2=$(cputicks "$pid")
		diff=$(q "SELECT (SELECT count(*) FROM (SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer
		                                         EXCEPT ALL SELECT * FROM v_agg) x)
		               + (SELECT count(*) FROM (SELECT * FROM v_agg EXCEPT ALL
		                                         SELECT customer, count(*), sum(amount) FROM orders GROUP BY customer) x)
		               + (SELECT count(*) FROM (SELECT o.id, o.customer, o.amount, c.region FROM orders o JOIN customers c ON c.id = o.customer
		                                         EXCEPT ALL SELECT * FROM v_join) x)
		               + (SELECT count(*) FROM (SELECT * FROM v_join EXCEPT ALL
		                                         SELECT o.id, o.customer, o.amount, c.region FROM orders o JOIN customers c ON c.id = o.customer) x)")
		[ "$ok" = t ] && [ "$diff" = 0 ] || { echo "views wrong after the run: wait=$ok, differing rows=$diff" >&2; exit 1; }
		scratch=$(q "SELECT pg_size_pretty(sum(pg_relation_size(c.oid))) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		             WHERE n.nspname LIKE 'kappa\_v%' AND c.relkind = 'r' AND c.relname !~ '^a_'")
		extra="worker CPU $(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.3f", (b - a) / hz / n * 1000 }') s/1k txns; caught up ${catchup} s after pgbench ($(awk -v a="$cpu1" -v b="$cpu2" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) / hz }') s CPU); views exact; scratch tables $scratch"
		;;
	esac
	# effective: transactions per second until the views had them all
	eff=$(awk -v n="$n" -v s="$secs" -v c="$catchup" 'BEGIN { printf "%.1f", n / (s + c) }')
	q "INSERT INTO results VALUES ('writers', '$cfg', $c, $r, $tps, $eff, '$extra')" >/dev/null
	printf '  round %d  (%s) %d client%s  %9.1f tps  %s  [load %s]\n' "$r" "$cfg" "$c" \
		"$([ "$c" = 1 ] && echo ' ' || echo s)" "$tps" "$extra" "$(load | cut -d, -f1)"
}

parts=${BENCH_PARTS:-1 2 3}
part() { case " $parts " in *" $1 "*) return 0;; *) return 1;; esac; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.3f", x / y }'; }
t_all=$(now)

if part 1; then
echo "1. writer overhead: pgbench single-row inserts, ${secs} s per run, best of $rounds rounds"
r=1
while [ $r -le "$rounds" ]; do
	if [ $((r % 2)) = 1 ]; then order="a b c"; else order="c b a"; fi
	for c in 1 2; do
		for cfg in $order; do
			run_config "$cfg" "$c" "$r"
		done
	done
	r=$((r + 1))
done
echo

best() { q "SELECT max(value) FROM results WHERE part = 'writers' AND config = '$1' AND clients = $2"; }
besteff() { q "SELECT max(effective) FROM results WHERE part = 'writers' AND config = 'c' AND clients = $1"; }
a1=$(best a 1); b1=$(best b 1); c1=$(best c 1); e1=$(besteff 1)
a2=$(best a 2); b2=$(best b 2); c2=$(best c 2); e2=$(besteff 2)
printf '  %-8s %10s %10s %10s %8s %8s %8s %12s %8s\n' clients "(a) tps" "(b) tps" "(c) tps" "(b)/(a)" "(c)/(a)" "(c)-(b)" "(c) eff tps" "eff/(a)"
for c in 1 2; do
	eval "a=\$a$c b=\$b$c cc=\$c$c e=\$e$c"
	printf '  %-8s %10.1f %10.1f %10.1f %8s %8s %8s %12.1f %8s\n' "$c" "$a" "$b" "$cc" "$(ratio "$b" "$a")" "$(ratio "$cc" "$a")" \
		"$(awk -v a="$a" -v b="$b" -v c="$cc" 'BEGIN { printf "%+.3f", c / a - b / a }')" "$e" "$(ratio "$e" "$a")"
done
echo "  best of each configuration over the rounds; (c)-(b): difference of the ratios to (a);"
echo "  (c) eff tps: transactions / (run + time the views took to catch up after it), best round"
echo
fi

# 2. lag
if part 2; then
if [ -n "${BENCH_LAG_RATE:-}" ]; then
	rate=$BENCH_LAG_RATE why="BENCH_LAG_RATE"
else
	[ -n "${a1:-}" ] || { echo "part 2 without part 1 needs BENCH_LAG_RATE" >&2; exit 1; }
	rate=$(awk -v a="$a1" 'BEGIN { printf "%d", a / 2 }') why="half of (a)'s 1-client tps"
fi
echo "2. commit-to-view lag: pgbench 1 client --rate $rate ($why) for ${lag_secs} s, sampler every 50 ms"
setup
create_views
psql >/dev/null <<'SQL'
CREATE TABLE lag_samples (i int, method text, t_commit timestamptz, lag_ms float8, ok bool);
CREATE PROCEDURE bench_sample(secs float8, every_ms int) LANGUAGE plpgsql AS $$
DECLARE
    t_end timestamptz := clock_timestamp() + secs * interval '1 s';
    t0 timestamptz;
    t1 timestamptz;
    ok bool;
    i int := 0;
BEGIN
    WHILE clock_timestamp() < t_end LOOP
        i := i + 1;
        INSERT INTO orders (customer, amount, created) VALUES (-i, 1, clock_timestamp());
        COMMIT;
        t0 := clock_timestamp();
        IF i % 2 = 0 THEN
            ok := kappa.wait('v_agg', pg_current_wal_insert_lsn(), '30s');
            t1 := clock_timestamp();
            -- a statement of its own: a snapshot taken after kappa.wait returned
            ok := ok AND EXISTS (SELECT 1 FROM v_agg WHERE customer = -i);
            INSERT INTO lag_samples VALUES (i, 'wait', t0, extract(epoch FROM t1 - t0) * 1000, ok);
        ELSE
            LOOP
                ok := EXISTS (SELECT 1 FROM v_agg WHERE customer = -i);
                t1 := clock_timestamp();
                EXIT WHEN ok OR t1 > t0 + interval '30 s';
                PERFORM pg_sleep(0.005);
            END LOOP;
            INSERT INTO lag_samples VALUES (i, 'poll', t0, extract(epoch FROM t1 - t0) * 1000, ok);
        END IF;
        COMMIT;
        PERFORM pg_sleep(every_ms / 1000.0);
    END LOOP;
END $$;
SQL
wpid=$(q "SELECT pid FROM kappa.worker_status() WHERE pid IS NOT NULL")
logpos=$(wc -c < "$dir/server.log")
cpu0=$(cputicks "$wpid")
as "$bindir/pgbench" -n -h "$dir" -p "$port" -U "$dbuser" -f "$dir/insert.sql" \
	-c 1 -j 1 -R "$rate" -T "$lag_secs" postgres > "$dir/pgbench_lag.out" 2>&1 &
pgb=$!
sleep 2
psql -c "CALL bench_sample($lag_secs - 4, 50)"
wait "$pgb" || { cat "$dir/pgbench_lag.out" >&2; exit 1; }
cpu1=$(cputicks "$wpid")
wpid1=$(q "SELECT pid FROM kappa.worker_status() WHERE pid IS NOT NULL")
if [ "$wpid1" != "$wpid" ]; then
	# the worker exited (or was restarted) during the run: say so, with what the server logged
	echo "  note:     the apply worker changed during the run (pid $wpid, now ${wpid1:-none}); its CPU below is not meaningful; server log:"
	tail -c +"$((logpos + 1))" "$dir/server.log" > "$dir/run.log"
	echo "            (\"starting logical decoding\" logged $(grep -a -c 'starting logical decoding' "$dir/run.log") times: the worker decoding again from its slot)"
	grep -a -E 'pg_kappa|ERROR|FATAL|WARNING|terminated|exited' "$dir/run.log" | grep -av 'starting logical decoding' | head -10 | sed 's/^/            /'
fi
lag_tps=$(awk '/^tps = / { print $3; exit }' "$dir/pgbench_lag.out")
psql -At -F' ' <<'SQL' > "$dir/lag.txt"
WITH s AS (
    SELECT *, ntile(3) OVER (ORDER BY t_commit) AS third FROM lag_samples
)
SELECT method, 'all', count(*), count(*) FILTER (WHERE NOT ok),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms)::numeric, 1),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms)::numeric, 1),
       round(max(lag_ms)::numeric, 1)
  FROM s GROUP BY method
UNION ALL
SELECT method, 'third' || third, count(*), count(*) FILTER (WHERE NOT ok),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms)::numeric, 1),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms)::numeric, 1),
       round(max(lag_ms)::numeric, 1)
  FROM s WHERE third IN (1, 3) GROUP BY method, third
ORDER BY 1 DESC, 2;
SQL
printf '  pgbench: %s tps (rate %s); apply worker CPU %.0f%% of one core\n' "$lag_tps" "$rate" \
	"$(awk -v a="$cpu0" -v b="$cpu1" -v s="$lag_secs" -v hz="$hz" 'BEGIN { print (b - a) / hz / s * 100 }')"
printf '  %-6s %-12s %7s %7s %9s %9s %9s\n' method samples n failed "p50 ms" "p99 ms" "max ms"
while read -r m part n f p50 p99 mx; do
	printf '  %-6s %-12s %7s %7s %9s %9s %9s\n' "$m" "$part" "$n" "$f" "$p50" "$p99" "$mx"
done < "$dir/lag.txt"
plotdir=${BENCH_PLOT_DIR-$top/test/bench}
if [ -n "$plotdir" ]; then
	{
		echo "# pg_kappa views_bench.sh part 2, $(date -u '+%Y-%m-%d'), tree $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?'), engine $(q 'SHOW pg_kappa.engine'), pgbench --rate $rate"
		echo "# seconds since the first sample, lag ms; index 0: poll, index 1: wait"
		q "SELECT round(extract(epoch FROM t_commit - (SELECT min(t_commit) FROM lag_samples))::numeric, 3) || ' ' || round(lag_ms::numeric, 2)
		     FROM lag_samples WHERE method = 'poll' ORDER BY t_commit"
		printf '\n\n'
		q "SELECT round(extract(epoch FROM t_commit - (SELECT min(t_commit) FROM lag_samples))::numeric, 3) || ' ' || round(lag_ms::numeric, 2)
		     FROM lag_samples WHERE method = 'wait' ORDER BY t_commit"
	} > "$plotdir/lag.dat"
	if command -v gnuplot >/dev/null 2>&1; then
		gnuplot <<GP
set terminal pngcairo size 1000,420 font "sans,10"
set output "$plotdir/lag.png"
set multiplot layout 1,2 title "commit-to-view lag, pgbench 1 client --rate $rate, engine $(q 'SHOW pg_kappa.engine'), sampler every 50 ms"
set xlabel "seconds into the run"
set ylabel "lag ms"
set grid
set key top left
plot "$plotdir/lag.dat" index 0 using 1:2 with points pt 7 ps 0.5 title "poll", \
     "" index 1 using 1:2 with points pt 5 ps 0.5 title "wait", \
     200 with lines dt 2 lc rgb "red" title "p99 target"
set xlabel "lag ms (log scale)"
set logscale x
set ylabel "fraction of samples at or below"
set yrange [0:1]
set key bottom right
plot "$plotdir/lag.dat" index 0 using 2:(1) smooth cnormal with lines lw 2 title "poll", \
     "" index 1 using 2:(1) smooth cnormal with lines lw 2 title "wait"
unset multiplot
GP
		echo "  plot:     $plotdir/lag.png (data $plotdir/lag.dat)"
	else
		echo "  plot:     gnuplot not found; data in $plotdir/lag.dat"
	fi
fi
echo "  load:     $(load)"
echo
fi

# 3. incremental vs REFRESH
if part 3; then
echo "3. incremental vs REFRESH MATERIALIZED VIEW: $big_rows rows, 1% of rows updated in one transaction"
psql -c "CALL bench_reset()"
settle
psql >/dev/null <<SQL
CREATE TABLE inc_results (name text, groups int, changed bigint, upd_ms float8, kappa_ms float8, refresh_ms float8, differ bigint, floor_ms float8);
CREATE PROCEDURE bench_incremental(name text, tbl regclass, mv regclass, kv regclass, ngroups int) LANGUAGE plpgsql AS \$\$
DECLARE
    t0 timestamptz;
    t_upd float8;
    t_kappa float8;
    t_refresh float8;
    t_floor float8;
    n bigint;
    ok bool;
    d bigint;
    upd_end pg_lsn;
BEGIN
    -- the decoding floor: a slot of our own, decoding the same change and
    -- emitting nothing (no table matches), timed after everything else
    PERFORM pg_create_logical_replication_slot('bench_floor', 'pg_kappa');
    COMMIT;
    t0 := clock_timestamp();
    EXECUTE format('UPDATE %s SET v = v + 1 WHERE hashint8(id) %% 100 = 0', tbl);
    GET DIAGNOSTICS n = ROW_COUNT;
    COMMIT;
    t_upd := extract(epoch FROM clock_timestamp() - t0) * 1000;
    upd_end := pg_current_wal_insert_lsn();
    t0 := clock_timestamp();
    ok := kappa.wait(kv, pg_current_wal_insert_lsn(), '600s');
    t_kappa := extract(epoch FROM clock_timestamp() - t0) * 1000;
    IF NOT ok THEN RAISE EXCEPTION 'kappa.wait timed out'; END IF;
    COMMIT;
    t0 := clock_timestamp();
    EXECUTE format('REFRESH MATERIALIZED VIEW %s', mv);
    COMMIT;
    t_refresh := extract(epoch FROM clock_timestamp() - t0) * 1000;
    EXECUTE format('SELECT (SELECT count(*) FROM (TABLE %1\$s EXCEPT ALL TABLE %2\$s) x) + (SELECT count(*) FROM (TABLE %2\$s EXCEPT ALL TABLE %1\$s) x)', mv, kv) INTO d;
    t0 := clock_timestamp();
    PERFORM count(*) FROM pg_logical_slot_get_changes('bench_floor', upd_end, NULL, 'tables', 'nothing.nothing');
    t_floor := extract(epoch FROM clock_timestamp() - t0) * 1000;
    PERFORM pg_drop_replication_slot('bench_floor');
    INSERT INTO inc_results VALUES (name, ngroups, n, t_upd, t_kappa, t_refresh, d, t_floor);
END \$\$;
SQL
inc_run()	# name groups
{
	t=$(now)
	psql >/dev/null <<SQL
CREATE TABLE big_$1 (id bigint PRIMARY KEY, g int NOT NULL, v numeric NOT NULL);
INSERT INTO big_$1 SELECT i, i % $2, (i % 997)::numeric FROM generate_series(1, $big_rows) i;
VACUUM ANALYZE big_$1;
CREATE MATERIALIZED VIEW mv_$1 AS SELECT g, count(*) AS n, sum(v) AS total FROM big_$1 GROUP BY g;
SQL
	load_secs=$(elapsed "$t")
	t=$(now)
	q "SELECT kappa.create_view('kv_$1', 'SELECT g, count(*) AS n, sum(v) AS total FROM big_$1 GROUP BY g')" >/dev/null
	create_secs=$(elapsed "$t")
	# the worker decodes the WAL that create_view wrote (the copies) before it is fresh
	[ "$(q "SELECT kappa.wait('kv_$1', timeout => '900s')")" = t ] || { echo "kv_$1 did not catch up" >&2; exit 1; }
	fresh_secs=$(elapsed "$t")
	psql -c "VACUUM ANALYZE" -c "CHECKPOINT"
	for i in 1 2 3; do
		psql -c "CALL bench_incremental('$1/$i', 'big_$1', 'mv_$1', 'kv_$1', $2)"
	done
	echo "  $1: table and matview built in $load_secs s; kappa.create_view returned after $create_secs s, the view was fresh (kappa.wait) after $fresh_secs s"
}
inc_run groups100k 100000
inc_run groups10 10
printf '  %-16s %8s %9s %9s %10s %11s %9s %7s %9s %9s\n' run groups changed "UPDATE ms" "kappa ms" "REFRESH ms" speedup differ "floor ms" "at best"
psql -At -F' ' -c "SELECT name, groups, changed, round(upd_ms::numeric, 1), round(kappa_ms::numeric, 1), round(refresh_ms::numeric, 1),
                          round((refresh_ms / kappa_ms)::numeric, 2), differ, round(floor_ms::numeric, 1),
                          round((refresh_ms / floor_ms)::numeric, 1) FROM inc_results ORDER BY groups DESC, name" |
while read -r n g ch u k rf sp d f fb; do
	printf '  %-16s %8s %9s %9s %10s %11s %8sx %7s %9s %8sx\n' "$n" "$g" "$ch" "$u" "$k" "$rf" "$sp" "$d" "$f" "$fb"
done
[ "$(q "SELECT sum(differ) FROM inc_results")" = 0 ] || { echo "pg_kappa view differs from the matview" >&2; exit 1; }
echo "  (kappa ms: from the UPDATE's commit until kappa.wait returned; speedup = REFRESH / kappa; differ: rows"
echo "   differing between the matview and the pg_kappa view afterwards; floor ms: decoding the same change"
echo "   alone, by a slot of the pg_kappa plugin that emits nothing; at best = REFRESH / floor, the speedup"
echo "   no consumer of logical decoding can beat)"
echo "  load:     $(load)"
echo
fi

# verdicts
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi; }
echo "targets:"
if part 1; then
r=$(ratio "$c2" "$a2")
echo "$(verdict "$r >= 0.75")  (c)/(a) >= 0.75 with 2 clients: $r"
for c in 1 2; do
	eval "a=\$a$c b=\$b$c cc=\$c$c"
	d=$(awk -v a="$a" -v b="$b" -v c="$cc" 'BEGIN { printf "%.3f", b / a - c / a }')
	echo "$(verdict "$d <= 0.07")  (c) within 0.07 of (b) (at most 0.07 below) with $c client$([ $c = 1 ] || echo s): (b)/(a) - (c)/(a) = $d"
done
echo "info  counting the views' catch-up after the run, (c)/(a) = $(ratio "$e1" "$a1") with 1 client, $(ratio "$e2" "$a2") with 2 clients"
fi
if part 2; then
p99=$(awk '$2 == "all" { if ($6 > m) m = $6 } END { print m + 0 }' "$dir/lag.txt")
echo "$(verdict "$p99 <= 200")  lag p99 <= 200 ms: worst of poll/wait p99 = $p99 ms"
grow=$(awk '$2 == "third1" { f[$1] = $5 } $2 == "third3" { l[$1] = $5 }
	END { ok = 1; for (m in f) { if (l[m] > 1.5 * f[m] + 10) ok = 0; s = s sprintf("%s p50 %s -> %s ms; ", m, f[m], l[m]) }
	      print ok " " s }' "$dir/lag.txt")
echo "$(verdict "${grow%% *} == 1")  lag not growing (last third p50 <= 1.5 x first third + 10 ms): ${grow#* }"
fi
if part 3; then
med="percentile_disc(0.5) WITHIN GROUP (ORDER BY refresh_ms / kappa_ms)"
sp=$(q "SELECT round(($med)::numeric, 2) FROM inc_results WHERE groups = 100000")
sp10=$(q "SELECT round(($med)::numeric, 2) FROM inc_results WHERE groups = 10")
echo "$(verdict "$sp >= 100")  incremental >= 100x faster than REFRESH (100k groups): ${sp}x (median of 3); 10 groups: ${sp10}x"
fi
echo "  load:     $(load) (at end; whole run $(elapsed "$t_all") s)"
echo "  library:  $so ($(md5sum < "$so" | cut -c1-12)) at end"
