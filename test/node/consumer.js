#!/usr/bin/env node
// consumer.js: read pg_kappa events with the npm client
// pg-logical-replication, through a small output-plugin adapter of our own,
// and check every committed transaction: its change count and its CRC-32C
// checksum against the commit record, that no transaction arrives twice,
// and that commit LSNs increase.  Verified transactions are written to
// --out as JSON lines, exactly as received; a position is acknowledged only
// once the transaction holding it has been verified.
//
// usage: node consumer.js --slot NAME --endpos LSN --out FILE [--timeout SECS]
//        [-o name=value ...]
// Connection: PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD.
// Exit status: 0 done, 1 usage, 2 connection or server error,
// 3 checksum/count mismatch or malformed stream, 4 duplicate or out of
// order transaction, 5 timeout.

'use strict';

const fs = require('fs');
const { LogicalReplicationService } = require('pg-logical-replication');
// the base class of the package's own plugins; not re-exported by its index
const { AbstractPlugin } = require('pg-logical-replication/dist/output-plugins/abstract.plugin.js');

// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, as pg_crc32c.
const CRC_TABLE = (() => {
	const t = new Uint32Array(256);
	for (let i = 0; i < 256; i++) {
		let c = i;
		for (let k = 0; k < 8; k++)
			c = (c & 1) ? ((c >>> 1) ^ 0x82f63b78) : (c >>> 1);
		t[i] = c >>> 0;
	}
	return t;
})();

// running CRC: start with 0xffffffff, finish with ^ 0xffffffff
function crcUpdate(crc, buf) {
	for (let i = 0; i < buf.length; i++)
		crc = CRC_TABLE[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
	return crc >>> 0;
}

const NEWLINE = Buffer.from('\n');

// The output-plugin adapter: how pg-logical-replication starts pg_kappa and
// turns one XLogData payload into something its 'data' event carries.  The
// raw bytes are kept, because the checksum is defined over them.
class PgKappaPlugin extends AbstractPlugin {
	get name() {
		return 'pg_kappa';
	}

	async start(client, slotName, lastLsn) {
		const opts = Object.entries(this.options || {}).map(
			([k, v]) => `"${k.replace(/"/g, '""')}" '${String(v).replace(/'/g, "''")}'`);
		let sql = `START_REPLICATION SLOT "${slotName.replace(/"/g, '""')}" LOGICAL ${lastLsn}`;
		if (opts.length > 0)
			sql += ` (${opts.join(', ')})`;
		return client.query(sql);
	}

	parse(buffer) {
		const raw = Buffer.from(buffer);
		return { raw, record: JSON.parse(raw.toString('utf8')) };
	}
}

function lsnToBigInt(lsn) {
	const [hi, lo] = lsn.split('/');
	return (BigInt('0x' + hi) << 32n) | BigInt('0x' + lo);
}

function parseArgs(argv) {
	const args = { options: {}, timeout: 60 };
	for (let i = 2; i < argv.length; i++) {
		const a = argv[i];
		const next = () => {
			if (i + 1 >= argv.length)
				usage(`${a} needs a value`);
			return argv[++i];
		};
		if (a === '--slot')
			args.slot = next();
		else if (a === '--endpos')
			args.endpos = next();
		else if (a === '--out')
			args.out = next();
		else if (a === '--timeout')
			args.timeout = Number(next());
		else if (a === '-o') {
			const kv = next();
			const eq = kv.indexOf('=');
			if (eq < 0)
				args.options[kv] = 'on';
			else
				args.options[kv.slice(0, eq)] = kv.slice(eq + 1);
		}
		else
			usage(`unknown argument "${a}"`);
	}
	if (!args.slot || !args.endpos || !args.out)
		usage('--slot, --endpos and --out are required');
	return args;
}

function usage(msg) {
	process.stderr.write(`consumer.js: ${msg}\n` +
		'usage: node consumer.js --slot NAME --endpos LSN --out FILE [--timeout SECS] [-o name=value ...]\n');
	process.exit(1);
}

async function main() {
	const args = parseArgs(process.argv);
	const endpos = lsnToBigInt(args.endpos);
	const service = new LogicalReplicationService({}, {
		acknowledge: { auto: false, timeoutSeconds: 0 },
	});
	const plugin = new PgKappaPlugin(args.options);
	const out = fs.openSync(args.out, 'w');

	let open = null;			// the transaction being received
	let acked = '0/0';			// highest verified position
	let lastCommit = -1n;
	const seen = new Set();
	const stats = { transactions: 0, changes: 0, singles: 0 };
	let finished = false;

	const finish = async (code, msg) => {
		if (finished)
			return;
		finished = true;
		if (msg)
			process.stderr.write(`consumer.js: ${msg}\n`);
		try {
			if (code === 0)
				await service.acknowledge(acked);
			await service.stop();
		} catch (e) {
			// the connection may already be gone
		}
		fs.closeSync(out);
		if (code === 0)
			process.stdout.write(JSON.stringify(stats) + '\n');
		process.exit(code);
	};

	const timer = setTimeout(() => finish(5, `timed out after ${args.timeout} s`),
		args.timeout * 1000);
	timer.unref();

	service.on('data', (lsn, { raw, record }) => {
		const kind = record.kind;
		if (kind === 'begin') {
			if (open)
				return finish(3, `begin of ${record.xid} inside transaction ${open.xid}`);
			open = { xid: record.xid, lines: [raw], crc: 0xffffffff, n: 0 };
		}
		else if (kind === 'commit') {
			if (!open)
				return finish(3, `commit of ${record.xid} without begin`);
			const sum = ((open.crc ^ 0xffffffff) >>> 0).toString(16).padStart(8, '0');
			if (open.n !== record.changes || sum !== record.checksum)
				return finish(3, `transaction ${record.xid}: ${open.n} changes, checksum ${sum}; ` +
					`commit record says ${record.changes}, ${record.checksum}`);
			if (seen.has(record.xid))
				return finish(4, `transaction ${record.xid} delivered twice`);
			seen.add(record.xid);
			const commit = lsnToBigInt(record.lsn);
			if (commit <= lastCommit)
				return finish(4, `transaction ${record.xid} out of commit order`);
			lastCommit = commit;
			open.lines.push(raw);
			for (const l of open.lines) {
				fs.writeSync(out, l);
				fs.writeSync(out, NEWLINE);
			}
			stats.transactions++;
			stats.changes += open.n;
			open = null;
			acked = record.end_lsn;
			service.acknowledge(acked);
			if (lsnToBigInt(record.end_lsn) >= endpos)
				return finish(0);
		}
		else if (open) {
			open.crc = crcUpdate(crcUpdate(open.crc, raw), NEWLINE);
			open.n++;
			open.lines.push(raw);
		}
		else {
			// a record standing alone (non-transactional message)
			fs.writeSync(out, raw);
			fs.writeSync(out, NEWLINE);
			stats.singles++;
		}
	});

	service.on('heartbeat', (lsn, timestamp, shouldRespond) => {
		if (!open && lsnToBigInt(lsn) >= endpos)
			return finish(0);
		if (shouldRespond)
			service.acknowledge(acked);
	});

	service.on('error', (e) => finish(2, `replication error: ${e.message || e}`));

	try {
		await service.subscribe(plugin, args.slot);
	} catch (e) {
		await finish(2, `could not stream: ${e.message || e}`);
	}
}

main();
