# KappaTest.pm
#
# Shared setup for pg_kappa's TAP tests: a PostgreSQL::Test::Cluster node
# configured for logical decoding with pg_kappa preloaded, and a helper that
# validates that every line of decoded output is one JSON object.
#
# It deliberately knows nothing about any single test's schema.

package KappaTest;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Exporter 'import';

our @EXPORT = qw(kappa_node acct_writes_script kappa_plugin_conf decode_lines view_matches
  kappa_publisher publisher_conninfo publisher_lsn replica_wait replica_exact);

# Lines every pg_kappa test cluster needs.  output_plugin_libraries exists
# from 15.19 on; older minors refuse to start when it is present, so it is
# added only when the server binary knows it.
sub kappa_plugin_conf
{
	my $conf = "wal_level = logical\n"
	  . "shared_preload_libraries = 'pg_kappa'\n"
	  . "max_replication_slots = 20\n"
	  . "max_wal_senders = 20\n"
	  . "max_worker_processes = 32\n"
	  . "logical_decoding_work_mem = 64kB\n";
	my $desc = `postgres --describe-config 2>/dev/null`;
	if ($desc =~ /^output_plugin_libraries\t/m)
	{
		$conf .= "output_plugin_libraries = 'pgoutput, test_decoding, wal2json, pg_kappa'\n";
	}
	return $conf;
}

# Create, configure and start a node; extra lines go to postgresql.conf.
sub kappa_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', kappa_plugin_conf());
	$node->append_conf('postgresql.conf', $opts{extra_conf})
	  if defined $opts{extra_conf};
	$node->start unless $opts{no_start};
	return $node;
}

# Parse decoded output: returns the list of lines, failing the test for any
# line that is not a single JSON object.  JSON::PP ships with perl.
sub decode_lines
{
	my ($text, $what) = @_;
	require JSON::PP;
	my $json = JSON::PP->new;
	my @objs;
	my $bad = 0;
	foreach my $line (split /\n/, $text)
	{
		next if $line eq '';
		my $obj = eval { $json->decode($line) };
		if (!defined $obj || ref($obj) ne 'HASH')
		{
			diag("not a JSON object: $line");
			$bad++;
			next;
		}
		push @objs, $obj;
	}
	is($bad, 0, ($what // 'output') . ': every line is a JSON object');
	return @objs;
}

# Wait for a derived view, then compare it with its query both ways as
# multisets; passes when nothing is missing or extra.
sub view_matches
{
	my ($node, $view, $query, $label) = @_;
	my $res = $node->safe_psql('postgres', qq{
SELECT kappa.wait('$view', timeout => '120s');
SELECT (SELECT count(*) FROM (($query) EXCEPT ALL SELECT * FROM $view) a) || ' ' ||
       (SELECT count(*) FROM (SELECT * FROM $view EXCEPT ALL ($query)) b) || ' ' ||
       (SELECT count(*) FROM (SELECT ROW(q.*)::text FROM ($query) q EXCEPT ALL SELECT ROW(v.*)::text FROM $view v) c) || ' ' ||
       (SELECT count(*) FROM (SELECT ROW(v.*)::text FROM $view v EXCEPT ALL SELECT ROW(q.*)::text FROM ($query) q) d);
});
	# equal as values, and as text (a numeric's display scale, say)
	is($res, "t\n0 0 0 0", "$label: $view equals its query");
}

# A plain publisher for the replica tests: logical WAL, no pg_kappa.
# A pgbench script of the acct/hist workload (021_views_pgbench, the
# replica tests): account aid in 1..$accounts gets a balance change and a
# history row in one transaction, then moves to another branch; then the
# lines of @more.  $KappaTest::hist_trim deletes an account's last history
# row now and then.
our $hist_trim =
  'DELETE FROM hist WHERE id = (SELECT max(id) FROM hist WHERE acct_id = :aid) AND :delta < -15;';

sub acct_writes_script
{
	my ($accounts, @more) = @_;
	my $script = PostgreSQL::Test::Utils::tempdir() . '/writes.sql';

	open(my $fh, '>', $script) or die "could not write $script: $!";
	print $fh join("\n",
		"\\set aid random(1, $accounts)",
		'\set delta random(-20, 40)',
		'\set branch random(0, 12)',
		'BEGIN;',
		'UPDATE acct SET balance = balance + :delta WHERE id = :aid;',
		'INSERT INTO hist (acct_id, delta) VALUES (:aid, :delta);',
		'END;',
		'UPDATE acct SET branch = :branch WHERE id = :aid;',
		@more), "\n";
	close($fh);
	return $script;
}

sub kappa_publisher
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', "max_wal_senders = 20\nmax_replication_slots = 20\n");
	$node->start;
	return $node;
}

# The publisher's connection string for CREATE SUBSCRIPTION (no quotes)
sub publisher_conninfo
{
	my ($primary) = @_;
	return 'host=' . $primary->host . ' port=' . $primary->port . ' dbname=postgres';
}

# What an application reads on the publisher after its commit, to wait for
# it on a subscriber: pg_current_wal_insert_lsn().
sub publisher_lsn
{
	my ($primary) = @_;
	return $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
}

# kappa.wait on a subscriber for origin LSN $lsn; extra arguments as SQL
# ("subscription => 'sub1'").  Returns 't' or 'f'.
sub replica_wait
{
	my ($sub, $view, $lsn, $extra) = @_;
	$extra = defined $extra ? ", $extra" : '';
	return $sub->safe_psql('postgres',
		"SELECT kappa.wait('$view', origin_lsn => '$lsn', timeout => '120s'$extra)");
}

# After the writers stopped: wait on the subscriber for the publisher's
# current position (once per subscription in $subs when given: a view
# whose sources come through several), then the view must be exact
# (kappa.verify finds nothing) and equal, row for row, to its query run on
# the publisher.
sub replica_exact
{
	my ($primary, $sub, $view, $query, $label, $subs) = @_;
	my $lsn = publisher_lsn($primary);
	foreach my $s (defined $subs ? @$subs : (undef))
	{
		is(replica_wait($sub, $view, $lsn, defined $s ? "subscription => '$s'" : undef),
			't', "$label: $view waited for $lsn" . (defined $s ? " through $s" : ''));
	}
	is($sub->safe_psql('postgres', "SELECT count(*) FROM kappa.verify('$view')"),
		'0', "$label: kappa.verify finds nothing in $view");
	my $there = $primary->safe_psql('postgres',
		"SELECT ROW(q.*)::text FROM ($query) q ORDER BY 1");
	my $here = $sub->safe_psql('postgres',
		"SELECT ROW(v.*)::text FROM $view v ORDER BY 1");
	ok($here eq $there, "$label: $view equals its query on the publisher")
	  or diag("publisher:\n" . substr($there, 0, 2000) . "\nview:\n" . substr($here, 0, 2000));
}

1;
