# Two-phase commit with a slot created with two_phase: begin_prepare and
# prepare around the changes at PREPARE TRANSACTION, then commit_prepared
# or rollback_prepared; streamed prepared transactions (stream_prepare);
# and a slot without two_phase sees the transaction at COMMIT PREPARED.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('twophase', extra_conf => 'max_prepared_transactions = 10');
$node->safe_psql('postgres', q{
	SELECT 'init' FROM pg_create_logical_replication_slot('tp', 'pg_kappa', false, true);
	SELECT 'init' FROM pg_create_logical_replication_slot('plain', 'pg_kappa');
	CREATE TABLE t (id int PRIMARY KEY, v text);
});

sub get
{
	my ($slot, @opts) = @_;
	my $o = join('', map { ", '$_'" } @opts);
	my $text = $node->safe_psql('postgres',
		"SELECT data FROM pg_logical_slot_get_changes('$slot', NULL, NULL$o)");
	return decode_lines($text, "slot $slot");
}
sub kinds { return join(' ', map { $_->{kind} } @_); }

# every record with lsn and end_lsn has end_lsn after lsn
sub lsn_num { my ($hi, $lo) = split m{/}, $_[0]; return hex($hi) * 2**32 + hex($lo); }
sub lsns_ok
{
	my @bad = grep { defined $_->{end_lsn} && lsn_num($_->{end_lsn}) <= lsn_num($_->{lsn}) } @_;
	diag("end_lsn not after lsn: $_->{kind} $_->{lsn} $_->{end_lsn}") foreach @bad;
	return !@bad;
}

# PREPARE, then COMMIT PREPARED
$node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO t VALUES (1, 'prepared');
	UPDATE t SET v = 'updated' WHERE id = 1;
	SELECT 'm' FROM pg_logical_emit_message(true, 'p', 'in it');
	PREPARE TRANSACTION 'g1 "quoted" é';
});
my @o = get('tp');
is(kinds(@o), 'begin_prepare insert update message prepare', 'PREPARE decoded as it happens');
my ($bp, $p) = ($o[0], $o[-1]);
is($bp->{gid}, 'g1 "quoted" é', 'gid, escaped');
is($p->{gid}, $bp->{gid}, 'prepare names the same gid');
is($p->{xid}, $bp->{xid}, '... and xid');
is($p->{changes}, 3, 'prepare counts its changes');
like($p->{checksum}, qr/^[0-9a-f]{8}$/, 'and has a checksum');
like($p->{prepare_time}, qr/^\d{4}-\d\d-\d\dT[\d:.]+\+00:00$/, 'prepare_time');
ok(lsns_ok(@o), 'end_lsn after lsn');
is(kinds(get('plain')), '', 'a slot without two_phase sees nothing yet');

$node->safe_psql('postgres', q{COMMIT PREPARED 'g1 "quoted" é'});
@o = get('tp');
is(kinds(@o), 'commit_prepared', 'COMMIT PREPARED');
is($o[0]{gid}, 'g1 "quoted" é', 'with the gid');
is($o[0]{xid}, $bp->{xid}, 'and the xid');
like($o[0]{commit_time}, qr/\+00:00$/, 'and commit_time');
ok(lsns_ok(@o), 'end_lsn after lsn');
@o = get('plain');
is(kinds(@o), 'begin insert update message commit', 'the other slot sees it committed, as usual');
is($o[-1]{checksum}, $p->{checksum}, 'same changes, same checksum');

# PREPARE, then ROLLBACK PREPARED
$node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO t VALUES (2, 'rolled back');
	PREPARE TRANSACTION 'g2';
});
@o = get('tp');
is(kinds(@o), 'begin_prepare insert prepare', 'PREPARE');
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'g2'});
my @r = get('tp');
is(kinds(@r), 'rollback_prepared', 'ROLLBACK PREPARED');
my $rb = $r[0];
is($rb->{gid}, 'g2', 'with the gid');
is($rb->{xid}, $o[0]{xid}, 'and the xid');
ok(defined $rb->{prepare_time} && defined $rb->{rollback_time}, 'prepare and rollback times');
ok(lsn_num($rb->{lsn}) > lsn_num($o[-1]{lsn}), 'its lsn is after the prepare');
is($rb->{prepare_end_lsn}, $o[-1]{end_lsn}, 'prepare_end_lsn is the end of the PREPARE');
ok(lsns_ok(@o, @r), 'end_lsn after lsn');
is(kinds(get('plain')), '', 'a slot without two_phase sees nothing');

# rolled back before it was decoded: once the server notices, it stops
# decoding the prepared transaction (here before anything was written), and
# the ROLLBACK PREPARED is written
$node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO t VALUES (2, 'rolled back');
	PREPARE TRANSACTION 'g2b';
	ROLLBACK PREPARED 'g2b';
});
@r = get('tp');
like(kinds(@r), qr/^(begin_prepare insert prepare )?rollback_prepared$/,
	'rolled back before decoding: rollback_prepared, after the prepare if it was decoded');
ok(lsns_ok(@r), 'end_lsn after lsn');

# include-xids off and empty prepared transactions
$node->safe_psql('postgres', q{
	BEGIN;
	CREATE TABLE t2 (id int);
	PREPARE TRANSACTION 'empty';
	COMMIT PREPARED 'empty';
	BEGIN;
	INSERT INTO t VALUES (3, 'x');
	PREPARE TRANSACTION 'g3';
	COMMIT PREPARED 'g3';
});
@o = get('tp', 'include-xids', 'off');
is(kinds(@o), 'commit_prepared begin_prepare insert prepare commit_prepared',
	'an empty prepared transaction: only its COMMIT PREPARED');
ok(!grep({ defined $_->{xid} } @o), 'include-xids off drops xids');
@o = get('tp', 'skip-empty-xacts', 'off');
is(kinds(@o), '', 'nothing left');

# a large prepared transaction, streamed
$node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO t SELECT g, 'big' FROM generate_series(100, 3099) g;
	PREPARE TRANSACTION 'big';
});
@o = get('tp', 'streaming', 'on');
my @k = map { $_->{kind} } @o;
is($k[0], 'stream_start', 'streamed');
is($k[-1], 'stream_prepare', 'ends with stream_prepare');
is($o[-1]{gid}, 'big', 'with the gid');
is($o[-1]{changes}, 3000, 'counting every streamed change');
is(scalar(grep { $_ eq 'insert' } @k), 3000, 'all changes');
$node->safe_psql('postgres', q{COMMIT PREPARED 'big'});
@o = get('tp', 'streaming', 'on');
is(kinds(@o), 'commit_prepared', 'then commit_prepared');

# prepared before a restart, committed after
$node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO t VALUES (4, 'across a restart');
	PREPARE TRANSACTION 'g4';
});
is(kinds(get('tp')), 'begin_prepare insert prepare', 'prepared');
$node->restart;
$node->safe_psql('postgres', q{COMMIT PREPARED 'g4'});
is(kinds(get('tp')), 'commit_prepared', 'committed after the restart, not decoded again');

$node->stop;
done_testing();
