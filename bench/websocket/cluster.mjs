// Websocket-server benchmark on a cluster: three `hero --redis` nodes on one redis-server,
// loopback only, bounded in count and time (see README.md in this directory):
//   1. `say` fan-out to MEMBERS connections spread round-robin over the 3 nodes: deliveries/s,
//      delivery latency, lost/duplicated deliveries, Redis commands per say, server CPU;
//   2. `randomNumber` round trips over one websocket connection on node 1: p50/p99, Redis
//      commands per action, server CPU.
// Clients are actionheroClient.js (as hero serves it) on the real npm faye client.
//
//   HERO_BIN=target/release/hero node bench/websocket/cluster.mjs [KEY=VALUE ...]
//   (KEY=VALUE arguments or environment variables; see KNOBS below)
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { startHero } from '../../tests/js/lib/hero.mjs';
import { startRedis } from '../../tests/js/lib/redis.mjs';
import { stopNode, destroyFaye, fold } from '../../tests/js/lib/cluster.mjs';
import { loadClient, connect, call, settle, TRANSPORTS } from '../../tests/js/lib/actionhero.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// ---- knobs: KEY=VALUE arguments override the environment, which overrides the defaults ----
const KNOBS = {
  MEMBERS: '100,1000', // fan-out member counts (one scenario each), including the sender
  SAYS: '200', // says sent back to back by the sender (throughput, burst latency, commands/say)
  PACED: '20', // then says one at a time, each once all members got the previous one (latency)
  ROUNDTRIPS: '2000', // timed randomNumber calls, one at a time
  WARMUP: '200', // untimed randomNumber calls before them
  ROUNDS: '1', // repeats; the table gives medians [min–max]
  NODES: '3',
  IDLE_MS: '2000', // idle window before each measurement (commands/s at rest, subtracted) and tail after it
  JOIN_BATCH: '50', // connections set up at once
  TIMEOUT_S: '570', // the whole run gives up after this long
  REDIS_CLI: 'redis-cli',
  OUT: 'target/bench/websocket-cluster', // node logs and JSON lines (relative to the repository)
};
const given = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^([A-Z_]+)=(.*)$/.exec(a);
  if (!m || !(m[1] in KNOBS)) { console.error(`unknown argument ${a}; knobs: ${Object.keys(KNOBS).join(' ')}`); process.exit(64); }
  return [m[1], m[2]];
}));
const knob = (k) => given[k] ?? process.env[k] ?? KNOBS[k];
const int = (k) => { const v = Number(knob(k)); if (!Number.isInteger(v) || v < 0) { console.error(`${k}: not a count: ${knob(k)}`); process.exit(64); } return v; };
const cfg = {
  members: String(knob('MEMBERS')).split(/[ ,]+/).filter(Boolean).map(Number),
  says: int('SAYS'), paced: int('PACED'), roundTrips: int('ROUNDTRIPS'), warmup: int('WARMUP'),
  rounds: Math.max(1, int('ROUNDS')), nodes: Math.max(1, int('NODES')), idleMs: int('IDLE_MS'),
  joinBatch: Math.max(1, int('JOIN_BATCH')), timeoutS: int('TIMEOUT_S'),
};
if (cfg.members.some((m) => !Number.isInteger(m) || m < 2)) { console.error('MEMBERS: counts of at least 2'); process.exit(64); }
const heroBin = path.resolve(root, process.env.HERO_BIN || 'target/release/hero');
const outDir = path.resolve(root, knob('OUT'));
mkdirSync(outDir, { recursive: true });
const jsonl = path.join(outDir, 'results.jsonl');
const websocket = TRANSPORTS[0];
const ROOM = 'defaultRoom';
const runId = `${process.pid}-${randomBytes(3).toString('hex')}`;
const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

// ---- our children, killed on any exit (never anything else) ----
const children = new Set();
process.on('exit', () => { for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { console.error(`bench: ${sig}`); process.exit(130); });
const deadline = setTimeout(() => { console.error(`bench: over ${cfg.timeoutS} s, giving up (children killed)`); process.exit(2); }, cfg.timeoutS * 1000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** `promise`, or a rejection naming `label` after `ms`. */
function within(ms, promise, label) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${label}: not within ${ms} ms`)), ms); })]).finally(() => clearTimeout(t));
}

// ---- measurements ----
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64/arm64
/** utime+stime of `pid` (the whole process, all threads) in seconds. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
/** CPU seconds the whole machine spent busy (all cores; /proc/stat: all but idle and iowait). */
function machineBusy() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + steal) / CLK_TCK;
}
function cpuOf(pids) {
  const per = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  return { at: performance.now(), per, client: process.cpuUsage(), machine: machineBusy() };
}
function cpuDelta(a, b) {
  const per = Object.fromEntries(Object.keys(a.per).map((k) => [k, b.per[k] - a.per[k]]));
  const servers = Object.values(per).reduce((s, v) => s + v, 0);
  const client = (b.client.user + b.client.system - a.client.user - a.client.system) / 1e6;
  const seconds = (b.at - a.at) / 1000;
  // Cores busy on the machine, and how many of them were not ours (servers + this process).
  const machineCores = (b.machine - a.machine) / seconds;
  return { seconds, servers, per, client, machineCores: +machineCores.toFixed(2), otherCores: +(machineCores - (servers + client) / seconds).toFixed(2) };
}

/** `INFO commandstats` through redis-cli: {command: calls}. */
function commandStats(port) {
  return new Promise((resolve, reject) => {
    execFile(knob('REDIS_CLI'), ['-h', '127.0.0.1', '-p', String(port), 'info', 'commandstats'], { timeout: 5000 }, (err, stdout) => {
      if (err) return reject(err);
      const calls = {}; const usec = {};
      for (const m of stdout.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) { calls[m[1]] = Number(m[2]); usec[m[1]] = Number(m[3]); }
      resolve({ at: performance.now(), calls, usec });
    });
  });
}
/** Commands between two snapshots, less the first snapshot's own INFO (a snapshot does not count itself). */
function commandDelta(a, b) {
  const out = {};
  for (const k of new Set([...Object.keys(a.calls), ...Object.keys(b.calls)])) {
    const d = (b.calls[k] || 0) - (a.calls[k] || 0) - (k === 'info' ? 1 : 0);
    if (d) out[k] = d;
  }
  const usec = {};
  for (const k of Object.keys(out)) usec[k] = (b.usec[k] || 0) - (a.usec[k] || 0);
  return { seconds: (b.at - a.at) / 1000, calls: out, usec, total: Object.values(out).reduce((s, v) => s + v, 0) };
}
/** Commands of `window` less `idle`'s rate over the window's length, per `per` units: {total, by command}. */
function netPer(window, idle, per) {
  const f = idle.seconds > 0 ? window.seconds / idle.seconds : 0;
  const by = {};
  for (const k of new Set([...Object.keys(window.calls), ...Object.keys(idle.calls)])) {
    by[k] = ((window.calls[k] || 0) - (idle.calls[k] || 0) * f) / per;
  }
  return { total: (window.total - idle.total * f) / per, raw: window.total / per, by, rawBy: Object.fromEntries(Object.entries(window.calls).map(([k, v]) => [k, v / per])) };
}
const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN);
const ms3 = (v) => +v.toFixed(3);

// ---- the cluster ----
const redis = await startRedis();
children.add({ get exitCode() { return redis.running ? null : 0; }, signalCode: null, kill: () => process.kill(redis.pid, 'SIGKILL') });
{ // Self-check: two snapshots in a row differ by exactly the first one's INFO.
  const a = await commandStats(redis.port);
  const b = await commandStats(redis.port);
  const d = commandDelta(a, b);
  if (d.total !== 0) throw new Error(`redis-cli adds commands of its own: ${JSON.stringify(d.calls)}`);
}
let AC; // actionheroClient.js as the first node serves it

/** Fresh namespace, empty Redis with reset stats, `cfg.nodes` nodes; runs fn(nodes), then stops them and saves their logs. */
async function withCluster(label, fn) {
  await redis.command('FLUSHALL');
  await redis.command('CONFIG', 'RESETSTAT');
  const namespace = `bench-ws-${runId}-${label}`;
  const started = await Promise.allSettled(Array.from({ length: cfg.nodes }, () => startHero(['--redis', redis.url], {
    bin: heroBin, env: { HERO_CLUSTER__NAMESPACE: namespace, RUST_LOG: process.env.RUST_LOG || 'warn,hero::cli=info' },
  })));
  const nodes = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
  for (const n of nodes) children.add(n.proc);
  const clients = [];
  const notes = { namespace };
  try {
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    if (!AC) AC = await loadClient(nodes[0].url);
    return await fn(nodes, clients, notes);
  } finally {
    const fayes = clients.filter(Boolean).map((c) => c.client).filter(Boolean);
    for (const c of clients.filter(Boolean)) { try { c.disconnect(); } catch { /* closed */ } }
    await settle(10000);
    for (const f of fayes) destroyFaye(f); // any that could not say goodbye
    await Promise.all(nodes.map((n) => stopNode(n)));
    nodes.forEach((n, i) => {
      writeFileSync(path.join(outDir, `${label}-node${i + 1}.log`), n.logs.join('\n') + '\n');
      const bad = n.logs.filter((l) => /\b(WARN|ERROR)\b/.test(l));
      if (bad.length) {
        notes.nodeLogWarnings = (notes.nodeLogWarnings || 0) + bad.length;
        log(`${label} node ${i + 1}: ${bad.length} WARN/ERROR lines, e.g.:\n  ${fold(bad).slice(0, 6).join('\n  ')}`);
      }
      if (n.proc.exitCode !== 0 && n.proc.signalCode !== 'SIGTERM') notes[`node${i + 1}Exit`] = n.proc.exitCode ?? n.proc.signalCode;
    });
  }
}
const pidsOf = (nodes) => ({ ...Object.fromEntries(nodes.map((n, i) => [`node${i + 1}`, n.proc.pid])), redis: redis.pid });

// ---- 1. say fan-out ----
async function fanout(members, round) {
  return withCluster(`fanout${members}-r${round}`, async (nodes, clients, notes) => {
    const tJoin = performance.now();
    for (let i = 0; i < members; i += cfg.joinBatch) {
      const batch = await within(60000, Promise.all(Array.from({ length: Math.min(cfg.joinBatch, members - i) }, async (_, k) => {
        const node = nodes[(i + k) % nodes.length];
        const { client } = await connect(AC, node.url, websocket, { timeout: 15000 });
        client.benchNode = (i + k) % nodes.length;
        clients[i + k] = client; // in order: the sender, clients[0], is on node 1
        const joined = await call.roomAdd(client, ROOM);
        if (joined.status !== 'OK') throw new Error(`roomAdd on node ${client.benchNode + 1}: ${JSON.stringify(joined)}`);
        return client;
      })), `joining members ${i}..${i + cfg.joinBatch}`);
      void batch;
    }
    const joinSeconds = (performance.now() - tJoin) / 1000;
    const [sender, ...receivers] = clients;
    if (sender.benchNode !== 0) throw new Error('the sender is not on node 1');
    const view = await within(10000, call.roomView(sender, ROOM), 'roomView');
    if (view?.data?.membersCount !== members) throw new Error(`roomView after the joins: ${members} expected, ${JSON.stringify(view?.data?.membersCount ?? view)}`);
    log(`fanout ${members}: ${members} members joined over ${nodes.length} nodes in ${joinSeconds.toFixed(1)} s`);

    // Every receiver counts each message it gets: counts[r][i] for message i.
    const total = cfg.says + cfg.paced;
    const tag = randomBytes(3).toString('hex');
    const sent = new Float64Array(total);
    const counts = receivers.map(() => new Uint16Array(total));
    const latency = [[], []]; // [burst, paced], ms
    const lastAt = new Float64Array(total); // last delivery of message i
    const gotOf = new Uint32Array(total); // first deliveries of message i
    let unique = 0; let copies = 0; let echoes = 0; let strays = 0; let lastUnique = 0;
    const straySamples = []; // says that are not the benchmark's (e.g. late join announcements)
    const re = new RegExp(`^${tag} (\\d+)$`);
    receivers.forEach((c, r) => {
      c.on('say', (m) => {
        const now = performance.now();
        const x = typeof m.message === 'string' && m.from === sender.id ? re.exec(m.message) : null;
        if (!x) { if (strays++ < 3) straySamples.push(m); return; }
        const i = Number(x[1]);
        copies += 1;
        if (counts[r][i]++ === 0) {
          unique += 1; gotOf[i] += 1; lastUnique = now; lastAt[i] = now;
          latency[i < cfg.says ? 0 : 1].push(now - sent[i]);
        }
      });
    });
    sender.on('say', (m) => { if (typeof m.message === 'string' && re.test(m.message)) echoes += 1; });
    const sayErrors = [];
    let replies = 0;
    const say = (i) => { sent[i] = performance.now(); sender.say(ROOM, `${tag} ${i}`, (err) => { replies += 1; if (err) sayErrors.push(String(err)); }); };
    /** Waits until `pred()`, failing after `stallMs` without progress (progress()) or `capMs` in all. */
    async function until(pred, progress, stallMs, capMs, label) {
      const t0 = performance.now(); let last = progress(); let lastT = t0;
      while (!pred()) {
        await sleep(5);
        const now = performance.now(); const p = progress();
        if (p !== last) { last = p; lastT = now; }
        if (now - lastT > stallMs || now - t0 > capMs) return `${label}: stopped waiting (${now - lastT > stallMs ? `no progress for ${stallMs} ms` : `over ${capMs} ms`})`;
      }
      return null;
    }
    const pids = pidsOf(nodes);

    // Idle window (everybody joined): commands/s and CPU at rest.
    const idleA = await commandStats(redis.port); const cpuIdleA = cpuOf(pids);
    await sleep(cfg.idleMs);
    const idleB = await commandStats(redis.port); const cpuIdleB = cpuOf(pids);
    const idle = commandDelta(idleA, idleB);

    // Burst: SAYS back to back.
    const burstExpected = cfg.says * receivers.length;
    const cpuA = cpuOf(pids);
    const tStart = performance.now();
    for (let i = 0; i < cfg.says; i++) say(i);
    const burstStop = await until(() => unique >= burstExpected && replies >= cfg.says, () => unique + replies, 10000, 120000, 'burst');
    const burstEnd = unique >= burstExpected ? lastUnique : performance.now();
    const cpuB = cpuOf(pids);
    await sleep(cfg.idleMs); // deferred work (position flushes) lands in the window
    const burstC = await commandStats(redis.port);
    const burstCmds = commandDelta(idleB, burstC);
    const burstDelivered = unique;

    // Paced: one say at a time, the next once every receiver has the previous one.
    let pacedStop = null;
    const pacedA = await commandStats(redis.port); const cpuPA = cpuOf(pids);
    const spread = [];
    for (let j = 0; j < cfg.paced && !pacedStop; j++) {
      const i = cfg.says + j;
      say(i);
      pacedStop = await until(() => gotOf[i] >= receivers.length && replies >= cfg.says + j + 1, () => gotOf[i] + replies, 5000, 20000, `paced say ${j}`);
      if (!pacedStop) spread.push(lastAt[i] - sent[i]);
    }
    const cpuPB = cpuOf(pids);
    await sleep(cfg.idleMs);
    const pacedB = await commandStats(redis.port);
    const pacedCmds = commandDelta(pacedA, pacedB);
    await sleep(1000); // late duplicates

    const expected = total * receivers.length;
    let missing = 0; let dupMessages = 0;
    const lostByNode = nodes.map(() => 0);
    counts.forEach((row, r) => row.forEach((n) => {
      if (n === 0) { missing += 1; lostByNode[receivers[r].benchNode] += 1; } else if (n > 1) dupMessages += n - 1;
    }));
    if (missing && !pacedStop && !burstStop) notes.lostDespiteCompletion = true;
    for (const s of [burstStop, pacedStop]) if (s) { notes.stops = [...(notes.stops || []), s]; log(`fanout ${members}: ${s}`); }
    if (sayErrors.length) notes.sayErrors = [...new Set(sayErrors)].slice(0, 5);
    if (strays) notes.strays = { count: strays, samples: straySamples };
    if (echoes) notes.echoesToSender = echoes;

    const burstSeconds = (burstEnd - tStart) / 1000;
    const cpu = cpuDelta(cpuA, cpuB);
    const cpuPaced = cpuDelta(cpuPA, cpuPB);
    const cpuIdle = cpuDelta(cpuIdleA, cpuIdleB);
    const lb = latency[0].sort((a, b) => a - b); const lp = latency[1].sort((a, b) => a - b);
    spread.sort((a, b) => a - b);
    return {
      scenario: `fanout${members}`, round, members, says: cfg.says, paced: cfg.paced, joinSeconds: +joinSeconds.toFixed(2),
      expected, received: copies, unique, lost: expected - unique, duplicates: copies - unique, dupMessages, lostByNode, echoes,
      burst: {
        deliveries: burstDelivered, seconds: +burstSeconds.toFixed(3), deliveriesPerSecond: Math.round(burstDelivered / burstSeconds),
        latencyMs: { p50: ms3(pct(lb, 0.5)), p99: ms3(pct(lb, 0.99)), max: ms3(lb[lb.length - 1] ?? NaN) },
        cpu: { ...cpu, serverUsPerDelivery: +(cpu.servers * 1e6 / burstDelivered).toFixed(2), clientUsPerDelivery: +(cpu.client * 1e6 / burstDelivered).toFixed(2) },
        redis: { window: burstCmds, perSay: netPer(burstCmds, idle, cfg.says) },
      },
      paced: {
        latencyMs: { p50: ms3(pct(lp, 0.5)), p99: ms3(pct(lp, 0.99)), max: ms3(lp[lp.length - 1] ?? NaN) },
        lastDeliveryMs: { p50: ms3(pct(spread, 0.5)), max: ms3(spread[spread.length - 1] ?? NaN) },
        cpu: { ...cpuPaced, serverUsPerDelivery: +(cpuPaced.servers * 1e6 / Math.max(1, lp.length)).toFixed(2) },
        redis: { window: pacedCmds, perSay: netPer(pacedCmds, idle, Math.max(1, cfg.paced)) },
      },
      idle: { redis: idle, commandsPerSecond: +(idle.total / idle.seconds).toFixed(1), cpu: cpuIdle },
      notes,
    };
  });
}

// ---- 2. action round trips ----
async function roundTrips(round) {
  return withCluster(`roundtrip-r${round}`, async (nodes, clients, notes) => {
    const { client } = await connect(AC, nodes[0].url, websocket, { timeout: 15000 });
    clients.push(client);
    const act = async () => {
      const r = await within(10000, call.action(client, 'randomNumber', {}), 'randomNumber');
      if (r.error) throw new Error(`randomNumber: ${r.error}`);
      return r;
    };
    for (let i = 0; i < cfg.warmup; i++) await act();
    const pids = pidsOf(nodes);
    const idleA = await commandStats(redis.port);
    await sleep(cfg.idleMs);
    const idleB = await commandStats(redis.port);
    const idle = commandDelta(idleA, idleB);
    const times = [];
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const cpuA = cpuOf(pids);
    for (let i = 0; i < cfg.roundTrips; i++) {
      const t0 = performance.now();
      await act();
      times.push(performance.now() - t0);
    }
    const cpuB = cpuOf(pids);
    loop.disable();
    // This process's state: leftovers of earlier scenarios would show here.
    const clientState = { loopDelayMs: { p50: ms3(loop.percentile(50) / 1e6), p99: ms3(loop.percentile(99) / 1e6) }, activeHandles: process._getActiveHandles().length };
    await sleep(cfg.idleMs);
    const c = await commandStats(redis.port);
    const cmds = commandDelta(idleB, c);
    const cpu = cpuDelta(cpuA, cpuB);
    times.sort((a, b) => a - b);
    return {
      scenario: 'roundtrip', round, roundTrips: cfg.roundTrips,
      latencyMs: { p50: ms3(pct(times, 0.5)), p99: ms3(pct(times, 0.99)), max: ms3(times[times.length - 1] ?? NaN) },
      perSecond: Math.round(cfg.roundTrips / cpu.seconds),
      cpu: { ...cpu, serverUsPerCall: +(cpu.servers * 1e6 / cfg.roundTrips).toFixed(2), clientUsPerCall: +(cpu.client * 1e6 / cfg.roundTrips).toFixed(2) },
      redis: { window: cmds, perCall: netPer(cmds, idle, cfg.roundTrips) },
      idle: { redis: idle, commandsPerSecond: +(idle.total / idle.seconds).toFixed(1) },
      client: clientState, notes,
    };
  });
}

// ---- run ----
const results = [];
const tRun = performance.now();
log(`hero ${heroBin}, redis ${redis.url} (pid ${redis.pid}); ${JSON.stringify(cfg)}`);
try {
  for (let round = 1; round <= cfg.rounds; round++) {
    for (const m of cfg.members) {
      const r = await fanout(m, round);
      results.push(r);
      appendFileSync(jsonl, JSON.stringify({ runId, ...r }) + '\n');
      log(`round ${round} fanout ${m}: ${r.burst.deliveriesPerSecond}/s, burst p50/p99 ${r.burst.latencyMs.p50}/${r.burst.latencyMs.p99} ms, paced ${r.paced.latencyMs.p50}/${r.paced.latencyMs.p99} ms, lost ${r.lost}, dup ${r.duplicates}, redis/say ${r.burst.redis.perSay.total.toFixed(2)} (paced ${r.paced.redis.perSay.total.toFixed(2)}), ${r.burst.cpu.serverUsPerDelivery} us/delivery`);
    }
    if (cfg.roundTrips > 0) {
      const r = await roundTrips(round);
      results.push(r);
      appendFileSync(jsonl, JSON.stringify({ runId, ...r }) + '\n');
      log(`round ${round} roundtrip: p50/p99 ${r.latencyMs.p50}/${r.latencyMs.p99} ms, redis/call ${r.redis.perCall.total.toFixed(2)}, ${r.cpu.serverUsPerCall} us/call`);
    }
  }
} finally {
  clearTimeout(deadline);
  await redis.stop();
}

// ---- table ----
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const fmtNum = (v, d) => (Number.isFinite(v) ? (d === 0 ? Math.round(v).toLocaleString('en-US') : v.toFixed(d)) : '-');
/** Median [min–max] of `f` over the rounds of `rows`. */
const agg = (rows, f, d = 2) => {
  const xs = rows.map(f).filter((v) => Number.isFinite(v));
  if (!xs.length) return '-';
  const m = fmtNum(median(xs), d);
  return xs.length > 1 ? `${m} [${fmtNum(Math.min(...xs), d)}–${fmtNum(Math.max(...xs), d)}]` : m;
};
const sum = (rows, f) => rows.reduce((s, r) => s + f(r), 0);
const lines = [];
const row = (cells) => lines.push(`| ${cells.join(' | ')} |`);
const fan = cfg.members.map((m) => [m, results.filter((r) => r.scenario === `fanout${m}`)]);
const rts = results.filter((r) => r.scenario === 'roundtrip');
lines.push(`${cfg.nodes} hero nodes + 1 redis-server, ${cfg.rounds} round(s)${cfg.rounds > 1 ? ': median [min–max]' : ''}; SAYS=${cfg.says} back to back + PACED=${cfg.paced} one at a time; ROUNDTRIPS=${cfg.roundTrips}`);
lines.push('');
row(['', ...fan.map(([m]) => `fan-out, ${m.toLocaleString('en-US')} members`), ...(rts.length ? ['round trip'] : [])]);
row(['---', ...fan.map(() => '---'), ...(rts.length ? ['---'] : [])]);
const frow = (label, f, d, rt = null, rd = d) => row([label, ...fan.map(([, rs]) => agg(rs, f, d)), ...(rts.length ? [rt ? agg(rts, rt, rd) : ''] : [])]);
frow('members joined (s)', (r) => r.joinSeconds, 1);
frow('deliveries per round (burst + paced)', (r) => r.expected, 0, (r) => r.roundTrips, 0);
frow('lost / duplicated (all rounds)', () => NaN, 0);
lines[lines.length - 1] = `| lost / duplicated (all rounds) | ${fan.map(([, rs]) => `${sum(rs, (r) => r.lost)} / ${sum(rs, (r) => r.duplicates)}`).join(' | ')}${rts.length ? ' | |' : ' |'}`;
frow('deliveries/s (burst); round trips/s', (r) => r.burst.deliveriesPerSecond, 0, (r) => r.perSecond, 0);
frow('latency p50, ms (burst; round trip)', (r) => r.burst.latencyMs.p50, 2, (r) => r.latencyMs.p50, 3);
frow('latency p99, ms (burst; round trip)', (r) => r.burst.latencyMs.p99, 2, (r) => r.latencyMs.p99, 3);
frow('latency p50 / p99, ms (paced)', () => NaN, 2);
lines[lines.length - 1] = `| latency p50 / p99, ms (paced) | ${fan.map(([, rs]) => `${agg(rs, (r) => r.paced.latencyMs.p50, 2)} / ${agg(rs, (r) => r.paced.latencyMs.p99, 2)}`).join(' | ')}${rts.length ? ' | |' : ' |'}`;
frow('Redis commands per say (burst, idle subtracted); per action', (r) => r.burst.redis.perSay.total, 2, (r) => r.redis.perCall.total, 3);
frow('Redis commands per say (paced, idle subtracted)', (r) => r.paced.redis.perSay.total, 2);
frow('Redis commands per say (burst, raw)', (r) => r.burst.redis.perSay.raw, 2, (r) => r.redis.perCall.raw, 3);
frow('HGETALL µs per call in Redis (the roster read; burst)', (r) => r.burst.redis.window.usec.hgetall / r.burst.redis.window.calls.hgetall, 1);
frow('Redis commands/s at rest', (r) => r.idle.commandsPerSecond, 1, (r) => r.idle.commandsPerSecond, 1);
frow('server CPU µs per delivery (burst); per round trip', (r) => r.burst.cpu.serverUsPerDelivery, 2, (r) => r.cpu.serverUsPerCall, 1);
frow('  of which redis-server', (r) => r.burst.cpu.per.redis * 1e6 / r.burst.deliveries, 2, (r) => r.cpu.per.redis * 1e6 / r.roundTrips, 1);
frow('client CPU µs per delivery; per round trip', (r) => r.burst.cpu.clientUsPerDelivery, 2, (r) => r.cpu.clientUsPerCall, 1);
frow('machine cores busy (of 2); not ours', () => NaN, 2);
lines[lines.length - 1] = `| machine cores busy (burst; round trip); of which not ours | ${fan.map(([, rs]) => `${agg(rs, (r) => r.burst.cpu.machineCores, 2)}; ${agg(rs, (r) => r.burst.cpu.otherCores, 2)}`).join(' | ')}${rts.length ? ` | ${agg(rts, (r) => r.cpu.machineCores, 2)}; ${agg(rts, (r) => r.cpu.otherCores, 2)} |` : ' |'}`;
if (rts.length) frow('client event-loop delay p50 / p99, ms (round trips)', () => NaN, 2, (r) => r.client.loopDelayMs.p50, 2);
if (rts.length) lines[lines.length - 1] = lines[lines.length - 1].replace(/\| ([^|]*) \|$/, `| ${agg(rts, (r) => r.client.loopDelayMs.p50, 2)} / ${agg(rts, (r) => r.client.loopDelayMs.p99, 2)} |`);
frow('server CPU µs per delivery (paced)', (r) => r.paced.cpu.serverUsPerDelivery, 2);
// Per-command breakdown (net of idle), commands seen in any window.
const cmds = new Set();
for (const r of results) for (const k of Object.keys(r.scenario === 'roundtrip' ? r.redis.window.calls : r.burst.redis.window.calls)) cmds.add(k);
for (const r of results) if (r.paced) for (const k of Object.keys(r.paced.redis.window.calls)) cmds.add(k);
lines.push('');
row(['Redis commands (idle subtracted)', ...fan.flatMap(([m]) => [`per say, ${m} burst`, `per say, ${m} paced`]), ...(rts.length ? ['per action'] : [])]);
row(['---', ...fan.flatMap(() => ['---', '---']), ...(rts.length ? ['---'] : [])]);
for (const k of [...cmds].sort()) {
  row([k, ...fan.flatMap(([, rs]) => [agg(rs, (r) => r.burst.redis.perSay.by[k] ?? 0, 2), agg(rs, (r) => r.paced.redis.perSay.by[k] ?? 0, 2)]),
    ...(rts.length ? [agg(rts, (r) => r.redis.perCall.by[k] ?? 0, 3)] : [])]);
}
const odd = results.filter((r) => Object.keys(r.notes).some((k) => k !== 'namespace'));
console.log(lines.join('\n'));
for (const r of odd) console.log(`note ${r.scenario} round ${r.round}: ${JSON.stringify(r.notes)}`);
console.log(`run ${((performance.now() - tRun) / 1000).toFixed(0)} s; JSON lines: ${path.relative(root, jsonl)}; node logs: ${path.relative(root, outDir)}/`);
process.exit(results.some((r) => r.lost || r.duplicates) ? 1 : 0);
