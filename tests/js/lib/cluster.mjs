// A hero cluster for the black-box cluster tests: one real redis-server, N hero nodes
// joined to it (`--redis`, a namespace of their own), and a round-robin balancer without
// sticky sessions in front.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { startHero, heroBin } from './hero.mjs';
import { startRedis } from './redis.mjs';
import { startBalancer } from './balancer.mjs';

/** Stop one hero: SIGTERM, SIGKILL if it has not exited after `ms`. */
export async function stopNode(node, ms = 15000) {
  const { proc } = node;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  node.stopping = true;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, ms, 'late'); });
  if ((await Promise.race([exited, late])) === 'late') {
    node.logs.push(`[test] no exit ${ms} ms after SIGTERM: SIGKILL`);
    proc.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

/**
 * Start redis, `nodes` hero nodes with `--redis` and a fresh HERO_CLUSTER__NAMESPACE, and
 * the balancer. Resolves to {redis, namespace, nodes, balancer, exits, logs(), stop()}:
 * - nodes[i]: startHero's {url, port, proc, logs, stop} plus `bayeux` (its /faye URL);
 * - balancer: startBalancer's object plus `bayeux`;
 * - exits: every hero exit that happened before stop() (a test asserts it stays empty);
 * - logs(): all hero and redis logs, labelled, for failure messages.
 * On a failed start, whatever did start is stopped again.
 */
export async function startCluster({ nodes = 3, args = [], env = {}, bin = heroBin } = {}) {
  const namespace = `test-${process.pid}-${randomBytes(4).toString('hex')}`;
  const cluster = { redis: null, namespace, nodes: [], balancer: null, exits: [] };
  cluster.logs = () => [
    ...cluster.nodes.flatMap((n, i) => [`--- hero node ${i} (${n.url}) ---`, ...n.logs]),
    `--- redis (${cluster.redis?.url}) ---`, ...(cluster.redis?.logs || []),
  ].join('\n');
  cluster.stop = async () => {
    await cluster.balancer?.stop();
    await Promise.all(cluster.nodes.map((n) => stopNode(n)));
    await cluster.redis?.stop();
  };
  try {
    cluster.redis = await startRedis();
    const started = await Promise.allSettled(Array.from({ length: nodes }, () =>
      startHero([...args, '--redis', cluster.redis.url], { bin, env: { HERO_CLUSTER__NAMESPACE: namespace, ...env } })));
    for (const s of started) if (s.status === 'fulfilled') cluster.nodes.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    cluster.nodes.forEach((n, i) => {
      n.index = i;
      n.bayeux = `${n.url}/faye`;
      n.proc.on('exit', (code, signal) => {
        if (!n.stopping) cluster.exits.push({ node: i, code, signal });
      });
    });
    cluster.balancer = await startBalancer(cluster.nodes.map((n) => n.url));
    cluster.balancer.bayeux = `${cluster.balancer.url}/faye`;
    return cluster;
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}

/** Log lines with runs of the same message (timestamps aside) folded into first, last and a count. */
export function fold(lines) {
  const text = (l) => l.replace(/^\S+Z\s+/, '');
  const out = [];
  for (let i = 0; i < lines.length;) {
    let j = i;
    while (j + 1 < lines.length && text(lines[j + 1]) === text(lines[i])) j++;
    out.push(lines[i]);
    if (j > i) out.push(`${lines[j]}   [the same ${j - i + 1} times, from the line above to here]`);
    i = j + 1;
  }
  return out;
}

/**
 * Runs `fn`; if it throws, the error carries the last `lines` log lines of every node and
 * redis, and the balancer's spread, so a failure shows what the servers saw.
 */
export async function withLogs(cluster, fn, lines = 60) {
  try {
    return await fn();
  } catch (e) {
    const parts = cluster.nodes.map((n, i) => `--- hero node ${i} (${n.url}), last ${lines} lines (repeats folded) ---\n${fold(n.logs).slice(-lines).join('\n')}`);
    parts.push(`--- redis ---\n${(cluster.redis?.logs || []).slice(-20).join('\n')}`);
    if (cluster.balancer) parts.push(`--- balancer: http ${JSON.stringify(cluster.balancer.counts)}, websockets ${JSON.stringify(cluster.balancer.upgrades)} ---`);
    if (cluster.exits.length) parts.push(`--- unexpected hero exits: ${JSON.stringify(cluster.exits)} ---`);
    e.message = `${e.message}\n${parts.join('\n')}`;
    throw e;
  }
}

/**
 * Hard stop of a real faye client that may never have connected (faye's disconnect() is a
 * no-op then, and the client would retry its handshake forever): no more reconnects, no
 * pending retries, transports closed.
 */
export function destroyFaye(client) {
  client._advice.reconnect = 'none';
  client._state = 4; // DISCONNECTED
  const d = client._dispatcher;
  for (const e of d._envelopes.values()) {
    clearTimeout(e.timer);
    if (e.request && e.request.then) e.request.then((r) => r && r.abort && r.abort(), () => {});
  }
  d._envelopes.clear();
  for (const byUrl of Object.values(d.transports || {})) {
    for (const t of Object.values(byUrl)) { try { t.close(); } catch { /* closed */ } }
  }
  d.close();
}

/** Disconnect faye clients (bounded), then hard-stop any that could not say goodbye. */
export async function closeFaye(clients, ms = 5000) {
  let timer;
  const disconnects = clients.map((c) => {
    try { return Promise.resolve(c.disconnect()).catch(() => {}); } catch { return Promise.resolve(); }
  });
  await Promise.race([Promise.all(disconnects), new Promise((r) => { timer = setTimeout(r, ms); })]);
  clearTimeout(timer);
  for (const c of clients) destroyFaye(c);
}

/**
 * Instruments a faye client: `connectionTypes` and `connects` (the connectionType of each
 * /meta/connect, as a set and in order), `trace` (its meta
 * messages out and replies in, and failed replies, with times), `copies` (every
 * delivery the server sent it, before the client fans it out to its subscriptions; the
 * exactly-once checks count these), `handshakes` (client ids of successful handshakes)
 * and `errors` ("channel error" of every failed reply). Returns the client.
 */
export function watchFaye(client) {
  client.connectionTypes = new Set();
  client.connects = [];
  client.trace = [];
  client.copies = [];
  client.handshakes = [];
  client.errors = [];
  client.addExtension({
    outgoing(m, cb) {
      if (m.channel === '/meta/connect') { client.connectionTypes.add(m.connectionType); client.connects.push(m.connectionType); }
      if (m.channel.startsWith('/meta/')) client.trace.push({ at: Date.now(), out: m.channel, id: m.id, clientId: m.clientId });
      cb(m);
    },
    incoming(m, cb) {
      if (m.channel.startsWith('/meta/') || m.successful === false) {
        client.trace.push({ at: Date.now(), in: m.channel, id: m.id, ...(m.successful ? {} : { error: m.error, advice: m.advice }) });
      }
      if (m.channel === '/meta/handshake' && m.successful) client.handshakes.push(m.clientId);
      if (m.successful === false) client.errors.push(`${m.channel} ${m.error}`);
      if (!m.channel.startsWith('/meta/') && m.successful === undefined && m.data !== undefined) client.copies.push(m);
      cb(m);
    },
  });
  return client;
}

/**
 * Asserts `got` equals `want` (a list of distinct values), first with a short account of
 * what went wrong (missing, duplicated, out of order) rather than a 200-line diff.
 */
export function assertExactlyOnceInOrder(got, want, label = 'deliveries') {
  const key = (v) => JSON.stringify(v);
  const wanted = new Set(want.map(key));
  const seen = new Map();
  for (const v of got) seen.set(key(v), (seen.get(key(v)) || 0) + 1);
  const missing = want.filter((v) => !seen.has(key(v))).map(key);
  const duplicated = [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} x${n}`);
  const unexpected = [...seen.keys()].filter((k) => !wanted.has(k));
  const firsts = [];
  const done = new Set();
  for (const v of got) if (!done.has(key(v))) { done.add(key(v)); firsts.push(v); }
  const order = want.filter((v) => seen.has(key(v))).map(key);
  const swapped = firsts.map(key).filter((k) => wanted.has(k)).findIndex((k, i) => k !== order[i]);
  const problems = [];
  if (missing.length) problems.push(`missing ${missing.length}: ${missing.slice(0, 20).join(', ')}`);
  if (duplicated.length) problems.push(`duplicated ${duplicated.length}: ${duplicated.slice(0, 20).join(', ')}`);
  if (unexpected.length) problems.push(`unexpected: ${unexpected.slice(0, 20).join(', ')}`);
  if (swapped >= 0) problems.push(`out of order from position ${swapped}: ${firsts.slice(Math.max(0, swapped - 2), swapped + 5).map(key).join(', ')}`);
  if (problems.length) throw new Error(`${label}: ${got.length} received, ${want.length} expected; ${problems.join('; ')}`);
  if (got.length !== want.length) throw new Error(`${label}: ${got.length} received, ${want.length} expected`);
}
