// The Redis cluster engine (PROTOCOL 1.7) as a Bayeux client sees it: three hero nodes on
// one redis-server are one Bayeux server. Clients go through a round-robin balancer with
// no sticky sessions (every HTTP request to the next node), or straight to chosen nodes,
// and still receive every message exactly once, in order. Redis dying and coming back
// empty is survived without a hero restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, withLogs, watchFaye, closeFaye, assertExactlyOnceInOrder } from './lib/cluster.mjs';
import { fayeClient } from './lib/faye-client.mjs';
import { bayeuxPost, handshake } from './lib/raw-http.mjs';
import { Inbox, within } from './lib/wait.mjs';
import { createRequire } from 'node:module';

const WebSocket = createRequire(import.meta.url)('faye-websocket');

const MESSAGES = 200;
const expected = [...Array(MESSAGES).keys(), 'end'];

let cluster;
const clients = [];
before(async () => { cluster = await startCluster({ nodes: 3 }); });
after(async () => {
  await closeFaye(clients);
  await cluster?.stop();
});

/** A watched (see watchFaye) real faye client, disconnected when the file ends. */
function client(url, { websocket = true, list = clients } = {}) {
  const c = watchFaye(fayeClient(url, { websocket }));
  list.push(c);
  return c;
}

/** Subscribes `c` to `channel`, logging every message; `waitEnd(ms)` resolves once 'end' is in. */
async function recorder(c, channel) {
  const log = [];
  let ended;
  const end = new Promise((resolve) => { ended = resolve; });
  await within(10000, c.subscribe(channel, (m) => { log.push(m); if (m === 'end') ended(); }), `subscribe ${channel}`);
  const waitEnd = (ms) => within(ms, end, 'deliveries').catch((e) => {
    e.message += ` (${log.length} received; last ${JSON.stringify(log.slice(-5))})`;
    throw e;
  });
  return { log, waitEnd };
}

/** Resolves once `c` has a session (subscribing to a channel nobody publishes on). */
const connected = (c) => within(10000, c.subscribe('/lb/ready', () => {}), 'client connect');

test('websocket through the balancer: 200 messages from another node, exactly once, in order', { timeout: 30000 }, () => withLogs(cluster, async () => {
  const { balancer } = cluster;
  const channel = '/lb/ws';
  const mark = balancer.upgradeLog.length;
  const sub = client(balancer.bayeux);
  const { log, waitEnd } = await recorder(sub, channel);
  const subSockets = balancer.upgradeLog.slice(mark);
  assert.equal(subSockets.length, 1, `the subscriber opened one websocket: ${JSON.stringify(subSockets)}`);
  // The publisher's websocket must land on another node than the subscriber's (round
  // robin makes that the usual case; a retry covers an unlucky interleaving).
  let pub;
  for (let attempt = 0; ; attempt++) {
    const before = balancer.upgradeLog.length;
    pub = client(balancer.bayeux);
    await connected(pub);
    const own = balancer.upgradeLog.slice(before);
    if (own.length === 1 && own[0].backend !== subSockets[0].backend) break;
    assert.ok(attempt < 3, `publisher websocket never on another node than the subscriber's: ${JSON.stringify(balancer.upgradeLog)}`);
    await closeFaye([pub]);
  }
  // One socket, one node: the publishes are processed in the order they are sent.
  for (let n = 0; n < MESSAGES; n++) pub.publish(channel, n).then(() => {}, () => {});
  await within(20000, pub.publish(channel, 'end'), 'publishes acknowledged');
  await waitEnd(20000);
  assertExactlyOnceInOrder(log, expected, 'subscriber');
  assert.deepEqual(log, expected);
  assert.equal(sub.copies.length, MESSAGES + 1, 'one copy per publish');
  // faye's first connect may leave over long-polling while its websocket is still opening
  // (the handshake reply can win that race); every later one is on the websocket.
  for (const [who, c] of [['subscriber', sub], ['publisher', pub]]) {
    const later = c.connects.slice(1);
    assert.ok(c.connects.length > 0 && later.every((t) => t === 'websocket') && c.connects.at(-1) === 'websocket',
      `${who} connects: ${c.connects.join(', ')}`);
    assert.equal(c._dispatcher.connectionType, 'websocket', who);
  }
  assert.deepEqual(sub.errors, []);
  assert.equal(sub.handshakes.length, 1, 'one session throughout');
}));

test('long-polling through the balancer: every request on the next node, 200 messages exactly once, in order', { timeout: 30000 }, () => withLogs(cluster, async () => {
  const { balancer } = cluster;
  const channel = '/lb/lp';
  const sub = client(balancer.bayeux, { websocket: false });
  const pub = client(balancer.bayeux, { websocket: false });
  const { log, waitEnd } = await recorder(sub, channel);
  await connected(pub);
  // Each publish is acknowledged before the next leaves (so each may be handled by
  // another node, and their order is defined); the subscriber long-polls meanwhile.
  for (let n = 0; n < MESSAGES; n++) await within(5000, pub.publish(channel, n), `publish ${n}`);
  await within(5000, pub.publish(channel, 'end'), 'publish end');
  await waitEnd(20000);
  assertExactlyOnceInOrder(log, expected, 'subscriber');
  assert.deepEqual(log, expected);
  assert.equal(sub.copies.length, MESSAGES + 1, 'one copy per publish');
  assert.deepEqual([...sub.connectionTypes], ['long-polling']);
  assert.deepEqual([...pub.connectionTypes], ['long-polling']);
  assert.deepEqual(sub.errors, []);
  assert.equal(sub.handshakes.length, 1, 'one session throughout');

  // The balancer really spread them: the subscriber's connects and the publisher's
  // publishes were served by every node.
  const during = balancer.messages();
  const subId = sub.handshakes[0];
  const pubId = pub.handshakes[0];
  const connectNodes = new Set(during.filter((m) => m.clientId === subId && m.channel === '/meta/connect').map((m) => m.backend));
  const publishNodes = new Set(during.filter((m) => m.clientId === pubId && m.channel === channel).map((m) => m.backend));
  assert.deepEqual([...connectNodes].sort(), [0, 1, 2], 'subscriber connects on every node');
  assert.deepEqual([...publishNodes].sort(), [0, 1, 2], 'publishes on every node');
  for (const [i, n] of balancer.counts.entries()) assert.ok(n > 0, `node ${i} got HTTP requests`);
}));

test('wildcard subscribers on each node receive the publishes of every node, once each', { timeout: 30000 }, () => withLogs(cluster, async () => {
  const { nodes } = cluster;
  // On each node: one client on /w/*, one on /w/** and /w/x (two matching subscriptions,
  // still one copy per publish); long-polling on node 1, websocket elsewhere.
  const subs = nodes.map((node, i) => {
    const websocket = i !== 1;
    return { one: client(node.bayeux, { websocket }), many: client(node.bayeux, { websocket }) };
  });
  await within(15000, Promise.all(subs.flatMap(({ one, many }) => [
    one.subscribe('/w/*', () => {}), many.subscribe('/w/**', () => {}), many.subscribe('/w/x', () => {}),
  ])), 'wildcard subscribes');
  const pubs = nodes.map((node) => client(node.bayeux));
  await Promise.all(pubs.map(connected));
  // Per publisher, in order: /w (matched by neither pattern: if it were delivered it would
  // come first), five on /w/x, one on /w/x/deep (only /w/**), and a marker on /w/end.
  await within(15000, Promise.all(pubs.map(async (p, i) => {
    await p.publish('/w', { from: i, stray: true });
    for (let k = 0; k < 5; k++) await p.publish('/w/x', { from: i, k });
    await p.publish('/w/x/deep', { from: i, deep: true });
    await p.publish('/w/end', { from: i, end: true });
  })), 'publishes');
  const ends = (c) => c.copies.filter((m) => m.channel === '/w/end').length;
  const all = subs.flatMap(({ one, many }) => [one, many]);
  const deadline = Date.now() + 15000;
  while (all.some((c) => ends(c) < nodes.length)) {
    assert.ok(Date.now() < deadline, `end markers: ${all.map(ends).join(', ')} of ${nodes.length} each`);
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const [i, { one, many }] of subs.entries()) {
    for (const [name, c, deep] of [['/w/*', one, false], ['/w/** + /w/x', many, true]]) {
      for (let from = 0; from < nodes.length; from++) {
        const seen = c.copies.filter((m) => m.data.from === from).map((m) => [m.channel, m.data]);
        const want = [
          ...[0, 1, 2, 3, 4].map((k) => ['/w/x', { from, k }]),
          ...(deep ? [['/w/x/deep', { from, deep: true }]] : []),
          ['/w/end', { from, end: true }],
        ];
        const label = `subscriber ${name} on node ${i}, publisher on node ${from}`;
        assertExactlyOnceInOrder(seen, want, label);
        assert.deepEqual(seen, want, label);
      }
      assert.equal(c.copies.length, nodes.length * (deep ? 7 : 6), `subscriber ${name} on node ${i}: no other copies`);
      for (const m of c.copies) assert.equal(m.clientId, undefined, 'deliveries carry no clientId');
    }
  }
}));

test('raw long-polling: handshake on A, subscribe on B, publish on C, connect on B and on A', { timeout: 30000 }, () => withLogs(cluster, async () => {
  const [A, B, C] = cluster.nodes.map((n) => n.bayeux);
  const ok = (reply, what) => assert.equal(reply?.successful, true, `${what}: ${JSON.stringify(reply)}`);
  const connect = (url, id, extra = {}) => bayeuxPost(url, { channel: '/meta/connect', clientId: id, connectionType: 'long-polling', id: `c${Math.random()}`, ...extra });
  const deliveries = (replies) => replies.filter((m) => !m.channel.startsWith('/meta/'));

  const id = await handshake(A);
  const [sub] = await bayeuxPost(B, { channel: '/meta/subscribe', clientId: id, subscription: ['/raw/x', '/raw/mark'], id: 's1' });
  ok(sub, 'subscribe on B');
  assert.deepEqual(sub.subscription, ['/raw/x', '/raw/mark']);
  // The first connect, on C, returns at once (timeout 0) with nothing queued.
  const first = await connect(C, id, { advice: { timeout: 0 } });
  ok(first[0], 'connect on C');
  assert.deepEqual(deliveries(first), []);

  // Another client, handshaken on C, publishes on C.
  const pid = await handshake(C);
  const [published] = await bayeuxPost(C, { channel: '/raw/x', clientId: pid, data: { n: 1 }, id: 'p1' });
  ok(published, 'publish on C');
  // The queued message comes back on B's connect, once.
  let replies = await connect(B, id);
  ok(replies.find((m) => m.channel === '/meta/connect'), 'connect on B');
  assert.deepEqual(deliveries(replies), [{ channel: '/raw/x', data: { n: 1 }, id: 'p1' }]);
  // A marker published on B; the connect on A returns it and no second copy of n:1.
  ok((await bayeuxPost(B, { channel: '/raw/mark', clientId: pid, data: 'mark1', id: 'p2' }))[0], 'publish on B');
  replies = await connect(A, id);
  ok(replies.find((m) => m.channel === '/meta/connect'), 'connect on A');
  assert.deepEqual(deliveries(replies).map((m) => m.data), ['mark1'], 'exactly once: only the marker is new');

  // A connect held on B is released by a publish on A (the wake-up crosses nodes).
  const held = connect(B, id);
  // Give the connect time to be parked (either order must deliver; this exercises the held one).
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  ok((await bayeuxPost(A, { channel: '/raw/x', clientId: pid, data: { n: 2 }, id: 'p3' }))[0], 'publish on A');
  replies = await within(5000, held, 'held connect on B released by the publish on A');
  assert.deepEqual(deliveries(replies).map((m) => m.data), [{ n: 2 }]);
  assert.ok(Date.now() - t0 < 5000);

  // Unsubscribe on C: a publish on B no longer reaches it; the marker still does.
  ok((await bayeuxPost(C, { channel: '/meta/unsubscribe', clientId: id, subscription: '/raw/x', id: 'u1' }))[0], 'unsubscribe on C');
  ok((await bayeuxPost(B, { channel: '/raw/x', clientId: pid, data: { n: 3 }, id: 'p4' }))[0], 'publish on B');
  ok((await bayeuxPost(B, { channel: '/raw/mark', clientId: pid, data: 'mark2', id: 'p5' }))[0], 'marker on B');
  replies = await connect(C, id);
  assert.deepEqual(deliveries(replies).map((m) => m.data), ['mark2'], 'nothing after the unsubscribe');

  // Disconnect on C ends the session everywhere: a connect on A is 401.
  ok((await bayeuxPost(C, { channel: '/meta/disconnect', clientId: id, id: 'd1' }))[0], 'disconnect on C');
  const [gone] = await connect(A, id);
  assert.equal(gone.successful, false, `a connect on A after the disconnect was acknowledged on C: ${JSON.stringify(gone)}`);
  assert.match(gone.error, /^401:/);
  assert.equal(gone.advice?.reconnect, 'handshake');
  ok((await bayeuxPost(A, { channel: '/meta/disconnect', clientId: pid, id: 'd2' }))[0], 'publisher disconnect on A');
}));

/** A raw websocket to `url` (ws://...): send(messages), `inbox` of every message received (arrays flattened). */
async function rawSocket(url) {
  const ws = new WebSocket.Client(url);
  const inbox = new Inbox();
  ws.on('message', (e) => { for (const m of [].concat(JSON.parse(e.data))) inbox.push(m); });
  await within(5000, new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('close', (e) => reject(new Error(`websocket to ${url} closed: ${e.code} ${e.reason}`)));
  }), `websocket to ${url}`);
  return { inbox, send: (msgs) => ws.send(JSON.stringify(msgs)), close: () => ws.close() };
}

test('raw websocket: handshake on A, websocket on B, publishes on C and A arrive on it once each', { timeout: 30000 }, () => withLogs(cluster, async () => {
  const [A, B, C] = cluster.nodes;
  const ok = (reply, what) => assert.equal(reply?.successful, true, `${what}: ${JSON.stringify(reply)}`);
  const [hs] = await bayeuxPost(A.bayeux, { channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket', 'long-polling'], id: 'h1' });
  ok(hs, 'handshake on A');
  const id = hs.clientId;
  const socket = await rawSocket(`ws://127.0.0.1:${B.port}/faye`);
  try {
    // One message a frame, as faye's websocket transport sends them (a frame's reply waits
    // for all its messages, and a connect is held).
    socket.send([{ channel: '/meta/subscribe', clientId: id, subscription: '/rws/x', id: 's1' }]);
    ok(await socket.inbox.next(5000, 'subscribe reply over the websocket on B'), 'subscribe over the websocket on B');
    socket.send([{ channel: '/meta/connect', clientId: id, connectionType: 'websocket', id: 'c1' }]);
    const pid = await handshake(C.bayeux);
    ok((await bayeuxPost(C.bayeux, { channel: '/rws/x', clientId: pid, data: { n: 1 }, id: 'p1' }))[0], 'publish on C');
    ok((await bayeuxPost(A.bayeux, { channel: '/rws/x', clientId: pid, data: { n: 2 }, id: 'p2' }))[0], 'publish on A');
    ok((await bayeuxPost(C.bayeux, { channel: '/rws/x', clientId: pid, data: 'end', id: 'p3' }))[0], 'publish on C');
    const got = [];
    while (!got.includes('end')) {
      const m = await socket.inbox.next(5000, `deliveries over the websocket on B (${JSON.stringify(got)} so far)`);
      if (m.channel === '/rws/x') got.push(m.data);
      else assert.ok(m.channel === '/meta/connect' && m.successful, `only deliveries and connect replies: ${JSON.stringify(m)}`);
    }
    assert.deepEqual(got, [{ n: 1 }, { n: 2 }, 'end']);
    ok((await bayeuxPost(A.bayeux, { channel: '/meta/disconnect', clientId: pid, id: 'd2' }))[0], 'publisher disconnect on A');
  } finally {
    socket.close();
  }
  // The session ended with its socket? Either way a disconnect on C must not fail hard.
  const [bye] = await bayeuxPost(C.bayeux, { channel: '/meta/disconnect', clientId: id, id: 'd1' });
  assert.ok(bye.successful === true || /^401:/.test(bye.error), JSON.stringify(bye));
}));

/**
 * A watched client's meta traffic as text, times relative to `t0`; through the balancer,
 * each request names the node it went to.
 */
function traceOf(c, t0, balancer) {
  const where = new Map(balancer.messages().filter((m) => m.clientId).map((m) => [`${m.clientId}/${m.id}`, m.backend]));
  const lines = c.trace.slice(0, 60).map((x) => {
    const t = `+${x.at - t0} ms`;
    if (x.out) {
      const node = where.get(`${x.clientId}/${x.id}`);
      return `    ${t} out ${x.out} id=${x.id}${node === undefined ? '' : ` -> node ${node}`}`;
    }
    return `    ${t} in  ${x.in} id=${x.id}${x.error ? ` ${x.error} advice=${JSON.stringify(x.advice)}` : ' ok'}`;
  });
  if (c.trace.length > 60) lines.push(`    ... ${c.trace.length - 60} more`);
  return `  trace (t0 = ${new Date(t0).toISOString()}, redis killed):\n${lines.join('\n')}`;
}

test('redis killed and restarted empty mid-traffic: every node serves again within 10 s, clients re-handshake', { timeout: 60000 }, async (t) => {
  // A 5 s connect hold: a websocket client, whose connect is held, learns that its session is
  // gone on its next connect, so within 5 s rather than the default 45.
  const c = await startCluster({ nodes: 3, env: { HERO_BAYEUX__TIMEOUT_MS: '5000' } });
  const mine = [];
  let traffic = false;
  let loop = Promise.resolve();
  t.after(async () => {
    traffic = false;
    await loop;
    await closeFaye(mine);
    await c.stop();
  });
  await withLogs(c, async () => {
    const { nodes, balancer, redis } = c;
    const own = (url, opts = {}) => client(url, { ...opts, list: mine });
    // Existing clients: websocket on node 0, long-polling on node 1, and both through the balancer.
    const existing = [
      own(nodes[0].bayeux), own(nodes[1].bayeux, { websocket: false }),
      own(balancer.bayeux), own(balancer.bayeux, { websocket: false }),
    ];
    const inboxes = existing.map(() => new Inbox());
    await within(15000, Promise.all(existing.map((e, i) => e.subscribe('/r/feed', inboxes[i].push))), 'subscribes');

    // Traffic: a publish every 50 ms through the balancer, from a client of its own.
    const pub = own(balancer.bayeux, { websocket: false });
    await connected(pub);
    let seq = 0;
    traffic = true;
    loop = (async () => {
      while (traffic) {
        pub.publish('/r/feed', { seq: seq++ }).then(() => {}, () => {});
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await within(10000, Promise.all(inboxes.map((b) => b.next(10000))), 'traffic reaches every client');
    // And a raw session, handshaken on node 2 and subscribed there.
    const rawId = await handshake(nodes[2].bayeux);
    const [rawSub] = await bayeuxPost(nodes[2].bayeux, { channel: '/meta/subscribe', clientId: rawId, subscription: '/r/feed', id: 'rs' });
    assert.equal(rawSub.successful, true, JSON.stringify(rawSub));

    const killedAt = Date.now();
    await redis.kill();
    // A short outage while traffic goes on (the scenario, not a wait for an event).
    await new Promise((r) => setTimeout(r, 1000));
    await redis.restart();
    const restartedAt = Date.now();
    const seqAtRestart = seq;
    // The new redis lost everything: the raw session is not there (the nodes may already
    // have registered themselves and the starting rooms again, so it need not be empty).
    assert.equal(await redis.command('EXISTS', `${c.namespace}:s:${rawId}`), 0, 'the new redis lost the sessions');

    // Each node, within 10 s: a fresh faye client there handshakes and subscribes, and a
    // publish from a fresh client on the next node reaches it.
    const recovered = await Promise.all(nodes.map(async (node, i) => {
      const other = nodes[(i + 1) % nodes.length];
      for (let attempt = 0; ; attempt++) {
        const left = restartedAt + 10000 - Date.now();
        assert.ok(left > 0, `node ${i} did not serve Bayeux again within 10 s of the redis restart (${attempt} attempts)`);
        const probe = [];
        const sub = client(node.bayeux, { list: probe });
        const from = client(other.bayeux, { list: probe });
        const got = new Inbox();
        try {
          const budget = Math.min(left, 1500);
          await within(budget, sub.subscribe(`/r/probe/${i}`, got.push), 'probe subscribe');
          await within(budget, from.publish(`/r/probe/${i}`, { attempt }), 'probe publish');
          assert.deepEqual(await got.next(budget, 'probe delivery'), { attempt });
          return Date.now() - restartedAt;
        } catch (e) {
          if (e.code === 'ERR_ASSERTION') throw e;
        } finally {
          await closeFaye(probe, 2000);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }));
    t.diagnostic(`nodes served Bayeux again after ${recovered.join(', ')} ms`);

    // A session that existed before is unknown now: 401 on any node, advice handshake.
    const [stale] = await bayeuxPost(nodes[0].bayeux, { channel: '/meta/connect', clientId: rawId, connectionType: 'long-polling', id: 'stale' });
    assert.equal(stale.successful, false, JSON.stringify(stale));
    assert.match(stale.error, /^401:/, JSON.stringify(stale));
    assert.equal(stale.advice?.reconnect, 'handshake', JSON.stringify(stale));

    // The existing clients learn that their sessions are gone (401), handshake again,
    // resubscribe, and receive the traffic again.
    const back = await Promise.allSettled(existing.map(async (e, i) => {
      for (;;) {
        const m = await inboxes[i].next(Math.max(1, restartedAt + 15000 - Date.now()), `client ${i}: traffic after the restart`);
        if (m.seq >= seqAtRestart) return;
      }
    }));
    const names = ['websocket on node 0', 'long-polling on node 1', 'websocket via the balancer', 'long-polling via the balancer'];
    const problems = [];
    for (const [i, e] of existing.entries()) {
      const tally = {};
      for (const err of e.errors) tally[err] = (tally[err] || 0) + 1;
      const story = `client ${i} (${names[i]}): ${e.handshakes.length} handshakes, failed replies ${JSON.stringify(tally)}`;
      if (back[i].status === 'rejected') problems.push(`${story}: receives nothing after the restart (${back[i].reason.message})`);
      if (e.handshakes.length < 2) problems.push(`${story}: did not handshake again`);
      if (!e.errors.some((err) => / 401:/.test(err))) problems.push(`${story}: never got a 401`);
      // A 1 s outage and a few seconds of recovery, with faye's 1 s retry: a handful of
      // failed requests, not a tight loop.
      if (e.errors.length > 30) problems.push(`${story}: ${e.errors.length} failed replies, the client was made to retry in a tight loop`);
      if (problems.length && problems.at(-1).startsWith(story)) problems.push(traceOf(e, killedAt, balancer));
    }
    assert.deepEqual(problems, [], `existing clients after the redis restart:\n${problems.join('\n')}`);
    traffic = false;
    await loop;
    assert.deepEqual(c.exits, [], 'no hero exited');
    for (const [i, n] of nodes.entries()) assert.equal(n.proc.exitCode, null, `node ${i} still runs`);
  });
});
