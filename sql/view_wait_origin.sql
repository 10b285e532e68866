-- kappa.wait with origin_lsn (views on logical replicas): the arguments it
-- refuses, and the subscriptions it does not wait for.  The TAP tests
-- 050-052 wait on real subscribers; here the subscriptions have no
-- publisher that sends anything.
\set VERBOSITY default
CREATE TABLE wo_local (id int PRIMARY KEY, v int);
CREATE TABLE wo_repl (id int PRIMARY KEY, v int);
ALTER TABLE wo_repl REPLICA IDENTITY FULL;
SELECT kappa.create_view('wo_local_v', 'SELECT id, v FROM wo_local');
SELECT kappa.create_view('wo_repl_v', 'SELECT id, v FROM wo_repl');

-- the parameters, as pg_proc has them
SELECT pg_get_function_arguments('kappa.wait'::regproc);
SELECT proconfig FROM pg_proc WHERE oid = 'kappa.wait'::regproc;
SELECT obj_description('kappa.wait'::regproc, 'pg_proc') IS NOT NULL AS has_comment;

-- without origin_lsn, as before
SELECT kappa.wait('wo_local_v');
SELECT kappa.wait('wo_local_v', NULL, '1s');
SELECT kappa.wait('wo_local_v', pg_current_wal_insert_lsn(), '1s', NULL, NULL);

-- refused arguments
SELECT kappa.wait('wo_local_v', '0/1', origin_lsn => '0/1');
SELECT kappa.wait('wo_local_v', subscription => 'wo_sub');
SELECT kappa.wait(NULL, origin_lsn => '0/1');
SELECT kappa.wait('wo_local_v', origin_lsn => '0/1', timeout => '-1s');

-- no subscription replicates the view's sources
SELECT kappa.wait('wo_local_v', origin_lsn => '0/1');
SELECT kappa.wait('wo_local_v', origin_lsn => '0/1', subscription => 'wo_nosuch');

-- a subscription that replicates nothing yet (connect = false lists no
-- tables) is not the view's
CREATE SUBSCRIPTION wo_sub CONNECTION 'dbname=wo_nowhere' PUBLICATION wo_pub
  WITH (connect = false);
SELECT kappa.wait('wo_local_v', origin_lsn => '0/1', subscription => 'wo_sub');

-- A subscription of this very server, disabled, that lists wo_repl: it is
-- found by itself, and a wait for what it has not applied fails, since a
-- disabled subscription applies nothing.
-- (the statements \gexec runs name this server's port: not echoed)
CREATE PUBLICATION wo_pub FOR TABLE wo_repl;
SELECT format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
              split_part(current_setting('unix_socket_directories'), ',', 1)) AS self \gset
\set ECHO none
SELECT format('CREATE SUBSCRIPTION wo_self CONNECTION %L PUBLICATION wo_pub
                 WITH (enabled = false, create_slot = false, slot_name = %L)',
              :'self', 'wo_self_slot') \gexec
\set ECHO all
SELECT srsubstate FROM pg_subscription_rel WHERE srrelid = 'wo_repl'::regclass;
SELECT kappa.wait('wo_repl_v', origin_lsn => '0/1');
SELECT kappa.wait('wo_repl_v', origin_lsn => '0/1', subscription => 'wo_self');
SELECT kappa.wait('wo_repl_v', origin_lsn => '0/1', subscription => 'wo_sub');
-- origin_lsn 0/0 is reached by any subscription, but its table is not copied
SELECT kappa.wait('wo_repl_v', origin_lsn => '0/0');
-- a second subscription of the table: which one?
\set ECHO none
SELECT format('CREATE SUBSCRIPTION wo_self2 CONNECTION %L PUBLICATION wo_pub
                 WITH (enabled = false, create_slot = false, slot_name = %L)',
              :'self', 'wo_self2_slot') \gexec
\set ECHO all
SELECT s.subname, r.srsubstate FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
 WHERE srrelid = 'wo_repl'::regclass ORDER BY 1;
SELECT kappa.wait('wo_repl_v', origin_lsn => '0/1');

-- a role that may not read the view learns nothing of subscriptions
CREATE ROLE regress_wo_reader;
SET ROLE regress_wo_reader;
SELECT kappa.wait('wo_repl_v', origin_lsn => '0/1', subscription => 'wo_nosuch');
RESET ROLE;
DROP ROLE regress_wo_reader;

ALTER SUBSCRIPTION wo_sub SET (slot_name = NONE);
DROP SUBSCRIPTION wo_sub;
ALTER SUBSCRIPTION wo_self SET (slot_name = NONE);
DROP SUBSCRIPTION wo_self;
ALTER SUBSCRIPTION wo_self2 SET (slot_name = NONE);
DROP SUBSCRIPTION wo_self2;
DROP PUBLICATION wo_pub;
SELECT kappa.drop_view('wo_local_v');
SELECT kappa.drop_view('wo_repl_v');
DROP TABLE wo_local, wo_repl;
