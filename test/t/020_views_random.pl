# Randomized correctness of derived views: views of every class over three
# tables, a seeded random mix of inserts, updates (including key, join key
# and group key changes, NULLs), deletes, savepoints and TRUNCATE; after
# kappa.wait every view must equal its defining query, both ways, as
# multisets.  Every view is created twice, by delta engine 1 (copies of the
# sources) and by engine 2 (signed deltas, live sources), and engine 2 also
# keeps bags: a join that does not select every key, and a table without a
# key that holds duplicate rows, LEFT JOIN views (with and without GROUP
# BY), EXISTS, NOT EXISTS and IN subqueries, and a SELECT DISTINCT view.
# Engine 2's joins reach customers by its key and rates by a two-column
# key equated with columns of two tables, with those keys changed in the
# same batches as the rows that join them (key_joins.c takes such rows
# from the delta).
# KAPPA_SOAK=1 runs many more rounds;
# KAPPA_SEED picks the seed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $seed = $ENV{KAPPA_SEED} // 20261127;
my $rounds = $ENV{KAPPA_SOAK} ? 200 : 12;
srand($seed);
note "seed $seed, $rounds rounds";

my $node = kappa_node('random');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE SEQUENCE ids START 100000;
CREATE TABLE customers (id int PRIMARY KEY, region text, vip bool);
CREATE TABLE products (id int PRIMARY KEY, category text);
CREATE TABLE items (id int PRIMARY KEY, customer_id int, product_id int, qty int, price numeric(8,2), note text);
INSERT INTO customers SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'r' || (g % 4) END, g % 3 = 0 FROM generate_series(1, 40) g;
INSERT INTO products SELECT g, 'cat' || (g % 5) FROM generate_series(1, 15) g;
INSERT INTO items SELECT g, 1 + g % 45, 1 + g % 17, g % 9, CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 23) * 1.25 END, repeat('x', g % 3)
  FROM generate_series(1, 300) g;
CREATE TABLE rates (product_id int, region text, factor int, PRIMARY KEY (product_id, region));
INSERT INTO rates SELECT p, 'r' || g, p * g FROM generate_series(1, 17) p, generate_series(0, 4) g;
CREATE TABLE events (kind text, n int);
INSERT INTO events SELECT 'k' || (g % 4), g % 3 FROM generate_series(1, 40) g;
});

my %views = (
	v_proj => q{SELECT id, customer_id, qty * 2 AS q2, upper(note) AS note FROM items WHERE price IS NOT NULL AND qty % 2 = 0},
	v_agg => q{SELECT customer_id, count(*) AS n, count(price) AS np, sum(qty) AS sq, avg(price) AS ap, min(price) AS lo, max(price) AS hi FROM items GROUP BY customer_id HAVING count(*) > 1},
	v_join => q{SELECT i.id AS item_id, c.id AS cust_id, c.region, i.qty FROM items i JOIN customers c ON c.id = i.customer_id WHERE c.vip IS NOT TRUE},
	v_join3_agg => q{SELECT c.region, p.category, count(*) AS n, sum(i.qty) AS sq, max(i.price) AS hi, bool_or(c.vip) AS any_vip FROM items i JOIN customers c ON c.id = i.customer_id JOIN products p ON p.id = i.product_id GROUP BY c.region, p.category},
	v_total => q{SELECT count(*) AS n, sum(qty) AS sq, min(price) AS lo FROM items},
	# maintained algebraically (agg_delta.c): fixed-scale, integer and
	# varying-scale sums, extremes, a text max, a WHERE, NULL group keys
	v_alg => q{SELECT customer_id, count(*) AS n, count(price) AS np, sum(qty) AS sq, avg(price) AS ap, sum(price / 4) AS sp4, avg(price / 3) AS ap3, min(price) AS lo, max(price) AS hi, max(note) AS mn FROM items WHERE qty <> 3 GROUP BY customer_id},
	v_alg_expr => q{SELECT product_id % 4 AS pk, note, count(*) AS n, sum(qty::bigint) AS sq, min(id) AS lo FROM items GROUP BY product_id % 4, note},
	v_distinct => q{SELECT product_id, count(DISTINCT customer_id) AS nc FROM items GROUP BY product_id},
);
foreach my $v (sort keys %views)
{
	$node->safe_psql('postgres', "SELECT kappa.create_view('$v', \$\$$views{$v}\$\$)");
}

# the same views by engine 2, and the bags only engine 2 keeps
foreach my $v (sort keys %views)
{
	$views{"${v}_e2"} = $views{$v};
}
$views{v_bag_e2} = q{SELECT i.id, c.region, i.qty FROM items i JOIN customers c ON c.id = i.customer_id};
$views{v_keyless_e2} = q{SELECT kind, n FROM events WHERE n IS DISTINCT FROM 2};
$views{v_keyless_agg_e2} = q{SELECT kind, count(*) AS c, sum(n) AS s FROM events GROUP BY kind};
$views{v_bag3_e2} = q{SELECT c.region, p.category, i.qty FROM items i JOIN customers c ON c.id = i.customer_id JOIN products p ON p.id = i.product_id};
$views{v_left_e2} = q{SELECT c.id, c.region, i.id AS item_id, i.qty, p.category FROM customers c LEFT JOIN items i ON i.customer_id = c.id AND i.qty > 2 LEFT JOIN products p ON p.id = c.id AND c.vip IS NOT TRUE};
$views{v_distinct_e2} = q{SELECT DISTINCT c.region, i.qty FROM items i JOIN customers c ON c.id = i.customer_id};
$views{v_left_groups_e2} = q{SELECT c.id, c.region, count(i.id) AS n, sum(i.qty) AS q, max(i.qty) AS top FROM customers c LEFT JOIN items i ON i.customer_id = c.id GROUP BY c.id, c.region};
$views{v_exists_e2} = q{SELECT c.id, c.region FROM customers c WHERE EXISTS (SELECT 1 FROM items i WHERE i.customer_id = c.id AND i.qty > 4) AND NOT EXISTS (SELECT 1 FROM events e WHERE e.n = c.id % 3 AND e.kind = 'k1')};
$views{v_rates_e2} = q{SELECT i.id, c.id AS cust_id, c.region, r.factor * i.qty AS v FROM items i JOIN customers c ON c.id = i.customer_id JOIN rates r ON r.product_id = i.product_id AND r.region = c.region};
$views{v_rates_agg_e2} = q{SELECT c.region, count(*) AS n, sum(r.factor * i.qty) AS s, max(r.factor) AS top FROM items i, customers c, rates r WHERE c.id = i.customer_id AND r.product_id = i.product_id AND r.region = c.region AND i.qty > 1 GROUP BY c.region};
$views{v_rates_bag_e2} = q{SELECT c.region, r.factor FROM items i JOIN customers c ON c.id = i.customer_id JOIN rates r ON r.product_id = i.product_id AND r.region = c.region};
$views{v_in_e2} = q{SELECT p.id, p.category FROM products p WHERE p.id IN (SELECT i.product_id FROM items i WHERE i.price > 10)};
foreach my $v (sort grep { /_e2$/ } keys %views)
{
	$node->safe_psql('postgres', "SET client_min_messages = warning; SET pg_kappa.engine = 2; SELECT kappa.create_view('$v', \$\$$views{$v}\$\$)");
}

# the worker shows up in pg_stat_activity under its own backend type
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker' AND datname = 'postgres'})
  or die "apply worker not running";
pass('apply worker runs with its own backend_type');

sub rnd { my ($n) = @_; return int(rand($n)); }
sub maybe_null { my ($v) = @_; return rand() < 0.15 ? 'NULL' : $v; }

sub random_statement
{
	my $r = rand();
	if ($r < 0.30)
	{
		my $n = 1 + rnd(3);
		return "INSERT INTO items SELECT nextval('ids'), " . (1 + rnd(45)) . ", " . (1 + rnd(17))
		  . ", " . rnd(9) . ", " . maybe_null(rnd(3000) / 100) . ", 'n' FROM generate_series(1, $n)";
	}
	elsif ($r < 0.45)
	{
		return "UPDATE items SET qty = qty + " . (rnd(5) - 2) . ", price = " . maybe_null(rnd(3000) / 100)
		  . " WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT " . (1 + rnd(4)) . ")";
	}
	elsif ($r < 0.55)
	{
		return "UPDATE items SET customer_id = " . maybe_null(1 + rnd(45)) . ", product_id = " . (1 + rnd(17))
		  . " WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 2)";
	}
	elsif ($r < 0.60)
	{
		return "UPDATE items SET id = nextval('ids') WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 1)";
	}
	elsif ($r < 0.72)
	{
		return "DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT " . (1 + rnd(3)) . ")";
	}
	elsif ($r < 0.80)
	{
		return "UPDATE customers SET region = " . maybe_null("'r" . rnd(5) . "'") . ", vip = " . maybe_null(rnd(2) ? 'true' : 'false')
		  . " WHERE id = " . (1 + rnd(45));
	}
	elsif ($r < 0.85)
	{
		my $id = 1 + rnd(45);
		return "INSERT INTO customers VALUES ($id, 'r" . rnd(4) . "', false) ON CONFLICT (id) DO UPDATE SET region = NULL";
	}
	elsif ($r < 0.89)
	{
		return "DELETE FROM customers WHERE id = " . (1 + rnd(45));
	}
	elsif ($r < 0.92)
	{
		return "UPDATE products SET category = 'cat" . rnd(6) . "' WHERE id = " . (1 + rnd(17));
	}
	elsif ($r < 0.94)
	{
		my $k = rnd(5);
		return rnd(2)
		  ? "INSERT INTO events SELECT 'k$k', " . maybe_null(rnd(4)) . " FROM generate_series(1, " . (1 + rnd(3)) . ")"
		  : "DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE kind = 'k$k' LIMIT " . (1 + rnd(2)) . ")";
	}
	elsif ($r < 0.945)
	{
		# a customer's key changes: its items now join no one, or another
		my ($id, $new) = (1 + rnd(45), 1 + rnd(45));
		return "UPDATE customers SET id = $new WHERE id = $id AND NOT EXISTS (SELECT 1 FROM customers WHERE id = $new)";
	}
	elsif ($r < 0.955)
	{
		my $p = 1 + rnd(17);
		my $g = rnd(5);
		my $f = rnd(3);
		return $f == 0 ? "UPDATE rates SET factor = factor + 1 WHERE product_id = $p"
		  : $f == 1 ? "DELETE FROM rates WHERE product_id = $p AND region = 'r$g'"
		  : "INSERT INTO rates VALUES ($p, 'r$g', " . rnd(9) . ") ON CONFLICT (product_id, region) DO UPDATE SET factor = excluded.factor";
	}
	elsif ($r < 0.97)
	{
		my $id = 1 + rnd(17);
		return "INSERT INTO products VALUES ($id, 'new') ON CONFLICT (id) DO NOTHING";
	}
	else
	{
		return "DELETE FROM products WHERE id = " . (1 + rnd(17));
	}
}

sub check_views
{
	my ($label) = @_;
	view_matches($node, $_, $views{$_}, $label) foreach sort keys %views;
}

check_views('initial');
for my $round (1 .. $rounds)
{
	my $ntx = 3 + rnd(10);
	for (1 .. $ntx)
	{
		my @stmts = map { random_statement() } 1 .. (1 + rnd(5));
		my $sql = "BEGIN;\n";
		foreach my $s (@stmts)
		{
			if (rand() < 0.1)
			{
				$sql .= "SAVEPOINT s; $s; ROLLBACK TO SAVEPOINT s;\n";
			}
			else
			{
				$sql .= "$s;\n";
			}
		}
		$sql .= (rand() < 0.1 ? "ROLLBACK;" : "COMMIT;");
		$node->safe_psql('postgres', $sql);
	}
	if (rand() < 0.05)
	{
		$node->safe_psql('postgres', "TRUNCATE items; INSERT INTO items SELECT nextval('ids'), 1 + g % 45, 1 + g % 17, g % 9, g FROM generate_series(1, 50) g");
	}
	if (rand() < 0.1)
	{
		$node->safe_psql('postgres', "UPDATE events SET n = n + 1 WHERE kind = 'k" . rnd(5) . "'");
	}
	check_views("round $round");
}

# nothing broke along the way
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.views WHERE state <> 'running'}),
	'0', 'every view still running');
cmp_ok($node->safe_psql('postgres', q{SELECT min(txns_applied) FROM kappa.views}),
	'>', 0, 'every view applied transactions');

$node->stop;
done_testing();
