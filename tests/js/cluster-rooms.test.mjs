// Chat rooms, connections and the cache across the nodes of a Redis cluster (PROTOCOL 1.7,
// 2.2-2.6; README "Running a cluster"): three hero-testbed nodes on one redis-server are
// one actionhero server. Rooms, members, counts and `say` span the nodes; a connection
// lives on the node of its setup subscribe and its verbs are forwarded there from any
// node and run once; the cache is shared; a dead node's clients leave their rooms; a
// Redis that dies and comes back empty is survived.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startCluster, withLogs, destroyFaye } from './lib/cluster.mjs';
import { settle, loadClient, connect, call, nextEvent, recordSays, TRANSPORTS, testbedBin } from './lib/actionhero.mjs';
import { bayeuxPost, raw } from './lib/raw-http.mjs';
import { startHero } from './lib/hero.mjs';
import { within } from './lib/wait.mjs';

const ROOMS = { defaultRoom: {}, secureRoom: { role: 'admin' } };
const ROOM_ARGS = ['--starting-chat-rooms', JSON.stringify(ROOMS)];
const [WEBSOCKET, LONG_POLLING] = TRANSPORTS;
const CONNECTION_PREFIX = '/client/websocket/connection/';

// One cluster for the chat, forwarding and cache tests; the node-death and Redis-restart
// tests start their own. A 5 s connect hold keeps stray long-polls short at the end.
let cluster;
let ActionheroClient;
const clients = [];
before(async () => {
  cluster = await startCluster({ nodes: 3, bin: testbedBin, args: ROOM_ARGS, env: { HERO_BAYEUX__TIMEOUT_MS: '5000' } });
  ActionheroClient = await loadClient(cluster.nodes[0].url);
});
after(async () => {
  for (const c of clients) c.disconnect();
  await settle();
  await cluster?.stop();
});

/** A connected actionheroClient (disconnected when the file ends). */
async function client(url, transport, list = clients) {
  const { client: c } = await within(15000, connect(ActionheroClient, url, transport, { timeout: 15000 }), `actionhero connect to ${url}`);
  list.push(c);
  return c;
}

/** Resolves when `c` hears `message` from `from` in `room` (within `ms`). */
const hears = (c, room, from, message, ms = 10000) =>
  nextEvent(c, 'say', (m) => m.room === room && m.from === from && m.message === message, ms)
    .catch((e) => { e.message += `: "${message}" from ${from} in ${room} never reached ${c.id}`; throw e; });

/** Bounded: a call's promise, labelled. */
const bounded = (promise, label, ms = 10000) => within(ms, promise, label);

/** Polls `fn` (async; returns a truthy value when done, or throws) until it succeeds or `ms` pass. */
async function eventually(fn, ms, label) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = new Error(`${label}: not yet`);
    } catch (e) { last = e; }
    if (Date.now() > deadline) { last.message = `${label}: not within ${ms} ms: ${last.message}`; throw last; }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const getJson = async (url) => {
  const res = await raw(url, {}, 5000);
  return { status: res.status, body: JSON.parse(res.body) };
};

// ---------------------------------------------------------------------------
// `status` in a cluster: a top-level `nodes` array of the live nodes, each
// {id, startedAt, connections} with `connections` the number of connections that node
// owns. A node's id is the one its log names on start-up ("joined the cluster ...
// node=\"<id>\"").

/** The cluster id of a started hero node, from its start-up log. */
function nodeId(node) {
  const line = node.logs.find((l) => /joined the cluster/.test(l));
  const m = line && /node="?([A-Za-z0-9_-]+)"?/.exec(line.slice(line.indexOf('joined the cluster')));
  if (!m) throw new Error(`no "joined the cluster ... node=<id>" line in the log of ${node.url}`);
  return m[1];
}

/**
 * Polls GET /api/status on `node` until `nodes` lists exactly the nodes of `alive`, and
 * (if given) with `connections[i]` connections on `alive[i]`.
 */
function statusShows(node, { alive, connections }, ms, label) {
  let last;
  const want = new Map(alive.map((n, i) => [nodeId(n), connections ? connections[i] : undefined]));
  return eventually(async () => {
    const { body } = await getJson(`${node.url}/api/status`);
    last = body;
    assert.ok(Array.isArray(body.nodes), 'status has a `nodes` array');
    for (const e of body.nodes) {
      assert.equal(typeof e.id, 'string', `a node entry has an id: ${JSON.stringify(e)}`);
      assert.equal(typeof e.connections, 'number', `a node entry has a connection count: ${JSON.stringify(e)}`);
      assert.ok(e.startedAt > 0, `a node entry has startedAt: ${JSON.stringify(e)}`);
    }
    const got = new Map(body.nodes.map((e) => [e.id, e.connections]));
    if (got.size !== body.nodes.length || got.size !== want.size) return false;
    for (const [id, n] of want) {
      if (!got.has(id)) return false;
      if (n !== undefined && got.get(id) !== n) return false;
    }
    return body.nodes;
  }, ms, label).catch((e) => {
    e.message += `\nwanted ${JSON.stringify([...want])}; last status from ${node.url}: ${JSON.stringify(last?.nodes ?? last)}`;
    throw e;
  });
}

// ---------------------------------------------------------------------------
// The chat scenario of tests 1 and 6, for three connected clients.

async function chatAcrossNodes([a, b, c]) {
  const room = 'defaultRoom';
  const said = new Map([a, b, c].map((x) => [x, recordSays(x)]));
  const ids = [a.id, b.id, c.id];
  assert.equal(new Set(ids).size, 3, `three distinct connections: ${ids}`);

  // Joins, each announced to those already in the room.
  assert.equal((await bounded(call.roomAdd(a, room), 'a roomAdd')).status, 'OK');
  const bEnters = hears(a, room, b.id, 'I have entered the room');
  const bJoin = await bounded(call.roomAdd(b, room), 'b roomAdd');
  assert.deepEqual([bJoin.status, bJoin.data], ['OK', true], JSON.stringify(bJoin));
  await bEnters;
  const cEnters = [hears(a, room, c.id, 'I have entered the room'), hears(b, room, c.id, 'I have entered the room')];
  assert.equal((await bounded(call.roomAdd(c, room), 'c roomAdd')).status, 'OK');
  await Promise.all(cEnters);
  assert.equal((await bounded(call.roomAdd(c, room), 'c roomAdd again')).status, 'connection already in this room');

  // roomView on each node: the same three members.
  for (const [name, x] of [['a', a], ['b', b], ['c', c]]) {
    const view = await bounded(call.roomView(x, room), `${name} roomView`);
    assert.equal(view.status, 'OK', `${name}: ${JSON.stringify(view)}`);
    assert.equal(view.data.room, room);
    assert.equal(view.data.membersCount, 3, `${name} sees 3 members: ${JSON.stringify(view.data)}`);
    assert.deepEqual(Object.keys(view.data.members).sort(), [...ids].sort(), `${name}'s member list`);
    for (const id of ids) {
      assert.equal(view.data.members[id].id, id);
      assert.ok(view.data.members[id].joinedAt > 0, JSON.stringify(view.data.members[id]));
    }
    assert.deepEqual((await bounded(call.details(x), `${name} detailsView`)).data.rooms, [room]);
  }

  // say from a: b and c hear it, a does not.
  const toB = hears(b, room, a.id, 'hello from a');
  const toC = hears(c, room, a.id, 'hello from a');
  const sent = await bounded(call.say(a, room, 'hello from a'), 'a say');
  assert.deepEqual([sent.status, sent.data], ['OK', true], JSON.stringify(sent));
  const heard = await toB;
  assert.equal(heard.context, 'user');
  assert.ok(Math.abs(Date.now() - heard.sentAt) < 60000, JSON.stringify(heard));
  await toC;
  // Markers said after the hello reached them: b's reaches a and c, c's reaches a and b.
  // By then a second copy of the hello, or an echo to a, would have shown.
  const markers = [hears(a, room, b.id, 'marker b'), hears(c, room, b.id, 'marker b')];
  assert.equal((await bounded(call.say(b, room, 'marker b'), 'b say')).status, 'OK');
  await Promise.all(markers);
  const markersC = [hears(a, room, c.id, 'marker c'), hears(b, room, c.id, 'marker c')];
  assert.equal((await bounded(call.say(c, room, 'marker c'), 'c say')).status, 'OK');
  await Promise.all(markersC);
  const hellos = (x) => said.get(x).filter((m) => m.message === 'hello from a').length;
  assert.deepEqual([hellos(a), hellos(b), hellos(c)], [0, 1, 1], 'hello from a: copies at a, b, c');
  for (const x of [a, b, c]) {
    assert.deepEqual(said.get(x).filter((m) => m.from === x.id), [], `${x.id} hears nothing of its own`);
  }

  // b leaves: announced on a and c (once), counts drop to 2 everywhere.
  const bLeaves = [hears(a, room, b.id, 'I have left the room'), hears(c, room, b.id, 'I have left the room')];
  assert.equal((await bounded(call.roomLeave(b, room), 'b roomLeave')).status, 'OK');
  await Promise.all(bLeaves);
  for (const [name, x] of [['a', a], ['c', c]]) {
    const view = await bounded(call.roomView(x, room), `${name} roomView after the leave`);
    assert.equal(view.data.membersCount, 2, `${name} after b left: ${JSON.stringify(view.data)}`);
    assert.deepEqual(Object.keys(view.data.members).sort(), [a.id, c.id].sort());
  }
  assert.equal((await bounded(call.roomView(b, room), 'b roomView')).status, `not member of room ${room}`);
  assert.equal((await bounded(call.roomLeave(b, room), 'b roomLeave again')).status, 'connection not in this room');
  assert.equal((await bounded(call.say(b, room, 'not a member'), 'b say outside')).status, 'connection not in this room');
  // b no longer hears the room.
  const afterLeave = [hears(c, room, a.id, 'after b left')];
  await bounded(call.say(a, room, 'after b left'), 'a say');
  await Promise.all(afterLeave);
  await bounded(call.details(b), 'b detailsView'); // orders b's channel after any stray copy
  assert.equal(said.get(b).filter((m) => m.message === 'after b left').length, 0, 'b heard the room after leaving');
  const leaves = said.get(a).filter((m) => m.from === b.id && m.message === 'I have left the room').length;
  assert.equal(leaves, 1, 'the leave was announced to a once');

  // The secure room refuses every connection on every node.
  for (const [name, x] of [['a', a], ['b', b], ['c', c]]) {
    const refused = await bounded(call.roomAdd(x, 'secureRoom'), `${name} roomAdd secureRoom`);
    assert.deepEqual([refused.status, refused.data], ['not authorized to join room', false], `${name}: ${JSON.stringify(refused)}`);
    assert.equal((await bounded(call.roomAdd(x, 'noSuchRoom'), `${name} roomAdd noSuchRoom`)).status, 'room does not exist');
  }
}

test('1. websocket clients on three nodes: joins, roomView counts 3, say to the others once, leave, secureRoom refused', { timeout: 40000 }, () => withLogs(cluster, async () => {
  const { nodes } = cluster;
  const [a, b, c] = await Promise.all(nodes.map((n) => client(n.url, WEBSOCKET)));
  for (const x of [a, b, c]) assert.equal(x.client._dispatcher.connectionType, 'websocket');
  // status: three live nodes, one connection on each (see the ASSUMED SHAPE above).
  for (const node of nodes) {
    await statusShows(node, { alive: nodes, connections: [1, 1, 1] }, 5000, `status on ${node.url}: 3 nodes, 1 connection each`);
  }
  await chatAcrossNodes([a, b, c]);
  for (const x of [a, b, c]) x.disconnect();
  for (const node of nodes) {
    await statusShows(node, { alive: nodes, connections: [0, 0, 0] }, 5000, `status on ${node.url} after the disconnects: no connection left`);
  }
}));

// ---------------------------------------------------------------------------
// A raw long-polling actionhero connection: every Bayeux request goes to the node the
// test names, so "handled on C for a connection owned by A" is exact.

async function rawConnection({ owner, subscribeOn, polls, name = 'raw' }) {
  const t0 = Date.now();
  const r = { name, trace: [], seen: [], errors: [], waiters: new Set(), count: 0, closed: false, clientId: null, id: null, channel: null };
  const note = (line) => { r.trace.push(`+${Date.now() - t0} ms ${line}`); };
  const absorb = (replies) => {
    for (const m of replies) {
      if (m.channel.startsWith('/meta/') || m.data === undefined) continue;
      r.seen.push(m);
      for (const w of [...r.waiters]) if (w.pred(m)) { r.waiters.delete(w); w.resolve(m); }
    }
  };
  r.post = async (node, msg, ms = 8000) => {
    note(`-> node ${node.index}: ${JSON.stringify(msg)}`);
    const replies = await within(ms, bayeuxPost(node.bayeux, msg), `${name}: ${msg.channel} on node ${node.index}`);
    note(`<- node ${node.index}: ${JSON.stringify(replies).slice(0, 500)}`);
    absorb(replies);
    return replies;
  };
  r.describe = () => `\n--- ${name} (clientId ${r.clientId}, connection ${r.id}) trace, last 40 ---\n${r.trace.slice(-40).join('\n')}`;
  /** Resolves with the first delivery (seen or to come) that passes `pred`. */
  r.waitFor = (pred, ms, label) => {
    const seen = r.seen.find(pred);
    if (seen) return Promise.resolve(seen);
    let w;
    const p = new Promise((resolve) => { w = { pred, resolve }; r.waiters.add(w); });
    return within(ms, p, `${name}: ${label}`).catch((e) => { r.waiters.delete(w); throw e; });
  };
  /** Publishes `data` on the connection channel through `node`; resolves with the response to it. */
  r.send = async (node, data, ms = 8000) => {
    const n = ++r.count;
    const [ack] = await r.post(node, { channel: r.channel, clientId: r.clientId, data, id: `p${n}` });
    assert.equal(ack?.successful, true, `${name}: publish ${JSON.stringify(data)} on node ${node.index}: ${JSON.stringify(ack)}`);
    const m = await r.waitFor((x) => x.channel === r.channel && x.data.context === 'response' && x.data.messageCount === n, ms,
      `response ${n} to ${JSON.stringify(data)} (published on node ${node.index})`);
    return m.data;
  };
  /** Deliveries on the connection channel that pass `pred`. */
  r.received = (pred = () => true) => r.seen.filter((m) => m.channel === r.channel && pred(m.data)).map((m) => m.data);
  r.close = async () => {
    r.closed = true;
    if (r.clientId) await r.post(owner, { channel: '/meta/disconnect', clientId: r.clientId, id: 'bye' }).catch(() => {});
    await within(12000, r.loop || Promise.resolve(), `${name}: last connect`).catch(() => {});
  };

  const [hs] = await r.post(owner, { channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id: 'h' });
  assert.equal(hs?.successful, true, `${name}: handshake on node ${owner.index}: ${JSON.stringify(hs)}`);
  r.clientId = hs.clientId;
  // Long-polls in turn on `polls`, until closed.
  r.loop = (async () => {
    for (let turn = 0; !r.closed; turn++) {
      const node = polls[turn % polls.length];
      try {
        const replies = await r.post(node, { channel: '/meta/connect', clientId: r.clientId, connectionType: 'long-polling', id: `c${turn}` }, 15000);
        const reply = replies.find((m) => m.channel === '/meta/connect');
        if (!reply?.successful) { r.errors.push(`connect on node ${node.index}: ${JSON.stringify(reply)}`); await new Promise((res) => setTimeout(res, 200)); }
      } catch (e) {
        r.errors.push(`connect on node ${node.index}: ${e.message}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  })();
  const setup = `/client/websocket/_incoming/${name}${randomBytes(8).toString('hex')}`;
  const [sub] = await r.post(owner, { channel: '/meta/subscribe', clientId: r.clientId, subscription: setup, id: 's1' });
  assert.equal(sub?.successful, true, `${name}: setup subscribe on node ${owner.index}: ${JSON.stringify(sub)}`);
  const hello = await r.waitFor((m) => m.channel === setup && typeof m.data?.id === 'string', 8000, 'the connection id on the setup channel');
  r.id = hello.data.id;
  r.channel = CONNECTION_PREFIX + r.id;
  const [sub2] = await r.post(subscribeOn, { channel: '/meta/subscribe', clientId: r.clientId, subscription: r.channel, id: 's2' });
  assert.equal(sub2?.successful, true, `${name}: connection channel subscribe on node ${subscribeOn.index}: ${JSON.stringify(sub2)}`);
  return r;
}

test('2. a connection owned by A: an action through C sets its attribute, then it joins the secure room', { timeout: 40000 }, () => withLogs(cluster, async () => {
  const [A, B, C] = cluster.nodes;
  // An admin on B, in the secure room (attribute set on its own node).
  const admin = await client(B.url, WEBSOCKET);
  const set = await bounded(call.action(admin, 'attributeTest', { key: 'role', value: 'admin' }), 'admin attributeTest');
  assert.deepEqual(set.attributeSet, { role: 'admin' }, JSON.stringify(set));
  assert.equal((await bounded(call.roomAdd(admin, 'secureRoom'), 'admin roomAdd')).status, 'OK');

  // The raw connection: handshake and setup subscribe on A (its owner), connection channel
  // subscribed on B, long-polls on B, C, A in turn.
  const r = await rawConnection({ owner: A, subscribeOn: B, polls: [B, C, A] });
  try {
    // The raw connection is A's (its setup subscribe arrived there), the admin is B's.
    await statusShows(C, { alive: [A, B, C], connections: [1, 1, 0] }, 5000, 'status on C: the raw connection owned by A, the admin by B');
    // 1: refused before the attribute (published on B).
    const refused = await r.send(B, { event: 'roomAdd', room: 'secureRoom' });
    assert.deepEqual([refused.status, refused.data], ['not authorized to join room', false], JSON.stringify(refused));
    // 2: the action, published on C, runs for the connection (on its owner, A): the attribute is set.
    const action = await r.send(C, { event: 'action', params: { action: 'attributeTest', key: 'role', value: 'admin' } });
    assert.equal(action.error, undefined, JSON.stringify(action));
    assert.deepEqual(action.attributeSet, { role: 'admin' }, JSON.stringify(action));
    // 3: now it may join (published on B: the attribute set through C is the
    // connection's, wherever the next verb lands); the admin on B hears it enter.
    const enters = hears(admin, 'secureRoom', r.id, 'I have entered the room');
    const joined = await r.send(B, { event: 'roomAdd', room: 'secureRoom' });
    assert.deepEqual([joined.status, joined.data], ['OK', true], JSON.stringify(joined));
    await enters;
    const view = await bounded(call.roomView(admin, 'secureRoom'), 'admin roomView');
    assert.equal(view.data.membersCount, 2, JSON.stringify(view.data));
    assert.deepEqual(Object.keys(view.data.members).sort(), [admin.id, r.id].sort());
    // 4: a say published on A reaches the admin; the admin's say reaches the raw connection.
    const toAdmin = hears(admin, 'secureRoom', r.id, 'hi from raw');
    const said = await r.send(A, { event: 'say', room: 'secureRoom', message: 'hi from raw' });
    assert.deepEqual([said.status, said.data], ['OK', true], JSON.stringify(said));
    await toAdmin;
    await bounded(call.say(admin, 'secureRoom', 'hi from admin'), 'admin say');
    const back = await r.waitFor((m) => m.channel === r.channel && m.data.context === 'user' && m.data.message === 'hi from admin', 8000, 'the admin\'s say');
    assert.deepEqual([back.data.room, back.data.from], ['secureRoom', admin.id]);
    // 5: detailsView (published on C) and roomView (published on B): one connection, one
    // action run, sticky params, the room joined, the real peer address.
    const details = await r.send(C, { event: 'detailsView' });
    assert.equal(details.status, 'OK', JSON.stringify(details));
    assert.equal(details.data.id, r.id);
    assert.equal(details.data.totalActions, 1, `the action ran once: ${JSON.stringify(details.data)}`);
    assert.equal(details.data.pendingActions, 0);
    assert.deepEqual(details.data.rooms, ['secureRoom']);
    assert.equal(details.data.params.key, 'role', `params stick: ${JSON.stringify(details.data.params)}`);
    assert.equal(details.data.remoteIP, '127.0.0.1');
    const rview = await r.send(B, { event: 'roomView', room: 'secureRoom' });
    assert.equal(rview.data.membersCount, 2, JSON.stringify(rview));
    // Each verb answered once, in step with the count (the responses are 1..6).
    const counts = r.received((d) => d.context === 'response').map((d) => d.messageCount);
    assert.deepEqual(counts, [1, 2, 3, 4, 5, 6], 'one response per verb, in order');
    assert.deepEqual(r.received((d) => d.context === 'user' && d.from === r.id), [], 'no echo of its own say');
    // 6: a Bayeux disconnect on C ends the connection: a normal leave, announced on B.
    const leaves = hears(admin, 'secureRoom', r.id, 'I have left the room');
    const [bye] = await r.post(C, { channel: '/meta/disconnect', clientId: r.clientId, id: 'd1' });
    assert.equal(bye.successful, true, JSON.stringify(bye));
    r.closed = true;
    await leaves;
    assert.equal((await bounded(call.roomView(admin, 'secureRoom'), 'admin roomView')).data.membersCount, 1);
    await statusShows(A, { alive: [A, B, C], connections: [0, 1, 0] }, 5000, 'status on A: the raw connection is gone from A\'s count');
  } catch (e) {
    e.message += r.describe();
    throw e;
  } finally {
    await r.close();
    admin.disconnect();
  }
}));

// ---------------------------------------------------------------------------
// The cache. `cacheTest` saves, loads and deletes in one request, so the cross-node
// checks use hero-testbed's one-operation actions (crates/test-actions/src/cache.rs):
//   cacheSetTest {key, value, ttlMs?} -> {"set": key}
//   cacheGetTest {key}                -> {"key": key, "value": <value> | null}
//   cacheDeleteTest {key}             -> {"key": key, "deleted": true | false}

const api = async (node, action, params = {}, method = 'GET') => {
  if (method === 'GET') {
    const q = new URLSearchParams(params).toString();
    return getJson(`${node.url}/api/${action}${q ? `?${q}` : ''}`);
  }
  const res = await raw(`${node.url}/api/${action}`, { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(params) }, 5000);
  return { status: res.status, body: JSON.parse(res.body) };
};

test('3. the cache is shared: cacheTest on every node; written on A, read on B, deleted on C', { timeout: 30000 }, () => withLogs(cluster, async () => {
  const [A, B, C] = cluster.nodes;
  // cacheTest on each node (all at once, distinct keys).
  const results = await Promise.all(cluster.nodes.map((n, i) => api(n, 'cacheTest', { key: `k${i}`, value: `v${i}` })));
  for (const [i, { status, body }] of results.entries()) {
    assert.equal(status, 200);
    assert.deepEqual(body.cacheTestResults, { saveResp: true, loadResp: { key: `cacheTest_k${i}`, value: `v${i}` }, deleteResp: true }, `node ${i}: ${JSON.stringify(body)}`);
  }

  const key = `shared-${randomBytes(4).toString('hex')}`;
  const written = await api(A, 'cacheSetTest', { key, value: 'from A' });
  assert.equal(written.body.error, undefined, `cacheSetTest on A: ${JSON.stringify(written.body)}`);
  assert.equal(written.body.set, key, JSON.stringify(written.body));
  const read = await api(B, 'cacheGetTest', { key });
  assert.equal(read.body.error, undefined, `cacheGetTest on B: ${JSON.stringify(read.body)}`);
  assert.deepEqual([read.body.key, read.body.value], [key, 'from A'], `read on B what A wrote: ${JSON.stringify(read.body)}`);
  const deleted = await api(C, 'cacheDeleteTest', { key });
  assert.equal(deleted.body.deleted, true, `deleted on C: ${JSON.stringify(deleted.body)}`);
  assert.equal((await api(A, 'cacheGetTest', { key })).body.value, null, 'gone on A after the delete on C');
  assert.equal((await api(B, 'cacheDeleteTest', { key })).body.deleted, false, 'nothing left to delete on B');

  // A JSON value written over a JSON body on B comes back as JSON on C, and to a
  // websocket connection on A.
  const doc = { list: [1, 2, { x: 'y' }], n: 3.5, ok: true };
  const w2 = await api(B, 'cacheSetTest', { key: `${key}-doc`, value: doc }, 'POST');
  assert.equal(w2.body.set, `${key}-doc`, JSON.stringify(w2.body));
  assert.deepEqual((await api(C, 'cacheGetTest', { key: `${key}-doc` })).body.value, doc);
  const ws = await client(A.url, WEBSOCKET);
  try {
    const viaWs = await bounded(call.action(ws, 'cacheGetTest', { key: `${key}-doc` }), 'cacheGetTest over the websocket on A');
    assert.deepEqual(viaWs.value, doc, JSON.stringify(viaWs));
    const delWs = await bounded(call.action(ws, 'cacheDeleteTest', { key: `${key}-doc` }), 'cacheDeleteTest over the websocket on A');
    assert.equal(delWs.deleted, true, JSON.stringify(delWs));
  } finally {
    ws.disconnect();
  }
  assert.equal((await api(B, 'cacheGetTest', { key: `${key}-doc` })).body.value, null);

  // An entry with a TTL set on C is read on A, then expires for every node.
  const ttlKey = `${key}-ttl`;
  assert.equal((await api(C, 'cacheSetTest', { key: ttlKey, value: 'short', ttlMs: 500 })).body.set, ttlKey);
  assert.equal((await api(A, 'cacheGetTest', { key: ttlKey })).body.value, 'short', 'read on A before it expires');
  await eventually(async () => (await api(B, 'cacheGetTest', { key: ttlKey })).body.value === null, 5000, 'the entry expired, as B sees it');
  assert.equal((await api(A, 'cacheGetTest', { key: ttlKey })).body.value, null, 'expired on A too');
  assert.equal((await api(C, 'cacheDeleteTest', { key: ttlKey })).body.deleted, false, 'nothing left to delete on C');
}));

// ---------------------------------------------------------------------------

test('6. long-polling actionheroClient clients through the round-robin balancer: the same chat, verbs from every node run once', { timeout: 40000 }, (t) => withLogs(cluster, async () => {
  const { balancer } = cluster;
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => client(balancer.url, LONG_POLLING)));
  for (const x of [a, b, c]) assert.equal(x.client._dispatcher.connectionType, 'long-polling');
  await chatAcrossNodes([a, b, c]);

  // An attribute set through whichever node, then the secure room lets a in (only a).
  const set = await bounded(call.action(a, 'attributeTest', { key: 'role', value: 'admin' }), 'a attributeTest');
  assert.deepEqual(set.attributeSet, { role: 'admin' }, JSON.stringify(set));
  assert.equal((await bounded(call.roomAdd(a, 'secureRoom'), 'a roomAdd secureRoom')).status, 'OK');
  assert.equal((await bounded(call.roomAdd(b, 'secureRoom'), 'b roomAdd secureRoom')).status, 'not authorized to join room');
  // Actions one after another: each may land on another node, each runs once.
  for (let k = 0; k < 6; k++) {
    const r = await bounded(call.action(a, 'randomNumber', {}), `randomNumber ${k}`);
    assert.ok(r.randomNumber >= 0 && r.randomNumber < 1, JSON.stringify(r));
  }
  const details = await bounded(call.details(a), 'a detailsView');
  assert.equal(details.data.totalActions, 7, `1 attributeTest + 6 randomNumber, each run once: ${JSON.stringify(details.data)}`);
  assert.deepEqual(details.data.rooms.sort(), ['defaultRoom', 'secureRoom']);
  assert.equal(details.messageCount, a.messageCount, 'client and server counts in step');

  // The verbs really were spread: each client's publishes on its connection channel went
  // to more than one node, and some to a node other than its owner (the node of its
  // setup subscribe).
  const messages = balancer.messages();
  const owners = [];
  for (const [name, x] of [['a', a], ['b', b], ['c', c]]) {
    const clientId = x.client._dispatcher.clientId;
    const setup = messages.find((m) => m.clientId === clientId && m.channel === '/meta/subscribe'
      && [].concat(m.subscription).includes(x.options.setupChannel));
    assert.ok(setup, `${name}: its setup subscribe went through the balancer`);
    owners.push(setup.backend);
    const verbs = messages.filter((m) => m.clientId === clientId && m.channel === CONNECTION_PREFIX + x.id);
    const where = new Set(verbs.map((m) => m.backend));
    assert.ok(verbs.length >= 8, `${name}: ${verbs.length} verbs`);
    assert.ok(where.size >= 2, `${name}: verbs on nodes ${[...where]}`);
    assert.ok(verbs.some((m) => m.backend !== setup.backend), `${name}: some verb landed off its owner node ${setup.backend}`);
    t.diagnostic(`${name}: owned by node ${setup.backend}; its ${verbs.length} verbs landed on nodes ${verbs.map((m) => m.backend).join('')}`);
  }
  // status counts each connection on its owner node.
  const owned = cluster.nodes.map((_, i) => owners.filter((o) => o === i).length);
  await statusShows(cluster.nodes[1], { alive: cluster.nodes, connections: owned }, 5000, `status: the connections on their owner nodes ${owned}`);
  for (const x of [a, b, c]) x.disconnect();
}));

// ---------------------------------------------------------------------------

test('4. a late node keeps the room; SIGKILL of node C: its client leaves defaultRoom, announced on the others, within node_timeout + 5 s', { timeout: 40000 }, async (t) => {
  const NODE_TIMEOUT = 2000;
  const env = { HERO_CLUSTER__NODE_TIMEOUT_MS: String(NODE_TIMEOUT) };
  const c3 = await startCluster({ nodes: 3, bin: testbedBin, args: ROOM_ARGS, env });
  const mine = [];
  t.after(async () => {
    for (const x of mine) x.disconnect();
    await settle();
    await c3.stop();
  });
  await withLogs(c3, async () => {
    const [A, B, C] = c3.nodes;
    const [a, b, c] = await Promise.all([A, B, C].map((n) => client(n.url, WEBSOCKET, mine)));
    const room = 'defaultRoom';
    assert.equal((await bounded(call.roomAdd(a, room), 'a roomAdd')).status, 'OK');
    const joins = [hears(a, room, b.id, 'I have entered the room')];
    assert.equal((await bounded(call.roomAdd(b, room), 'b roomAdd')).status, 'OK');
    await Promise.all(joins);
    const cJoins = [hears(a, room, c.id, 'I have entered the room'), hears(b, room, c.id, 'I have entered the room')];
    assert.equal((await bounded(call.roomAdd(c, room), 'c roomAdd')).status, 'OK');
    await Promise.all(cJoins);
    assert.equal((await bounded(call.roomView(a, room), 'a roomView')).data.membersCount, 3);

    // A fourth node joining now creates its starting rooms only if the cluster has none:
    // defaultRoom keeps its three members, and a client of the new node joins them.
    const D = await startHero([...ROOM_ARGS, '--redis', c3.redis.url], { bin: testbedBin, env: { HERO_CLUSTER__NAMESPACE: c3.namespace, ...env } });
    Object.assign(D, { index: 3, bayeux: `${D.url}/faye` });
    c3.nodes.push(D);
    D.proc.on('exit', (code, signal) => { if (!D.stopping) c3.exits.push({ node: 3, code, signal }); });
    const d = await client(D.url, WEBSOCKET, mine);
    const dJoins = [a, b, c].map((x) => hears(x, room, d.id, 'I have entered the room'));
    assert.equal((await bounded(call.roomAdd(d, room), 'd roomAdd')).status, 'OK');
    await Promise.all(dJoins);
    const viewD = await bounded(call.roomView(d, room), 'd roomView');
    assert.deepEqual(Object.keys(viewD.data.members).sort(), [a.id, b.id, c.id, d.id].sort(), `the late node's view: ${JSON.stringify(viewD.data)}`);
    assert.equal(viewD.data.membersCount, 4);
    await statusShows(A, { alive: [A, B, C, D], connections: [1, 1, 1, 1] }, 5000, 'status on A: 4 nodes, 1 connection each');
    const saidA = recordSays(a);

    const cId = c.id;
    const bound = NODE_TIMEOUT + 5000;
    const left = [a, b, d].map((x) => hears(x, room, cId, 'I have left the room', bound));
    C.stopping = true; // an expected exit
    const exited = once(C.proc, 'exit');
    const killedAt = Date.now();
    C.proc.kill('SIGKILL');
    await exited;
    // c's client can reach nothing now: stop it for good.
    const fayeOfC = c.client;
    c.disconnect();
    if (fayeOfC) destroyFaye(fayeOfC);
    await Promise.all(left);
    t.diagnostic(`the dead node's client left ${Date.now() - killedAt} ms after the SIGKILL (bound ${bound} ms)`);

    for (const [name, x] of [['a', a], ['b', b], ['d', d]]) {
      const view = await bounded(call.roomView(x, room), `${name} roomView`);
      assert.equal(view.data.membersCount, 3, `${name} after node C died: ${JSON.stringify(view.data)}`);
      assert.deepEqual(Object.keys(view.data.members).sort(), [a.id, b.id, d.id].sort());
    }
    // The cluster goes on: b's say reaches a, after which a has heard c leave exactly once.
    const heard = hears(a, room, b.id, 'still here');
    assert.equal((await bounded(call.say(b, room, 'still here'), 'b say')).status, 'OK');
    await heard;
    assert.equal(saidA.filter((m) => m.from === cId && m.message === 'I have left the room').length, 1, 'one leave announcement');
    // status lists the three live nodes only (same bound).
    for (const node of [A, B, D]) {
      await statusShows(node, { alive: [A, B, D], connections: [1, 1, 1] }, Math.max(1000, killedAt + bound - Date.now()), `status on ${node.url}: A, B and D after the SIGKILL`);
    }
    assert.deepEqual(c3.exits, [], 'no other hero exited');
  });
});

// ---------------------------------------------------------------------------

test('5. redis killed and restarted empty mid-traffic: HTTP served during the outage, chat A -> B again within 10 s', { timeout: 45000 }, async (t) => {
  const pub = mkdtempSync(path.join(tmpdir(), 'hero-public-'));
  writeFileSync(path.join(pub, 'hello.txt'), 'hello from the static files\n');
  // A 5 s connect hold: a websocket client whose connect is held learns within 5 s that
  // its session is gone.
  const c2 = await startCluster({ nodes: 3, bin: testbedBin, args: [...ROOM_ARGS, '--public', pub], env: { HERO_BAYEUX__TIMEOUT_MS: '5000' } });
  const mine = [];
  let traffic = false;
  let loop = Promise.resolve();
  t.after(async () => {
    traffic = false;
    await loop;
    for (const x of mine) x.disconnect();
    await settle();
    await c2.stop();
  });
  await withLogs(c2, async () => {
    const [A, B] = c2.nodes;
    const { redis } = c2;
    const a = await client(A.url, WEBSOCKET, mine);
    const b = await client(B.url, WEBSOCKET, mine);
    const room = 'defaultRoom';
    assert.equal((await bounded(call.roomAdd(a, room), 'a roomAdd')).status, 'OK');
    assert.equal((await bounded(call.roomAdd(b, room), 'b roomAdd')).status, 'OK');
    const before = hears(b, room, a.id, 'before');
    await bounded(call.say(a, room, 'before'), 'a say');
    await before;

    // Traffic: a says something every 100 ms (not awaited: while a reconnects its says queue).
    let seq = 0;
    traffic = true;
    loop = (async () => {
      while (traffic) {
        a.say(room, `traffic ${seq++}`, () => {});
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await hears(b, room, a.id, 'traffic 2');

    const oldIds = [a.id, b.id];
    // A marker key: gone after the restart, so the new redis started empty (DBSIZE would
    // race with the nodes writing their state again).
    await redis.command('SET', 'cluster-rooms-test-marker', '1');
    const killedAt = Date.now();
    await redis.kill();
    // The outage lasts 1.5 s; meanwhile A and B keep answering HTTP: an action and a static file.
    const served = [];
    while (Date.now() - killedAt < 1500) {
      for (const node of [A, B]) {
        const t1 = Date.now();
        const rn = await raw(`${node.url}/api/randomNumber`, {}, 2000);
        assert.equal(rn.status, 200, `randomNumber on node ${node.index} during the outage: ${rn.status} ${rn.body}`);
        const n = JSON.parse(rn.body).randomNumber;
        assert.ok(n >= 0 && n < 1, `randomNumber on node ${node.index} during the outage: ${rn.body}`);
        const file = await raw(`${node.url}/public/hello.txt`, {}, 2000);
        assert.equal(file.status, 200, `static file on node ${node.index} during the outage: ${file.status}`);
        assert.equal(file.body, 'hello from the static files\n');
        served.push(Date.now() - t1);
      }
      await new Promise((r) => setTimeout(r, 25)); // a steady pace, not a flood of sockets
    }
    assert.ok(redis.running === false, 'redis was down throughout the probes');
    t.diagnostic(`HTTP during the outage: ${served.length} rounds, slowest ${Math.max(...served)} ms`);
    await redis.restart();
    const restartedAt = Date.now();
    assert.equal(await redis.command('EXISTS', 'cluster-rooms-test-marker'), 0, 'the new redis started empty');

    // Within 10 s: a says (on whatever connection it has by then) every 300 ms until b
    // hears one of those says from a's current connection.
    let attempt = 0;
    let done = false;
    const answers = [];
    const heardAfter = nextEvent(b, 'say', (m) => m.room === room && /^after /.test(m.message) && m.from === a.id, Math.max(1, restartedAt + 10000 - Date.now()))
      .finally(() => { done = true; });
    const sayLoop = (async () => {
      while (!done) {
        const text = `after ${attempt++}`;
        a.say(room, text, (err, resp) => answers.push(`${text}: ${JSON.stringify(resp)}`));
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    try {
      await heardAfter.catch((e) => {
        e.message = `chat from a (node A) to b (node B) did not work again within 10 s of the redis restart (${attempt} says; a: ${a.state} ${a.id} rooms ${JSON.stringify(a.rooms)}, b: ${b.state} ${b.id}): ${e.message}\nthe last answers to a's says: ${answers.slice(-3).join('; ')}`;
        throw e;
      });
    } finally {
      await sayLoop;
    }
    t.diagnostic(`chat A -> B worked again ${Date.now() - restartedAt} ms after the redis restart (${attempt} attempts)`);
    traffic = false;
    await loop;
    assert.notEqual(a.id, oldIds[0], 'a has a new connection (its session was lost with the redis data)');
    assert.notEqual(b.id, oldIds[1], 'b has a new connection');
    // Both are in the room (rejoined on their new connections), and only they are.
    await eventually(async () => {
      const view = await within(3000, call.roomView(b, room), 'b roomView');
      assert.equal(view.status, 'OK', JSON.stringify(view));
      assert.deepEqual(Object.keys(view.data.members).sort(), [a.id, b.id].sort(), JSON.stringify(view.data));
      assert.equal(view.data.membersCount, 2);
      return true;
    }, Math.max(2000, restartedAt + 10000 - Date.now()), 'b\'s roomView: exactly a and b after the restart');
    const back = hears(a, room, b.id, 'b to a');
    assert.equal((await bounded(call.say(b, room, 'b to a'), 'b say')).status, 'OK');
    await back;
    // Every node registered again, counting only the new connections.
    await statusShows(c2.nodes[2], { alive: c2.nodes, connections: [1, 1, 0] }, 5000, 'status after the redis restart: three nodes, a on A, b on B');
    assert.deepEqual(c2.exits, [], 'no hero exited');
  });
});

test('7. a verb forwarded to an owner node that does not answer: the client\'s session ends within the bound, so it starts over', { timeout: 40000 }, async (t) => {
  // Short call deadlines (a forwarded verb waits 3 of them), a long node timeout: what
  // ends the session is the missing acknowledgement, not the dead-node collector.
  const env = { HERO_BAYEUX__TIMEOUT_MS: '2000', HERO_CLUSTER__CALL_TIMEOUT_MS: '500', HERO_CLUSTER__NODE_TIMEOUT_MS: '60000' };
  const c = await startCluster({ nodes: 3, bin: testbedBin, args: ROOM_ARGS, env });
  const [A, B, C] = c.nodes;
  let stopped = false;
  t.after(async () => {
    if (stopped) A.proc.kill('SIGCONT');
    await c.stop();
  });
  await withLogs(c, async () => {
    const r = await rawConnection({ owner: A, subscribeOn: B, polls: [B, C], name: 'orphan' });
    try {
      // Answered while the owner runs.
      const before = await r.send(B, { event: 'detailsView' });
      assert.equal(before.status, 'OK', JSON.stringify(before));
      A.proc.kill('SIGSTOP');
      stopped = true;
      const sentAt = Date.now();
      const [ack] = await r.post(B, { channel: r.channel, clientId: r.clientId, data: { event: 'detailsView' }, id: 'lost' });
      assert.equal(ack?.successful, true, `the verb is accepted for forwarding: ${JSON.stringify(ack)}`);
      // The owner never acknowledges: within the bound the session is over, and the
      // client's next connect (on B or C) is told so with a 401.
      const deadline = Date.now() + 8000;
      while (!r.errors.some((e) => e.includes(':Unknown client'))) {
        assert.ok(Date.now() < deadline, `no 401 within 8 s of the unanswered verb; connect errors: ${JSON.stringify(r.errors)}${r.describe()}`);
        await new Promise((res) => setTimeout(res, 50));
      }
      t.diagnostic(`the session ended ${Date.now() - sentAt} ms after the unanswered verb (bound 1.5 s + a connect)`);
      assert.ok(B.logs.some((l) => l.includes('did not answer a verb')), 'the forwarding node says why');
    } finally {
      r.closed = true;
    }
  });
});
