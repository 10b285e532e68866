/* src/pg_kappa--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_kappa" to load this file. \quit

COMMENT ON SCHEMA kappa IS 'pg_kappa: change events, derived views, replay and audits';
