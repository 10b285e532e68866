-- test/bench/tpch_term_plans.sql — one delta-rule term of engine 2 planned
-- two ways, on a cluster kept by tpch_bench.sh (BENCH_KEEP=1; then
-- psql -h <dir> -p <port> -U postgres postgres -f test/bench/tpch_term_plans.sql).
--
-- Q5's term for a batch that changed orders (and lineitem, customer), as
-- engine 2 writes it: the orders delta joined with o_<n>, the sources as
-- they were before the batch, which are UNION ALL views (live rows, weight
-- 1, plus the batch's rows negated).  (a) is that shape; (b) the same term
-- with "before" = live - delta written out as two joins over the live
-- tables and the delta tables alone (no UNION ALL), skipping sources whose
-- delta is empty.  Both give the same signed rows.  Schema hx is created
-- with deltas sampled from the tables (0.2% of orders, 0.4% of lineitem,
-- like one tpch_bench round at any SF) and dropped again.
set ON_ERROR_STOP 1
SET jit = off;
DROP SCHEMA IF EXISTS hx CASCADE;
CREATE SCHEMA hx;
SELECT setseed(0.5);
CREATE TABLE hx.d_orders AS SELECT o.*, CASE WHEN random() < 0.5 THEN 1 ELSE -1 END AS _kappa_w FROM orders o TABLESAMPLE BERNOULLI (0.2) REPEATABLE (7);
CREATE TABLE hx.d_lineitem AS SELECT l.*, CASE WHEN random() < 0.5 THEN 1 ELSE -1 END AS _kappa_w FROM lineitem l TABLESAMPLE BERNOULLI (0.4) REPEATABLE (7);
CREATE TABLE hx.d_supplier (LIKE supplier); ALTER TABLE hx.d_supplier ADD _kappa_w int;
CREATE TABLE hx.d_nation (LIKE nation); ALTER TABLE hx.d_nation ADD _kappa_w int;
CREATE TABLE hx.d_region (LIKE region); ALTER TABLE hx.d_region ADD _kappa_w int;
CREATE VIEW hx.o_lineitem AS SELECT l.*, 1 AS _kappa_w FROM ONLY lineitem l UNION ALL SELECT d.l_orderkey, d.l_partkey, d.l_suppkey, d.l_linenumber, d.l_quantity, d.l_extendedprice, d.l_discount, d.l_tax, d.l_returnflag, d.l_linestatus, d.l_shipdate, d.l_commitdate, d.l_receiptdate, d.l_shipinstruct, d.l_shipmode, d.l_comment, -d._kappa_w FROM hx.d_lineitem d;
CREATE VIEW hx.o_supplier AS SELECT s.*, 1 AS _kappa_w FROM ONLY supplier s UNION ALL SELECT d.s_suppkey, d.s_name, d.s_address, d.s_nationkey, d.s_phone, d.s_acctbal, d.s_comment, -d._kappa_w FROM hx.d_supplier d;
CREATE VIEW hx.o_nation AS SELECT n.*, 1 AS _kappa_w FROM ONLY nation n UNION ALL SELECT d.n_nationkey, d.n_name, d.n_regionkey, d.n_comment, -d._kappa_w FROM hx.d_nation d;
CREATE VIEW hx.o_region AS SELECT r.*, 1 AS _kappa_w FROM ONLY region r UNION ALL SELECT d.r_regionkey, d.r_name, d.r_comment, -d._kappa_w FROM hx.d_region d;
SELECT (SELECT count(*) FROM hx.d_orders) AS d_orders, (SELECT count(*) FROM hx.d_lineitem) AS d_lineitem;
\echo (a) as engine 2 runs it: delta of orders joined with the o_<n> UNION ALL views
EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON)
SELECT n_name, sum(abs(orders._kappa_w * lineitem._kappa_w * supplier._kappa_w * nation._kappa_w * region._kappa_w)), sum(l_extendedprice * (1 - l_discount) * orders._kappa_w * lineitem._kappa_w)
  FROM ONLY customer, ONLY hx.d_orders orders, hx.o_lineitem lineitem, hx.o_supplier supplier, hx.o_nation nation, hx.o_region region
 WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
   AND r_name = 'ASIA' AND o_orderdate >= date '1994-01-01' AND o_orderdate < date '1995-01-01'
 GROUP BY n_name;
\echo (b) the same term over live tables and delta tables only (old = live - delta): two joins, no UNION ALL view; empty deltas of supplier, nation, region skipped
EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON)
SELECT n_name, sum(abs(w)), sum(a * w) FROM (
SELECT n_name, orders._kappa_w AS w, l_extendedprice * (1 - l_discount) AS a
  FROM ONLY customer, ONLY hx.d_orders orders, ONLY lineitem, ONLY supplier, ONLY nation, ONLY region
 WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
   AND r_name = 'ASIA' AND o_orderdate >= date '1994-01-01' AND o_orderdate < date '1995-01-01'
UNION ALL
SELECT n_name, -orders._kappa_w * lineitem._kappa_w, l_extendedprice * (1 - l_discount)
  FROM ONLY customer, ONLY hx.d_orders orders, ONLY hx.d_lineitem lineitem, ONLY supplier, ONLY nation, ONLY region
 WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
   AND r_name = 'ASIA' AND o_orderdate >= date '1994-01-01' AND o_orderdate < date '1995-01-01') t
 GROUP BY n_name;
DROP SCHEMA hx CASCADE;
