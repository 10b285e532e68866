#!/bin/sh
# test/demo.sh start|stop — the throwaway cluster behind "make demo".
#
# The cluster lives in ./tmp/demo when the server's account can reach it,
# else (a root user's clone may sit where the postgres account cannot
# enter, as under /root) in a directory under /tmp that it owns, which
# ./tmp/demo then links to; ./tmp/demo.env records where, for "make
# demo-stop".
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
state="$top/tmp/demo.env"
bindir=$(pg_config --bindir)

if [ "$(id -u)" = 0 ]; then
	as() { runuser -u postgres -- "$@"; }
	dbuser=postgres
else
	as() { "$@"; }
	dbuser=$(id -un)
fi

stop()
{
	[ -f "$state" ] || { echo "no demo cluster is running"; rm -rf "$top/tmp"; return 0; }
	. "$state"
	as "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
	rm -rf "$dir" "$top/tmp"
	echo "demo cluster stopped and removed"
}

start()
{
	[ ! -f "$state" ] || stop
	mkdir -p "$top/tmp/demo"
	[ "$(id -u)" != 0 ] || chown postgres: "$top/tmp/demo"
	if as test -w "$top/tmp/demo" 2>/dev/null; then
		dir="$top/tmp/demo"
	else
		rmdir "$top/tmp/demo"
		dir=$(mktemp -d /tmp/pg_kappa_demo.XXXXXX)
		chmod 755 "$dir"
		[ "$(id -u)" != 0 ] || chown postgres: "$dir"
		ln -s "$dir" "$top/tmp/demo"
	fi
	port=5499
	while as "$bindir/pg_isready" -q -h "$dir" -p $port 2>/dev/null ||
		ss -ltn 2>/dev/null | grep -q ":$port "; do
		port=$((port + 1))
	done
	printf 'dir=%s\nport=%s\n' "$dir" "$port" > "$state"

	as "$bindir/initdb" -D "$dir/data" -A trust -U "$dbuser" >/dev/null
	sh "$top/test/conf.sh" "$bindir" > "$dir/kappa.conf"
	as sh -c "cat '$dir/kappa.conf' >> '$dir/data/postgresql.conf'"
	as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
		-o "-p $port -k $dir -c listen_addresses=''" start >/dev/null

	psql="$bindir/psql -X -q -h $dir -p $port -U $dbuser -d postgres"
	as $psql -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_kappa;
CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2), placed_at timestamptz DEFAULT now());
SELECT 'slot created' FROM pg_create_logical_replication_slot('demo', 'pg_kappa');
INSERT INTO orders (id, customer, amount) VALUES (1, 'ada', 12.50), (2, 'grace', 99.99);
UPDATE orders SET amount = amount + 1 WHERE id = 1;
DELETE FROM orders WHERE id = 2;
SELECT pg_logical_emit_message(true, 'demo', 'hello from a transaction');
SQL
	echo "== events decoded from the slot 'demo' (one JSON object per line):"
	as $psql -At -c "SELECT data FROM pg_logical_slot_get_changes('demo', NULL, NULL)"
	echo
	echo "== a derived view, maintained by the apply worker from the same stream:"
	as $psql -c "SELECT kappa.create_view('sales_by_customer', \$\$SELECT customer, count(*) AS orders, sum(amount) AS total FROM orders GROUP BY customer\$\$)" >/dev/null
	as $psql -c "TABLE sales_by_customer ORDER BY customer"
	echo "== after INSERT (grace, 40.00), (alan, 7.25) and UPDATE ada's order to 20.00:"
	as $psql -c "INSERT INTO orders (id, customer, amount) VALUES (3, 'grace', 40), (4, 'alan', 7.25); UPDATE orders SET amount = 20 WHERE id = 1;"
	as $psql -c "SELECT kappa.wait('sales_by_customer')" >/dev/null
	as $psql -c "TABLE sales_by_customer ORDER BY customer"
	echo "== a LEFT JOIN view: every customer, with their orders or none:"
	as $psql -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE customers (name text PRIMARY KEY, city text);
INSERT INTO customers VALUES ('ada', 'London'), ('grace', 'Arlington'), ('alan', 'Wilmslow'), ('edsger', 'Austin');
SET client_min_messages = warning;
SELECT kappa.create_view('orders_per_customer',
  $$SELECT c.name, c.city, count(o.id) AS orders, coalesce(sum(o.amount), 0) AS total
      FROM customers c LEFT JOIN orders o ON o.customer = c.name GROUP BY c.name, c.city$$);
SQL
	as $psql -c "TABLE orders_per_customer ORDER BY name"
	echo "== after edsger's first order (id 5, 3.00):"
	as $psql -c "INSERT INTO orders (id, customer, amount) VALUES (5, 'edsger', 3)"
	as $psql -c "SELECT kappa.wait('orders_per_customer')" >/dev/null
	as $psql -c "TABLE orders_per_customer ORDER BY name"
	as $psql -c "SELECT kind, name, state, applied_lsn, lag_bytes, txns_applied FROM kappa.status"
	echo "The demo cluster is running. Connect with:"
	echo "    $( [ "$(id -u)" = 0 ] && echo 'runuser -u postgres -- ')psql -h $dir -p $port -U $dbuser postgres"
	echo "Watch events as you write:"
	echo "    $( [ "$(id -u)" = 0 ] && echo 'runuser -u postgres -- ')pg_recvlogical -h $dir -p $port -U $dbuser -d postgres -S demo --start -f -"
	echo "Stop it with: make demo-stop"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
