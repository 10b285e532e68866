-- test/bench/tpch_gen.sql — TPC-H-shaped tables from SQL alone (no dbgen).
--
-- psql -v sf=0.2 -f test/bench/tpch_gen.sql
--
-- Deterministic: setseed() and random() in one backend, no parallel
-- query, tables scanned in the order they were written.  Row counts and
-- value distributions follow the TPC-H specification (2.x/3.x) for the
-- columns the queries read:
--   region 5, nation 25 (the spec's names and regions);
--   supplier SF*10k, customer SF*150k, part SF*200k, partsupp 4 per part
--     (the spec's supplier formula), orders SF*1.5M (sparse keys: 8 of
--     every 32, as dbgen), lineitem 1-7 per order (~SF*6M);
--   o_custkey never a multiple of 3 (a third of customers have no order);
--   o_orderdate uniform in 1992-01-01 .. 1998-08-02 (ENDDATE - 151 days);
--   l_shipdate = orderdate + 1..121, l_commitdate = orderdate + 30..90,
--   l_receiptdate = shipdate + 1..30; l_returnflag R or A if received by
--   1995-06-17 (CURRENTDATE), else N; l_linestatus O if shipped after it,
--   else F; o_orderstatus F, O or P from its lines; o_totalprice from them;
--   l_quantity 1..50, l_discount 0.00..0.10, l_tax 0.00..0.08,
--   l_extendedprice = quantity * p_retailprice (the spec's formula);
--   l_shipmode of 7, l_shipinstruct of 4, o_orderpriority of 5,
--   c_mktsegment of 5, p_type of 150 (6 x 5 x 5 syllables), p_brand of 25,
--   p_container of 40, p_size 1..50; comments random text of the spec's
--   lengths.
-- Also creates the functions the benchmark's refresh rounds use
-- (tpch_stage_orders, tpch_insert_staged) and table tpch_params.
\set ON_ERROR_STOP 1
SET max_parallel_workers_per_gather = 0;
SET synchronize_seqscans = off;

CREATE TABLE region (
    r_regionkey int PRIMARY KEY,
    r_name      char(25) NOT NULL,
    r_comment   varchar(152));
CREATE TABLE nation (
    n_nationkey int PRIMARY KEY,
    n_name      char(25) NOT NULL,
    n_regionkey int NOT NULL,
    n_comment   varchar(152));
CREATE TABLE supplier (
    s_suppkey   int PRIMARY KEY,
    s_name      char(25) NOT NULL,
    s_address   varchar(40) NOT NULL,
    s_nationkey int NOT NULL,
    s_phone     char(15) NOT NULL,
    s_acctbal   numeric(15,2) NOT NULL,
    s_comment   varchar(101) NOT NULL);
CREATE TABLE customer (
    c_custkey    int PRIMARY KEY,
    c_name       varchar(25) NOT NULL,
    c_address    varchar(40) NOT NULL,
    c_nationkey  int NOT NULL,
    c_phone      char(15) NOT NULL,
    c_acctbal    numeric(15,2) NOT NULL,
    c_mktsegment char(10) NOT NULL,
    c_comment    varchar(117) NOT NULL);
CREATE TABLE part (
    p_partkey     int PRIMARY KEY,
    p_name        varchar(55) NOT NULL,
    p_mfgr        char(25) NOT NULL,
    p_brand       char(10) NOT NULL,
    p_type        varchar(25) NOT NULL,
    p_size        int NOT NULL,
    p_container   char(10) NOT NULL,
    p_retailprice numeric(15,2) NOT NULL,
    p_comment     varchar(23) NOT NULL);
CREATE TABLE partsupp (
    ps_partkey    int NOT NULL,
    ps_suppkey    int NOT NULL,
    ps_availqty   int NOT NULL,
    ps_supplycost numeric(15,2) NOT NULL,
    ps_comment    varchar(199) NOT NULL,
    PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE orders (
    o_orderkey      int PRIMARY KEY,
    o_custkey       int NOT NULL,
    o_orderstatus   char(1) NOT NULL,
    o_totalprice    numeric(15,2) NOT NULL,
    o_orderdate     date NOT NULL,
    o_orderpriority char(15) NOT NULL,
    o_clerk         char(15) NOT NULL,
    o_shippriority  int NOT NULL,
    o_comment       varchar(79) NOT NULL);
CREATE TABLE lineitem (
    l_orderkey      int NOT NULL,
    l_partkey       int NOT NULL,
    l_suppkey       int NOT NULL,
    l_linenumber    int NOT NULL,
    l_quantity      numeric(15,2) NOT NULL,
    l_extendedprice numeric(15,2) NOT NULL,
    l_discount      numeric(15,2) NOT NULL,
    l_tax           numeric(15,2) NOT NULL,
    l_returnflag    char(1) NOT NULL,
    l_linestatus    char(1) NOT NULL,
    l_shipdate      date NOT NULL,
    l_commitdate    date NOT NULL,
    l_receiptdate   date NOT NULL,
    l_shipinstruct  char(25) NOT NULL,
    l_shipmode      char(10) NOT NULL,
    l_comment       varchar(44) NOT NULL,
    PRIMARY KEY (l_orderkey, l_linenumber));

CREATE TABLE tpch_params AS
SELECT :sf::float8 AS sf,
       greatest(round(:sf * 10000), 10)::int AS n_supp,
       greatest(round(:sf * 150000), 10)::int AS n_cust,
       greatest(round(:sf * 200000), 10)::int AS n_part,
       greatest(round(:sf * 1500000), 100)::int AS n_orders;

-- random text of minlen..maxlen characters (hex digits and spaces)
CREATE FUNCTION tpch_text(minlen int, maxlen int) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT substr(md5(random()::text) || ' ' || md5(random()::text) || ' '
                  || md5(random()::text) || ' ' || md5(random()::text) || ' '
                  || md5(random()::text) || ' ' || md5(random()::text) || ' '
                  || md5(random()::text),
                  1, minlen + floor(random() * (maxlen - minlen + 1))::int)
$$;
CREATE FUNCTION tpch_phone(nation int) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT (nation + 10) || '-' || (100 + floor(random() * 900))::int || '-'
           || (100 + floor(random() * 900))::int || '-' || (1000 + floor(random() * 9000))::int
$$;

SELECT setseed(0.42);

INSERT INTO region VALUES
    (0, 'AFRICA', tpch_text(31, 115)), (1, 'AMERICA', tpch_text(31, 115)),
    (2, 'ASIA', tpch_text(31, 115)), (3, 'EUROPE', tpch_text(31, 115)),
    (4, 'MIDDLE EAST', tpch_text(31, 115));
INSERT INTO nation
SELECT k, n, r, tpch_text(31, 114) FROM (VALUES
    (0, 'ALGERIA', 0), (1, 'ARGENTINA', 1), (2, 'BRAZIL', 1), (3, 'CANADA', 1),
    (4, 'EGYPT', 4), (5, 'ETHIOPIA', 0), (6, 'FRANCE', 3), (7, 'GERMANY', 3),
    (8, 'INDIA', 2), (9, 'INDONESIA', 2), (10, 'IRAN', 4), (11, 'IRAQ', 4),
    (12, 'JAPAN', 2), (13, 'JORDAN', 4), (14, 'KENYA', 0), (15, 'MOROCCO', 0),
    (16, 'MOZAMBIQUE', 0), (17, 'PERU', 1), (18, 'CHINA', 2), (19, 'ROMANIA', 3),
    (20, 'SAUDI ARABIA', 4), (21, 'VIETNAM', 2), (22, 'RUSSIA', 3),
    (23, 'UNITED KINGDOM', 3), (24, 'UNITED STATES', 1)) v(k, n, r)
ORDER BY k;

INSERT INTO supplier
SELECT i, 'Supplier#' || lpad(i::text, 9, '0'), tpch_text(10, 40), n, tpch_phone(n),
       round((random() * 10998.99 - 999.99)::numeric, 2), tpch_text(25, 100)
  FROM (SELECT i, floor(random() * 25)::int AS n
          FROM generate_series(1, (SELECT n_supp FROM tpch_params)) i) s;

INSERT INTO customer
SELECT i, 'Customer#' || lpad(i::text, 9, '0'), tpch_text(10, 40), n, tpch_phone(n),
       round((random() * 10998.99 - 999.99)::numeric, 2),
       (ARRAY['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'])[1 + floor(random() * 5)::int],
       tpch_text(29, 116)
  FROM (SELECT i, floor(random() * 25)::int AS n
          FROM generate_series(1, (SELECT n_cust FROM tpch_params)) i) s;

INSERT INTO part
SELECT i,
       (SELECT string_agg(c, ' ') FROM (SELECT (ARRAY['almond', 'antique', 'aquamarine', 'azure', 'beige',
               'bisque', 'black', 'blanched', 'blue', 'blush', 'brown', 'burlywood', 'burnished',
               'chartreuse', 'chiffon', 'chocolate', 'coral', 'cornflower', 'cornsilk', 'cream', 'cyan',
               'dark', 'deep', 'dim', 'dodger', 'drab', 'firebrick', 'floral', 'forest', 'frosted',
               'gainsboro', 'ghost', 'goldenrod', 'green', 'grey', 'honeydew', 'hot', 'indian', 'ivory',
               'khaki', 'lace', 'lavender', 'lawn', 'lemon', 'light', 'lime', 'linen', 'magenta', 'maroon',
               'medium', 'metallic', 'midnight', 'mint', 'misty', 'moccasin', 'navajo', 'navy', 'olive',
               'orange', 'orchid', 'pale', 'papaya', 'peach', 'peru', 'pink', 'plum', 'powder', 'puff',
               'purple', 'red', 'rose', 'rosy', 'royal', 'saddle', 'salmon', 'sandy', 'seashell', 'sienna',
               'sky', 'slate', 'smoke', 'snow', 'spring', 'steel', 'tan', 'thistle', 'tomato', 'turquoise',
               'violet', 'wheat', 'white', 'yellow'])[1 + floor(random() * 92)::int] AS c
               FROM generate_series(1, 5) w WHERE i > 0) x),
       'Manufacturer#' || m, 'Brand#' || m || (1 + floor(random() * 5)::int),
       (ARRAY['STANDARD', 'SMALL', 'MEDIUM', 'LARGE', 'ECONOMY', 'PROMO'])[1 + floor(random() * 6)::int] || ' ' ||
       (ARRAY['ANODIZED', 'BURNISHED', 'PLATED', 'POLISHED', 'BRUSHED'])[1 + floor(random() * 5)::int] || ' ' ||
       (ARRAY['TIN', 'NICKEL', 'BRASS', 'STEEL', 'COPPER'])[1 + floor(random() * 5)::int],
       1 + floor(random() * 50)::int,
       (ARRAY['SM', 'LG', 'MED', 'JUMBO', 'WRAP'])[1 + floor(random() * 5)::int] || ' ' ||
       (ARRAY['CASE', 'BOX', 'BAG', 'JAR', 'PKG', 'PACK', 'CAN', 'DRUM'])[1 + floor(random() * 8)::int],
       (90000 + ((i / 10) % 20001) + 100 * (i % 1000)) / 100.0,
       tpch_text(5, 22)
  FROM (SELECT i, 1 + floor(random() * 5)::int AS m
          FROM generate_series(1, (SELECT n_part FROM tpch_params)) i) s;

-- the spec's suppliers of a part: (p + i * (S/4 + (p-1)/S)) mod S + 1, i = 0..3
CREATE FUNCTION tpch_supp(p int, i int, s int) RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT ((p + i * (s / 4 + (p - 1) / s)) % s + 1)::int
$$;
INSERT INTO partsupp
SELECT p, tpch_supp(p, i, (SELECT n_supp FROM tpch_params)), 1 + floor(random() * 9999)::int,
       round((1 + random() * 999)::numeric, 2), tpch_text(49, 198)
  FROM generate_series(1, (SELECT n_part FROM tpch_params)) p, generate_series(0, 3) i
 ORDER BY p, i;

-- Orders are generated into an unlogged staging table first (their lines
-- decide o_orderstatus and o_totalprice); the refresh rounds use the same
-- two functions.  Round 0 is the initial load (keys 8 of every 32, as
-- dbgen); round r > 0 makes n new orders with keys in the gaps
-- (offset 8 + (r-1) % 24 in groups spread over the key space).
CREATE UNLOGGED TABLE tpch_stage (
    o_orderkey int, o_custkey int, o_orderdate date, nlines int,
    o_orderpriority text, o_clerk text, o_comment text);
CREATE FUNCTION tpch_stage_orders(n int, r int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p tpch_params;
    g bigint;
BEGIN
    SELECT * INTO p FROM tpch_params;
    g := (p.n_orders + 7) / 8;
    DELETE FROM tpch_stage;
    INSERT INTO tpch_stage
    SELECT CASE WHEN r = 0 THEN (i / 8) * 32 + i % 8 + 1
                ELSE (((i::bigint * g) / n + (r - 1) / 24) % g) * 32 + 8 + (r - 1) % 24 + 1 END,
           k + (k - 1) / 2,     -- 1..2C/3 onto the custkeys that are not multiples of 3
           date '1992-01-01' + floor(random() * (date '1998-08-02' - date '1992-01-01' + 1))::int,
           1 + floor(random() * 7)::int,
           (ARRAY['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'])[1 + floor(random() * 5)::int],
           'Clerk#' || lpad((1 + floor(random() * greatest(p.sf * 1000, 1)))::int::text, 9, '0'),
           tpch_text(19, 78)
      FROM (SELECT i, 1 + floor(random() * (p.n_cust * 2 / 3))::int AS k
              FROM generate_series(0, n - 1) i) s;
END $$;
CREATE FUNCTION tpch_insert_staged() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    p tpch_params;
    nl bigint;
BEGIN
    SELECT * INTO p FROM tpch_params;
    INSERT INTO lineitem
    SELECT o_orderkey, partkey, tpch_supp(partkey, supi, p.n_supp), ln, qty,
           qty * pt.p_retailprice, disc, tax,
           CASE WHEN o_orderdate + sd + rd <= date '1995-06-17'
                THEN CASE WHEN rf < 0.5 THEN 'R' ELSE 'A' END ELSE 'N' END,
           CASE WHEN o_orderdate + sd > date '1995-06-17' THEN 'O' ELSE 'F' END,
           o_orderdate + sd, o_orderdate + cd, o_orderdate + sd + rd,
           instr, mode, cmt
      FROM (SELECT s.o_orderkey, s.o_orderdate, ln,
                   1 + floor(random() * p.n_part)::int AS partkey,
                   floor(random() * 4)::int AS supi,
                   (1 + floor(random() * 50))::numeric AS qty,
                   floor(random() * 11)::numeric / 100 AS disc,
                   floor(random() * 9)::numeric / 100 AS tax,
                   1 + floor(random() * 121)::int AS sd,
                   30 + floor(random() * 61)::int AS cd,
                   1 + floor(random() * 30)::int AS rd,
                   random() AS rf,
                   (ARRAY['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'])[1 + floor(random() * 4)::int] AS instr,
                   (ARRAY['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'])[1 + floor(random() * 7)::int] AS mode,
                   tpch_text(10, 43) AS cmt
              FROM tpch_stage s, generate_series(1, s.nlines) ln) l
      JOIN part pt ON pt.p_partkey = l.partkey
     ORDER BY o_orderkey, ln;
    GET DIAGNOSTICS nl = ROW_COUNT;
    INSERT INTO orders
    SELECT s.o_orderkey, s.o_custkey,
           CASE WHEN a.nf = a.n THEN 'F' WHEN a.nf = 0 THEN 'O' ELSE 'P' END,
           a.total, s.o_orderdate, s.o_orderpriority, s.o_clerk, 0, s.o_comment
      FROM tpch_stage s
      JOIN (SELECT l_orderkey, count(*) AS n, count(*) FILTER (WHERE l_linestatus = 'F') AS nf,
                   sum(round(l_extendedprice * (1 + l_tax) * (1 - l_discount), 2)) AS total
              FROM lineitem WHERE l_orderkey IN (SELECT o_orderkey FROM tpch_stage)
             GROUP BY l_orderkey) a ON a.l_orderkey = s.o_orderkey
     ORDER BY s.o_orderkey;
    RETURN nl;
END $$;

SELECT tpch_stage_orders((SELECT n_orders FROM tpch_params), 0);
SELECT tpch_insert_staged();
TRUNCATE tpch_stage;

-- indexes on the foreign-key join columns (l_orderkey leads lineitem's key)
CREATE INDEX ON orders (o_custkey);
CREATE INDEX ON lineitem (l_partkey);
CREATE INDEX ON lineitem (l_suppkey);
CREATE INDEX ON customer (c_nationkey);
CREATE INDEX ON supplier (s_nationkey);
CREATE INDEX ON nation (n_regionkey);
VACUUM ANALYZE region, nation, supplier, customer, part, partsupp, orders, lineitem;
