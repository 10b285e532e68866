#!/bin/sh
# test/sqlsmith_soak.sh — a bounded sqlsmith soak of pg_kappa (not part of
# "make check": it is random and slow).
#
#   sh test/sqlsmith_soak.sh [SECONDS_PER_RUN]        (default 120)
#
# Builds pg_kappa, installs it into a private copy of the PostgreSQL
# installation (as test/check.sh does), starts a throwaway cluster on a unix
# socket only, and fills a database with what sqlsmith should find: the
# extension, tables of three ordinary roles (with a primary key, with
# nullable and TOASTable columns, a domain, an array), derived views of
# every class (project, aggregate maintained algebraically, aggregate with
# HAVING, join, join with GROUP BY), captured tables with logged events,
# a paused view and a broken one.  sqlsmith then runs twice, each time for
# at most SECONDS_PER_RUN seconds and SQLSMITH_QUERIES queries (default
# 20000): once as the ordinary role alice, once as the superuser.  Between
# and after the runs the views are written to again, so that the apply
# worker has work while sqlsmith's queries poke at its catalog.
#
# Fails (exit 1) when the server log shows a crash: a process terminated by
# a signal, or a server restart.  The crashing statement is printed (from
# the "Failed process was running" lines).  Exits 0 with a message when
# sqlsmith is not installed (apt-get install sqlsmith).  Like make check,
# works as root (the server runs as the postgres account) and as a normal
# user.  The work directory is removed on success, kept on failure or with
# KAPPA_KEEP_WORK=1.
set -eu

secs=${1:-120}
queries=${SQLSMITH_QUERIES:-20000}
top=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}

if ! command -v sqlsmith >/dev/null 2>&1; then
	echo "sqlsmith_soak: SKIPPED: sqlsmith is not installed (apt-get install sqlsmith)"
	exit 0
fi

bindir=$($PG_CONFIG --bindir)
pkglibdir=$($PG_CONFIG --pkglibdir)
sharedir=$($PG_CONFIG --sharedir)

work=$(mktemp -d /tmp/pg_kappa_sqlsmith.XXXXXX)
chmod 755 "$work"
inst="$work/inst"
echo "sqlsmith_soak: staging installation in $inst"
mkdir -p "$inst$bindir" "$inst$pkglibdir" "$inst$sharedir"
cp -a "$bindir/." "$inst$bindir/"
cp -a "$pkglibdir/." "$inst$pkglibdir/"
cp -a "$sharedir/." "$inst$sharedir/"
make -C "$top" --no-print-directory -s all PG_CONFIG="$PG_CONFIG" >/dev/null
make -C "$top" --no-print-directory -s install DESTDIR="$inst" PG_CONFIG="$PG_CONFIG" >/dev/null
bin="$inst$bindir"

if [ "$(id -u)" = 0 ]; then
	chown -R postgres: "$work"
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

port=$((50000 + $$ % 10000))
data="$work/data"
log="$work/server.log"
as_pg "$bin/initdb" -D "$data" -A trust -U postgres >/dev/null
{
	sh "$top/test/conf.sh" "$bin"
	echo "port = $port"
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$work'"
	echo "log_min_messages = warning"
	echo "log_min_error_statement = panic"
	echo "statement_timeout = 5s"
	echo "pg_kappa.naptime = 20ms"
} | as_pg sh -c "cat >> '$data/postgresql.conf'"

stopped=0
stop_server() {
	if [ $stopped = 0 ]; then
		as_pg "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
		stopped=1
	fi
}
trap stop_server EXIT INT TERM
as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w start >/dev/null

psql_as() {
	user=$1
	shift
	as_pg "$bin/psql" -X -q -h "$work" -p "$port" -U "$user" -d smith -v ON_ERROR_STOP=1 "$@"
}

as_pg "$bin/psql" -X -q -h "$work" -p "$port" -U postgres -d postgres -c 'CREATE DATABASE smith'
psql_as postgres <<'SQL'
CREATE EXTENSION pg_kappa;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE carol LOGIN;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA bob AUTHORIZATION bob;
CREATE SCHEMA carol AUTHORIZATION carol;
SQL
psql_as alice <<'SQL'
SET search_path = alice;
CREATE DOMAIN posint AS integer CHECK (VALUE >= 0);
CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2), qty posint,
                     tags text[], note text, at timestamptz DEFAULT '2026-01-01');
CREATE TABLE customers (name text PRIMARY KEY, region text, since date);
INSERT INTO customers SELECT 'c' || g, 'r' || (g % 4), DATE '2020-01-01' + g FROM generate_series(0, 49) g;
INSERT INTO orders SELECT g, 'c' || (g % 50), g * 1.25, g % 7, ARRAY['t' || (g % 3)],
       CASE WHEN g % 10 = 0 THEN repeat('x', 5000) END
  FROM generate_series(1, 2000) g;
SELECT kappa.capture('orders') IS NOT NULL;
SELECT kappa.create_view('alice.o_proj', 'SELECT id, customer, amount FROM orders WHERE qty > 2');
SELECT kappa.create_view('alice.o_agg', 'SELECT customer, count(*) AS n, sum(amount) AS s, min(qty) AS lo, max(qty) AS hi FROM orders GROUP BY customer');
SELECT kappa.create_view('alice.o_having', 'SELECT customer, avg(amount) AS a, bool_or(note IS NULL) AS b FROM orders GROUP BY customer HAVING count(*) > 1');
SELECT kappa.create_view('alice.o_join', 'SELECT o.id, c.name, c.region, o.amount FROM orders o JOIN customers c ON c.name = o.customer');
SELECT kappa.create_view('alice.o_join_agg', 'SELECT c.region, count(*) AS n, sum(o.amount) AS s FROM orders o JOIN customers c ON c.name = o.customer GROUP BY c.region');
SELECT kappa.create_view('alice.o_paused', 'SELECT customer, count(*) AS n FROM orders GROUP BY customer');
SELECT kappa.alter_view('alice.o_paused', paused => true);
GRANT USAGE ON SCHEMA alice TO bob;
GRANT SELECT ON alice.o_agg TO bob;
SQL
psql_as bob <<'SQL'
SET search_path = bob;
CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload jsonb, score float8);
INSERT INTO events SELECT g, 'k' || (g % 5), jsonb_build_object('g', g), g / 3.0 FROM generate_series(1, 1000) g;
SELECT kappa.capture('events', retain => '1 hour') IS NOT NULL;
SELECT kappa.create_view('bob.e_count', 'SELECT kind, count(*) AS n, sum(score) AS s FROM events GROUP BY kind');
SELECT kappa.create_view('bob.e_all', 'SELECT id, kind, score FROM events');
CREATE TABLE fragile (id int PRIMARY KEY, s text);
SELECT kappa.create_view('bob.f_view', 'SELECT id, s FROM fragile');
ALTER TABLE fragile ADD COLUMN extra int;
SQL
psql_as carol <<'SQL'
SET search_path = carol;
CREATE TABLE kv (k text PRIMARY KEY, v int);
INSERT INTO kv SELECT 'k' || g, g FROM generate_series(1, 100) g;
SELECT kappa.create_view('carol.kv_total', 'SELECT count(*) AS n, sum(v) AS s FROM kv');
SQL

churn() {
	psql_as alice -c "UPDATE alice.orders SET amount = amount + 1 WHERE id % 17 = $1; DELETE FROM alice.orders WHERE id = $1 * 3; INSERT INTO alice.orders (id, customer, amount, qty) VALUES (10000 + $1, 'c1', 1, 3) ON CONFLICT DO NOTHING"
	psql_as bob -c "UPDATE bob.events SET score = score * 2 WHERE id % 13 = $1; INSERT INTO bob.events VALUES (5000 + $1, 'new', '{}', 1) ON CONFLICT DO NOTHING"
	psql_as carol -c "UPDATE carol.kv SET v = v + 1 WHERE v % 7 = $1"
}

run_sqlsmith() {
	user=$1
	seed=$2
	echo "sqlsmith_soak: sqlsmith as $user for at most ${secs}s / $queries queries (seed $seed)"
	set +e
	as_pg timeout --signal=INT "$secs" sqlsmith --verbose --seed="$seed" --max-queries="$queries" \
		--target="host=$work port=$port dbname=smith user=$user" \
		> "$work/sqlsmith_$user.out" 2> "$work/sqlsmith_$user.err"
	rc=$?
	set -e
	echo "sqlsmith_soak: sqlsmith as $user exited with $rc"
	# --verbose ends with a report: queries run, error rate, error kinds
	tr '\r' '\n' < "$work/sqlsmith_$user.err" | grep -E '^(queries|error rate)' | tail -2
}

seed=${SQLSMITH_SEED:-$$}
churn 1
run_sqlsmith alice "$seed"
churn 2
run_sqlsmith postgres "$((seed + 1))"
churn 3

status=0
# is the server still up, and is the worker still applying?
if ! psql_as alice -c "SELECT kappa.wait('alice.o_proj', timeout => '30s')" >/dev/null 2>&1; then
	echo "sqlsmith_soak: the server or the apply worker is not answering after the runs"
fi
if grep -E "terminated by signal|was terminated|server process .* was terminated|all server processes terminated|PANIC" "$log" >/dev/null; then
	echo "sqlsmith_soak: FAILED: the server crashed"
	grep -E -A2 "terminated by signal|PANIC" "$log" | head -40
	grep -E "Failed process was running" "$log" | head -20
	status=1
else
	echo "sqlsmith_soak: no crash"
fi
psql_as postgres -c "SELECT name, state, left(coalesce(last_error, ''), 100) AS last_error FROM kappa.views ORDER BY id" || true

stop_server
if [ $status -eq 0 ] && [ -z "${KAPPA_KEEP_WORK:-}" ]; then
	rm -rf "$work"
else
	echo "sqlsmith_soak: work directory kept: $work"
fi
exit $status
