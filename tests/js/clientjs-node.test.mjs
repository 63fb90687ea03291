// Our client.js in Node, against the real npm faye server (and against hero too when
// TARGET=hero): websocket and long-polling, interop with the real faye client, wildcard and
// own-publish delivery, unsubscribe, batched connect advice, websocket fallback, restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TARGET } from './lib/target.mjs';
import { startFayeServer } from './lib/faye-server.mjs';
import { startHero } from './lib/hero.mjs';
import { loadClientJs } from './lib/clientjs.mjs';
import { fayeClient, disconnectAll } from './lib/faye-client.mjs';
import { Inbox, within, onceFaye } from './lib/wait.mjs';

const Faye = loadClientJs();
const SERVERS = TARGET === 'hero' ? ['faye', 'hero'] : ['faye'];

async function start(kind, opts = {}) {
  const s = kind === 'faye' ? await startFayeServer(opts) : await startHero([], { port: opts.port || 0 });
  return { ...s, bayeux: `${s.url}/faye` };
}

/** Our client, recording the connectionType of each /meta/connect it sends. */
function ours(url, { websocket = true, ...options } = {}) {
  const c = new Faye.Client(url, { retry: 1, ...options });
  if (!websocket) c.disable('websocket');
  c.connectionTypes = new Set();
  c.addExtension({ outgoing(m, cb) { if (m.channel === '/meta/connect') c.connectionTypes.add(m.connectionType); cb(m); } });
  return c;
}

for (const kind of SERVERS) {
  for (const [name, websocket] of [['websocket', true], ['long-polling', false]]) {
    test(`client.js ${name} vs ${kind}: pub/sub, interop with the faye client, wildcards, unsubscribe`, { timeout: 30000 }, async () => {
      const server = await start(kind);
      const a = ours(server.bayeux, { websocket });
      const b = ours(server.bayeux, { websocket });
      const real = fayeClient(server.bayeux);
      try {
        const up = onceFaye(a, 'transport:up');
        const got = new Inbox();
        const wild = new Inbox();
        const sub = a.subscribe('/c/x', got.push);
        const wsub = a.subscribe('/c/*', wild.push);
        await within(10000, Promise.all([sub, wsub]), 'subscribe');
        await up;
        assert.match(a.getClientId(), /^[a-z0-9]+$/);
        assert.equal(a.getState(), 'CONNECTED');

        // our client -> our client; the wildcard subscription sees it too, once.
        await within(5000, b.publish('/c/x', { n: 1 }), 'publish');
        assert.deepEqual(await got.next(), { n: 1 });
        assert.deepEqual(await wild.next(), { n: 1 });
        // real faye client -> our client, and our client -> real faye client.
        await real.publish('/c/x', { n: 2 });
        assert.deepEqual(await got.next(), { n: 2 });
        assert.deepEqual(await wild.next(), { n: 2 });
        const realInbox = new Inbox();
        await within(5000, real.subscribe('/d/back', realInbox.push), 'faye subscribe');
        await a.publish('/d/back', 'to faye');
        assert.equal(await realInbox.next(), 'to faye');
        // own publish comes back; /c/* does not match /c/x/deeper.
        await a.publish('/c/x/deeper', 'no');
        await a.publish('/c/x', 'self');
        assert.equal(await got.next(), 'self');
        assert.equal(await wild.next(), 'self');
        // unsubscribe: the cancel and the marker leave in one ordered batch.
        sub.cancel();
        a.publish('/c/x', 'after-cancel');
        assert.equal(await wild.next(), 'after-cancel');
        assert.deepEqual(got.items, [], 'no delivery after cancel');
        assert.deepEqual(wild.items, []);
        // a publish the server refuses rejects with the Bayeux error.
        await assert.rejects(a.publish('/meta/nope', 1), (e) => e.code === 403);
        // a refused subscription rejects too.
        await assert.rejects(a.subscribe('/meta/**', () => {}), (e) => e.code === 403);
        assert.deepEqual([...a.connectionTypes], [name]);
        assert.deepEqual([...b.connectionTypes], [name]);
      } finally {
        await within(5000, Promise.all([a.disconnect(), b.disconnect()]), 'disconnect');
        await disconnectAll([real]);
        await server.stop();
      }
    });

    test(`client.js ${name} vs ${kind}: reconnects after a restart on the same port`, { timeout: 30000 }, async () => {
      let server = await start(kind);
      const port = server.port;
      const c = ours(server.bayeux, { websocket });
      const handshakes = [];
      c.addExtension({ incoming(m, cb) { if (m.channel === '/meta/handshake' && m.successful) handshakes.push(m.clientId); cb(m); } });
      try {
        const got = new Inbox();
        await within(10000, c.subscribe('/r', got.push), 'subscribe');
        await c.publish('/r', 1);
        assert.equal(await got.next(), 1);
        const down = onceFaye(c, 'transport:down');
        await server.stop();
        await down;
        const up = onceFaye(c, 'transport:up');
        server = await start(kind, { port });
        await up;
        // The publish waits for the new session if need be (401 -> handshake -> resend),
        // and the resubscription precedes it, so it comes back.
        await within(10000, c.publish('/r', 2), 'publish after restart');
        assert.equal(await got.next(), 2);
        assert.equal(handshakes.length, 2);
        assert.notEqual(handshakes[0], handshakes[1]);
        assert.deepEqual([...c.connectionTypes], [name]);
      } finally {
        await within(5000, c.disconnect(), 'disconnect');
        await server.stop();
      }
    });
  }
}

test('client.js: a connect batched with other messages is answered at once (advice timeout 0)', { timeout: 20000 }, async () => {
  const server = await start('faye', { timeout: 45 });
  const seen = [];
  server.adapter.addExtension({ incoming(m, cb) { if (m.channel === '/meta/connect') seen.push(m.advice); cb(m); } });
  const c = ours(server.bayeux, { websocket: false });
  try {
    // Subscribe, publish and the first connect leave in one POST; if the connect were held
    // for the server's 45 s timeout, the whole reply (and these acks) would wait with it.
    const got = new Inbox();
    const t0 = Date.now();
    await within(5000, Promise.all([c.subscribe('/b', got.push), c.publish('/b', 'x')]), 'batched acks');
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(await got.next(), 'x');
    assert.deepEqual(seen[0], { timeout: 0 });
    // Alone, the connect is held: no advice sent.
    assert.equal(seen.length >= 2 ? seen[1] : undefined, undefined);
  } finally {
    await within(5000, c.disconnect(), 'disconnect');
    await server.stop();
  }
});

test('client.js: falls back to long-polling when the websocket upgrade fails', { timeout: 20000 }, async () => {
  const server = await start('faye', { websocket: false });
  const c = ours(server.bayeux);
  try {
    const got = new Inbox();
    await within(10000, c.subscribe('/fb', got.push), 'subscribe');
    await within(10000, c.publish('/fb', 'via http'), 'publish');
    assert.equal(await got.next(), 'via http');
    assert.ok(c.connectionTypes.has('long-polling'), [...c.connectionTypes].join());
  } finally {
    await within(5000, c.disconnect(), 'disconnect');
    await server.stop();
  }
});

test('client.js honours the server advice: interval between connects, then reconnect none', { timeout: 20000 }, async () => {
  // The real faye server, timeout 1 s so held connects come back quickly; its outgoing
  // extension rewrites connect advice as a server may (interval 400 ms, later 'none').
  // A loaded machine can delay a held connect past the client's 1.2 x timeout (as in
  // faye's client); the client then connects again later, so arrivals are not counted
  // one for one with replies: every connect must wait the interval after the reply
  // before it, and none may come after the 'none'.
  const server = await start('faye', { timeout: 1 });
  const arrivals = [];
  const replies = [];
  let noneAt = null;
  server.adapter.addExtension({
    incoming(m, cb) { if (m.channel === '/meta/connect') arrivals.push(Date.now()); cb(m); },
    outgoing(m, cb) {
      if (m.channel === '/meta/connect' && m.successful) {
        const none = replies.length >= 3;
        m.advice = { ...m.advice, interval: 400, reconnect: none ? 'none' : 'retry' };
        replies.push(Date.now());
        if (none && noneAt === null) noneAt = Date.now();
      }
      cb(m);
    },
  });
  const c = ours(server.bayeux, { websocket: false });
  try {
    const stopped = new Promise((resolve) => {
      const poll = setInterval(() => { if (c.getState() === 'DISCONNECTED') { clearInterval(poll); resolve(); } }, 20);
    });
    await within(10000, c.subscribe('/adv', () => {}), 'subscribe');
    await within(15000, stopped, 'reconnect none stops the client');
    // Two intervals of quiet: a connect the client still sent would arrive by then.
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.ok(replies.length >= 4, `connects answered before none: ${replies.length}`);
    assert.ok(noneAt !== null, 'the none advice went out');
    assert.deepEqual(arrivals.filter((t) => t > noneAt), [], 'no connect after reconnect none');
    for (const [i, at] of arrivals.entries()) {
      const before = replies.filter((r) => r <= at);
      if (i === 0 || before.length === 0) continue;
      const gap = at - before[before.length - 1];
      assert.ok(gap >= 380, `connect ${i} came ${gap} ms after the reply, interval 400`);
    }
  } finally {
    await within(5000, c.disconnect(), 'disconnect');
    await server.stop();
  }
});
