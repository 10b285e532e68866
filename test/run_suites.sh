#!/bin/sh
# test/run_suites.sh WORK — run by test/check.sh, as a non-root user.
#
# Runs pg_regress (sql/, expected/), the isolation specs (test/isolation/)
# and the TAP tests (test/t/) against the staged installation in WORK, and
# prints one closing line "N passed, N failed" counting regression tests,
# isolation specs and TAP files.  Optional: SUITES="regress isolation tap"
# and TAP_TESTS="test/t/010_x.pl ..." to run a subset.
set -u
ulimit -c unlimited 2>/dev/null || true

work=$1
. "$work/env.sh"
src="$work/src"
PATH="$staged_bindir:$PATH"
export PATH
unset PGDATA PGPORT PGHOST PGDATABASE PGUSER PGSERVICE
pgxs="$staged_pkglibdir/pgxs"
suites=${SUITES:-regress isolation tap}
passed=0
failed=0
cd "$work"

sh "$src/test/conf.sh" "$staged_bindir" > "$work/temp.conf"
echo "fsync = off" >> "$work/temp.conf"

# count "ok" / "failed" lines in pg_regress-style output
count_regress()
{
	p=$(grep -cE '^(test | +|     )?[a-z_0-9 ]*\.\.\. +ok|^ok ' "$1")
	f=$(grep -cE '\.\.\. +FAILED|^not ok ' "$1")
	passed=$((passed + p))
	failed=$((failed + f))
}

for suite in $suites; do
	case $suite in
	regress)
		tests=$(cd "$src/sql" && ls *.sql 2>/dev/null | sed 's/\.sql$//' | sort)
		[ -n "$tests" ] || continue
		echo "=== pg_regress"
		"$pgxs/src/test/regress/pg_regress" \
			--temp-instance="$work/tmp_regress" --bindir="$staged_bindir" \
			--temp-config="$work/temp.conf" --inputdir="$src" \
			--outputdir="$work/out_regress" --dbname=contrib_regression \
			$tests > "$work/regress.out" 2>&1
		rc=$?
		cat "$work/regress.out"
		count_regress "$work/regress.out"
		if [ $rc -ne 0 ] && [ -f "$work/out_regress/regression.diffs" ]; then
			head -200 "$work/out_regress/regression.diffs"
		fi
		if [ $rc -ne 0 ] && ! grep -qE 'FAILED|not ok' "$work/regress.out"; then
			failed=$((failed + 1))
		fi
		;;
	isolation)
		specs=$(cd "$src/test/isolation/specs" 2>/dev/null && ls *.spec 2>/dev/null | sed 's/\.spec$//' | sort)
		[ -n "$specs" ] || continue
		echo "=== isolation"
		"$pgxs/src/test/isolation/pg_isolation_regress" \
			--temp-instance="$work/tmp_isolation" --bindir="$staged_bindir" \
			--temp-config="$work/temp.conf" --inputdir="$src/test/isolation" \
			--outputdir="$work/out_isolation" --dbname=isolation_regression \
			$specs > "$work/isolation.out" 2>&1
		rc=$?
		cat "$work/isolation.out"
		count_regress "$work/isolation.out"
		if [ $rc -ne 0 ] && [ -f "$work/out_isolation/regression.diffs" ]; then
			head -200 "$work/out_isolation/regression.diffs"
		fi
		if [ $rc -ne 0 ] && ! grep -qE 'FAILED|not ok' "$work/isolation.out"; then
			failed=$((failed + 1))
		fi
		;;
	tap)
		tapfiles=${TAP_TESTS:-$(cd "$src" && ls test/t/*.pl 2>/dev/null | sort)}
		[ -n "$tapfiles" ] || continue
		echo "=== TAP"
		mkdir -p "$work/tap"
		for t in $tapfiles; do
			name=$(basename "$t" .pl)
			mkdir -p "$work/tap/$name"
			if (cd "$src" && TESTDIR="$work/tap/$name" \
				PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
				PERL5LIB="$pgxs/src/test/perl:$src/test/perl${PERL5LIB:+:$PERL5LIB}" \
				prove "$t") > "$work/tap/$name.out" 2>&1; then
				echo "tap $name ... ok"
				passed=$((passed + 1))
			else
				echo "tap $name ... FAILED"
				failed=$((failed + 1))
				tail -40 "$work/tap/$name.out"
				for log in "$work/tap/$name"/tmp_check/log/*; do
					[ -f "$log" ] || continue
					echo "--- $log (last 30 lines)"
					tail -30 "$log"
				done
			fi
		done
		;;
	esac
done

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
