-- Every SQL-callable function of the extension can be called with named
-- arguments: no parameter is named by a keyword that named notation
-- refuses (reserved, or usable only as a column name), as "into" was.
-- Output columns are not passed by name, and may be any word.
SELECT p.oid::regprocedure AS function, a.name AS parameter, k.catdesc
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  CROSS JOIN LATERAL unnest(p.proargnames) WITH ORDINALITY AS a(name, i)
  JOIN pg_get_keywords() k ON k.word = a.name
 WHERE n.nspname = 'kappa' AND k.catcode IN ('R', 'C')
   AND coalesce(p.proargmodes[a.i], 'i') IN ('i', 'b', 'v')
 ORDER BY 1, 2;
-- and named arguments work as the README writes them
SELECT count(*) > 0 AS has_functions FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'kappa' AND p.proargnames IS NOT NULL;
