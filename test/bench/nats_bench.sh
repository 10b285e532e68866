#!/bin/sh
# test/bench/nats_bench.sh — kappa_recv into NATS JetStream, against
# kappa_recv into a file and against pg_recvlogical, in the same run.
#
# Creates a throwaway PostgreSQL cluster under /tmp (as root the server, the
# consumers and the NATS servers run as the postgres account), one
# standalone nats-server and one three-server NATS cluster (JetStream, file
# storage, 127.0.0.1 only, stores in the same directory), one slot per
# consumer and round, then writes the workload
#
#   - BENCH_TXNS transactions (default 5000) of BENCH_ROWS inserts each
#     (default 10), the table of recv_bench.sh
#
# and times each consumer from its start until it exits at --endpos (the
# end of the workload):
#
#   kappa_recv -f FILE               fsync + state file per transaction
#   kappa_recv -f FILE -F 1000       group fsync
#   pg_recvlogical -P pg_kappa       fsync every 10 s (its default)
#   kappa_recv --nats, R=1           standalone server, stream of 1 replica
#   kappa_recv --nats, R=3           three-server cluster, 3 replicas
#   kappa_recv --nats -F 1000        the same two, publishing ahead of the
#                                    PubAcks, the slot acknowledged in groups
#
# kappa_recv --nats publishes each transaction as one message and waits for
# its PubAck before acknowledging the slot (JetStream's own default: no
# fsync per message, replication to a quorum for R=3).  Each round uses new
# streams.  Events/s counts change records (rows); the best of BENCH_ROUNDS
# rounds (alternating order) is reported, with ratios.
#
# Environment:
#   BENCH_TXNS=N, BENCH_ROWS=N   workload size (default 5000 x 10)
#   BENCH_ROUNDS=N               rounds (default 2)
#   BENCH_KEEP=1                 keep the cluster and the NATS stores
#   PG_CONFIG                    pg_config to use (default: from PATH)
set -eu

PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$($PG_CONFIG --bindir)
pkglibdir=$($PG_CONFIG --pkglibdir)
top=$(cd "$(dirname "$0")/../.." && pwd)
txns=${BENCH_TXNS:-5000}
rowsper=${BENCH_ROWS:-10}
rounds=${BENCH_ROUNDS:-2}
events=$((txns * rowsper))
kr=$(command -v kappa_recv 2>/dev/null || echo "$bindir/kappa_recv")

for f in "$kr" "$bindir/pg_recvlogical" "$pkglibdir/pg_kappa.so"; do
	[ -e "$f" ] || { echo "missing $f (make install)" >&2; exit 1; }
done
command -v nats-server >/dev/null 2>&1 ||
	{ echo "missing nats-server (apt-get install nats-server)" >&2; exit 1; }
if "$kr" -d 'host=/nonexistent' -S s --nats nats://127.0.0.1:1 --nats-stream x \
	--nats-subject y 2>&1 | grep -q 'no NATS support'; then
	echo "$kr was built without NATS support (apt-get install libnats-dev, make install)" >&2
	exit 1
fi

if [ "$(id -u)" = 0 ]; then
	as() { runuser -u postgres -- "$@"; }
	dbuser=postgres
else
	as() { "$@"; }
	dbuser=$(id -un)
fi

dir=$(mktemp -d /tmp/pg_kappa_nats_bench.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" != 0 ] || chown postgres: "$dir"

# free TCP ports on 127.0.0.1, starting at $1
free_port()
{
	p=$1
	while ss -ltnH 2>/dev/null | awk '{ print $4 }' | grep -q ":$p\$" ||
		grep -q " $p\$" "$dir/ports" 2>/dev/null; do
		p=$((p + 1))
	done
	echo " $p" >> "$dir/ports"
	echo "$p"
}
: > "$dir/ports"
port=$(free_port 5460)

cleanup()
{
	for pidf in "$dir"/nats_*.pid; do
		[ -f "$pidf" ] && kill -9 "$(cat "$pidf")" 2>/dev/null || true
	done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "kept: $bindir/pg_ctl -D $dir/data stop; psql -h $dir -p $port -U $dbuser postgres"
		return
	fi
	as "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- NATS: one standalone server (R=1), one three-server cluster (R=3)
start_nats()
{
	# name port [cluster-port route-ports...]
	name=$1 p=$2
	shift 2
	{
		echo "server_name: $name"
		echo "listen: 127.0.0.1:$p"
		echo "jetstream { store_dir: \"$dir/$name\" }"
		if [ $# -gt 0 ]; then
			cp=$1
			shift
			routes=""
			for r in "$@"; do routes="$routes${routes:+, }nats-route://127.0.0.1:$r"; done
			echo "cluster { name: bench, listen: 127.0.0.1:$cp, routes: [ $routes ] }"
		fi
	} > "$dir/$name.conf"
	[ "$(id -u)" != 0 ] || chown postgres: "$dir/$name.conf"
	as sh -c "nats-server -c '$dir/$name.conf' > '$dir/$name.log' 2>&1 & echo \$! > '$dir/nats_$name.pid'"
}
ns=$(free_port 14400)
start_nats single "$ns"
c1=$(free_port 14410); r1=$(free_port 14420)
c2=$(free_port $((c1 + 1))); r2=$(free_port $((r1 + 1)))
c3=$(free_port $((c2 + 1))); r3=$(free_port $((r2 + 1)))
start_nats n1 "$c1" "$r1" "$r2" "$r3"
start_nats n2 "$c2" "$r2" "$r1" "$r3"
start_nats n3 "$c3" "$r3" "$r1" "$r2"
url1="nats://127.0.0.1:$ns"
url3="nats://127.0.0.1:$c1,nats://127.0.0.1:$c2,nats://127.0.0.1:$c3"

# --- PostgreSQL
as "$bindir/initdb" -D "$dir/data" -A trust -U "$dbuser" >/dev/null
{
	sh "$top/test/conf.sh" "$bindir"
	cat <<CONF
# benchmark settings (later lines win over test/conf.sh's)
logical_decoding_work_mem = 64MB
max_wal_size = 10GB
checkpoint_timeout = 1h
fsync = off
autovacuum = off
shared_buffers = 256MB
CONF
} > "$dir/bench.conf"
as sh -c "cat '$dir/bench.conf' >> '$dir/data/postgresql.conf'"
as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
	-o "-p $port -k $dir -c listen_addresses=''" start >/dev/null

psql() { as "$bindir/psql" -X -q -h "$dir" -p "$port" -U "$dbuser" -d postgres -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
conn="host=$dir port=$port user=$dbuser dbname=postgres"

echo "kappa_recv into NATS JetStream: end-to-end benchmark"
echo "  command:  ${BENCH_TXNS:+BENCH_TXNS=$BENCH_TXNS }${BENCH_ROWS:+BENCH_ROWS=$BENCH_ROWS }${BENCH_ROUNDS:+BENCH_ROUNDS=$BENCH_ROUNDS }sh test/bench/nats_bench.sh"
echo "  server:   $(psql -At -c 'SELECT version()')"
echo "  nats:     $(nats-server --version), libnats $(dpkg-query -W -f='${Version}' libnats-dev 2>/dev/null || echo '?')"
echo "  machine:  $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/ { print $2 " GB RAM" }')"
echo "  disk:     $(df -T "$dir" | awk 'NR == 2 { print $2 " on " $1 }') (files, NATS stores and cluster in $dir)"
echo "  load:     $(uptime | sed 's/.*load average/load average/') (at start)"
echo "  workload: $txns transactions of $rowsper inserts = $events events"

# name|command (SLOT, OUT, END and RND, the round, are substituted)
configs="kappa_recv -f, fsync per transaction|$kr -d '$conn' -S SLOT -f OUT -E END
kappa_recv -f, group fsync (-F 1000)|$kr -d '$conn' -S SLOT -f OUT -F 1000 -E END
pg_recvlogical -P pg_kappa|$bindir/pg_recvlogical -d '$conn' -S SLOT --start --no-loop -f OUT -E END
kappa_recv --nats, R=1|$kr -d '$conn' -S SLOT --nats $url1 --nats-stream B1_RND --nats-subject bench.r1.RND -E END
kappa_recv --nats, R=3|$kr -d '$conn' -S SLOT --nats $url3 --nats-stream B3_RND --nats-subject bench.r3.RND -E END
kappa_recv --nats -F 1000, R=1|$kr -d '$conn' -S SLOT --nats $url1 --nats-stream B1F_RND --nats-subject bench.r1f.RND -F 1000 -E END
kappa_recv --nats -F 1000, R=3|$kr -d '$conn' -S SLOT --nats $url3 --nats-stream B3F_RND --nats-subject bench.r3f.RND -F 1000 -E END"

psql <<SQL
CREATE TABLE bench (id int PRIMARY KEY, b bigint, n numeric, t text,
                    ts timestamptz, f bool, j jsonb);
SQL

r=1
while [ $r -le "$rounds" ]; do
	i=1
	printf '%s\n' "$configs" | while IFS='|' read -r name cmd; do
		psql -At -c "SELECT 'x' FROM pg_create_logical_replication_slot('s${r}_$i', 'pg_kappa')" >/dev/null
		i=$((i + 1))
	done
	r=$((r + 1))
done

# the streams, created before the clock starts by a run that publishes
# nothing (a slot of its own, stopped at the current position)
psql -At -c "SELECT 'x' FROM pg_create_logical_replication_slot('warm', 'pg_kappa')" >/dev/null
start=$(psql -At -c "SELECT pg_current_wal_lsn()")
r=1
while [ $r -le "$rounds" ]; do
	for spec in "$url1 B1_$r 1 bench.r1.$r" "$url3 B3_$r 3 bench.r3.$r" \
		"$url1 B1F_$r 1 bench.r1f.$r" "$url3 B3F_$r 3 bench.r3f.$r"; do
		set -- $spec
		tries=0
		# the cluster may still be electing its JetStream leader
		until as "$kr" -d "$conn" -S warm --nats "$1" --nats-stream "$2" --nats-subject "$4" \
			--nats-create-stream --nats-replicas "$3" -E "$start" 2>>"$dir/warm.log"; do
			tries=$((tries + 1))
			[ $tries -lt 30 ] || { echo "could not create stream $2:"; cat "$dir/warm.log"; exit 1; }
			sleep 1
		done
	done
	r=$((r + 1))
done
psql -At -c "SELECT pg_drop_replication_slot('warm')" >/dev/null

t=$(now)
psql <<SQL
DO \$\$
BEGIN
    FOR x IN 0..$txns - 1 LOOP
        INSERT INTO bench
        SELECT i, i::bigint * 1000003, round(i / 7.0, 4), 'customer ' || i || ' ' || md5(i::text),
               timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i % 2 = 0,
               jsonb_build_object('id', i, 'tag', 'x' || (i % 10))
          FROM generate_series(x * $rowsper + 1, x * $rowsper + $rowsper) i;
        COMMIT;
    END LOOP;
END \$\$;
SQL
end=$(psql -At -c "SELECT pg_current_wal_lsn()")
echo "  workload written in $(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s, up to $end"
echo

results="$dir/results"
: > "$results"
[ "$(id -u)" != 0 ] || chown postgres: "$results"
psql -At -c "SELECT count(*) FROM pg_logical_slot_peek_changes('s1_1', '$end', NULL, 'tables', 'none.none')" >/dev/null

r=1
while [ $r -le "$rounds" ]; do
	if [ $((r % 2)) = 1 ]; then order=$(printf '%s\n' "$configs" | nl -w1 -s'|'); else order=$(printf '%s\n' "$configs" | nl -w1 -s'|' | tac); fi
	printf '%s\n' "$order" | while IFS='|' read -r i name cmd; do
		out="$dir/out_${r}_$i"
		c=$(printf '%s' "$cmd" | sed "s|SLOT|s${r}_$i|g; s|OUT|$out|; s|END|$end|; s|RND|$r|g")
		t=$(now)
		as sh -c "$c" 2>"$dir/err_${r}_$i" || { echo "$name failed:"; cat "$dir/err_${r}_$i"; exit 1; }
		secs=$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
		echo "$name|$secs" >> "$results"
		printf '  round %d  %-38s %8s s\n' "$r" "$name" "$secs"
	done
	r=$((r + 1))
done
echo "  load:     $(uptime | sed 's/.*load average/load average/') (at end)"
echo

best()
{
	awk -F'|' -v n="$1" '$1 == n && (b == "" || $2 < b) { b = $2; l = $0 } END { print l }' "$results"
}
ref=$(best "pg_recvlogical -P pg_kappa" | cut -d'|' -f2)
file=$(best "kappa_recv -f, fsync per transaction" | cut -d'|' -f2)
group=$(best "kappa_recv -f, group fsync (-F 1000)" | cut -d'|' -f2)
printf '%-38s %8s %11s %14s %12s %12s\n' "consumer" "seconds" "events/s" "vs recvlogical" "vs -f" "vs -f -F1000"
printf '%s\n' "$configs" | while IFS='|' read -r name cmd; do
	best "$name" | awk -F'|' -v e="$events" -v r="$ref" -v f="$file" -v g="$group" '{
		printf "%-38s %8.3f %11.0f %14.2f %12.2f %12.2f\n", $1, $2, e / $2, r / $2, f / $2, g / $2 }'
done
echo "(events/s: change records delivered per second, end to end, best of $rounds rounds;"
echo " ratios: events/s relative to the named consumer; --nats waits for the PubAck of"
echo " each transaction's message before acknowledging the slot; with -F it publishes"
echo " ahead and acknowledges the slot once every PubAck of the group came back)"
