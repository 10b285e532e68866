#!/bin/sh
# Print the postgresql.conf lines every pg_kappa test or demo cluster needs.
# Usage: test/conf.sh BINDIR
#
# output_plugin_libraries exists from 15.19 on, and older minors refuse to
# start when it is set, so it is printed only when the server knows it.
# postgres refuses to run as root, even to describe its settings; as root
# the question is asked as the postgres account.
bindir=$1
cat <<'CONF'
wal_level = logical
shared_preload_libraries = 'pg_kappa'
max_replication_slots = 20
max_wal_senders = 20
max_worker_processes = 32
logical_decoding_work_mem = 64kB
CONF
if [ "$(id -u)" = 0 ]; then
	desc=$(runuser -u postgres -- "$bindir/postgres" --describe-config 2>/dev/null)
else
	desc=$("$bindir/postgres" --describe-config 2>/dev/null)
fi
if printf '%s\n' "$desc" | grep -q '^output_plugin_libraries	'; then
	echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2json, pg_kappa'"
fi
