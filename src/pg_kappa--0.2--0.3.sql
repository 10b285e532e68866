/* src/pg_kappa--0.2--0.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.3'" to load this file. \quit

-- 0.3: security and hardening (view code runs as the view's owner,
-- security-restricted; read paths show only what the caller may read;
-- sources checked for replica identity, renames, inheritance and RLS).
