// PROTOCOL 2.1-2.4 through our actionheroClient.js (as hero serves it) on the real npm
// faye client, against a running hero, over websocket and over forced long-polling.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startHero } from './lib/hero.mjs';
import { faye, settle, loadClient, connect, call, nextEvent, TRANSPORTS } from './lib/actionhero.mjs';

const publicDir = mkdtempSync(path.join(tmpdir(), 'hero-public-'));
const SIMPLE = '<h1>ActionHero</h1>\nI am a flat file being served to you via the API from ./public/simple.html<br />';
writeFileSync(path.join(publicDir, 'simple.html'), SIMPLE);
const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
writeFileSync(path.join(publicDir, 'bytes.bin'), BINARY);
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
writeFileSync(path.join(publicDir, 'pixel.png'), PNG);

let hero;
let ActionheroClient;

before(async () => {
  hero = await startHero(['--public', publicDir, '--welcome-message', 'Hello from the test']);
  ActionheroClient = await loadClient(hero.url);
});
after(async () => {
  await settle();
  await hero?.stop();
});

for (const transport of TRANSPORTS) {
  describe(`over ${transport.name}`, () => {
    test('connect: a webSocket connection, details with the real peer, then the welcome', async () => {
      const client = new ActionheroClient({ faye, host: hero.url, disable: transport.disable });
      const welcome = nextEvent(client, 'welcome');
      const details = await new Promise((resolve, reject) =>
        client.connect((err, d) => (err ? reject(err) : resolve(d))));
      try {
        assert.equal(client.state, 'connected');
        assert.equal(client.client._dispatcher.connectionType, transport.name);
        assert.equal(details.status, 'OK');
        assert.equal(details.context, 'response');
        assert.equal(details.messageCount, 1);
        const d = details.data;
        assert.match(d.id, /^[a-z0-9]{20,}$/);
        assert.equal(d.id, client.id);
        assert.equal(d.type, 'webSocket');
        assert.equal(d.remoteIP, '127.0.0.1');
        assert.ok(Number.isInteger(d.remotePort) && d.remotePort > 0, `remotePort ${d.remotePort}`);
        assert.ok(Math.abs(Date.now() - d.connectedAt) < 60000, `connectedAt ${d.connectedAt}`);
        assert.deepEqual(d.rooms, []);
        assert.deepEqual(d.params, {});
        assert.equal(d.totalActions, 0);
        assert.equal(d.pendingActions, 0);
        const w = await welcome;
        assert.deepEqual(w, { welcome: 'Hello from the test', context: 'api' });
      } finally {
        client.disconnect();
      }
    });

    test('actions: a missing param, a good call, unknown actions, sticky params, counts', async () => {
      const { client } = await connect(ActionheroClient, hero.url, transport);
      try {
        const missing = await call.action(client, 'cacheTest', {});
        assert.equal(missing.error, 'Error: key is a required parameter for this action');
        assert.equal(missing.context, 'response');
        assert.equal(missing.messageCount, 2);

        const good = await call.action(client, 'cacheTest', { key: 'k', value: 'v' });
        assert.equal(good.error, undefined);
        assert.equal(good.messageCount, 3);
        assert.deepEqual(good.cacheTestResults.loadResp, { key: 'cacheTest_k', value: 'v' });

        const random = await call.action(client, 'randomNumber', {});
        assert.ok(random.randomNumber >= 0 && random.randomNumber < 1);

        const unknown = await call.action(client, 'noSuchAction', {});
        assert.equal(unknown.error, 'Error: noSuchAction is not a known action or that is not a valid apiVersion.');

        // key/value stuck from the good call: cacheTest works without them now.
        const sticky = await call.action(client, 'cacheTest', {});
        assert.equal(sticky.error, undefined, JSON.stringify(sticky));
        assert.deepEqual(sticky.cacheTestResults.loadResp, { key: 'cacheTest_k', value: 'v' });
        const details = await call.details(client);
        assert.equal(details.data.params.key, 'k');
        assert.equal(details.data.params.value, 'v');
        assert.equal(details.data.totalActions, 5);
        assert.equal(details.data.pendingActions, 0);
        assert.equal(details.messageCount, 7);
      } finally {
        client.disconnect();
      }
    });

    test('simultaneousActions: six concurrent sleepTest calls, exactly one refused', async () => {
      const { client } = await connect(ActionheroClient, hero.url, transport);
      try {
        const calls = Array.from({ length: 6 }, () => call.action(client, 'sleepTest', { sleepDuration: 500 }));
        const responses = await Promise.all(calls);
        const refused = responses.filter((r) => r.error === 'Error: you have too many pending requests');
        const slept = responses.filter((r) => r.error === undefined && r.sleepDuration === 500);
        assert.equal(refused.length, 1, JSON.stringify(responses));
        assert.equal(slept.length, 5, JSON.stringify(responses));
        // Each response reached the callback of its own call.
        assert.deepEqual(responses.map((r) => r.messageCount), [2, 3, 4, 5, 6, 7]);
        assert.equal(refused[0].messageCount, 7);
        const details = await call.details(client);
        assert.equal(details.data.pendingActions, 0);
      } finally {
        client.disconnect();
      }
    });

    test('file: text as text, a missing file, binary files as base64', async () => {
      const { client } = await connect(ActionheroClient, hero.url, transport);
      try {
        const simple = await call.file(client, 'simple.html');
        assert.deepEqual(simple, {
          content: SIMPLE, error: null, mime: 'text/html', length: SIMPLE.length,
          messageCount: 2, context: 'response',
        });

        const missing = await call.file(client, 'nope.html');
        assert.equal(missing.error, 'Sorry, that file is not found :(');
        assert.equal(missing.content, null);
        assert.equal(missing.messageCount, 3);

        const escape = await call.file(client, '../../etc/passwd');
        assert.equal(escape.error, 'Sorry, that file is not found :(');

        const bin = await call.file(client, 'bytes.bin');
        assert.equal(bin.error, null);
        assert.equal(bin.encoding, 'base64');
        assert.equal(bin.length, 256);
        assert.equal(bin.mime, 'application/octet-stream');
        assert.ok(Buffer.from(bin.content, 'base64').equals(BINARY));

        const png = await call.file(client, 'pixel.png');
        assert.equal(png.mime, 'image/png');
        assert.equal(png.encoding, 'base64');
        assert.ok(Buffer.from(png.content, 'base64').equals(PNG));
      } finally {
        client.disconnect();
      }
    });

    test('other verbs: documentation, unknown verb, room errors', async () => {
      const { client } = await connect(ActionheroClient, hero.url, transport);
      try {
        const docs = await new Promise((r) => client.documentation(r));
        assert.equal(docs.status, 'OK');
        assert.ok(docs.documentation.randomNumber['1'], Object.keys(docs.documentation).join());

        const unknown = await call.send(client, { event: 'fly' });
        assert.equal(unknown.status, 'verb not found or not allowed');
        assert.equal(unknown.data, null);
        assert.equal(unknown.context, 'response');

        assert.equal((await call.roomAdd(client, 'noSuchRoom')).status, 'room does not exist');
        assert.equal((await call.roomAdd(client, '')).status, 'a room is required');
        assert.equal((await call.roomLeave(client, 'defaultRoom')).status, 'connection not in this room');
        assert.equal((await call.roomView(client, 'defaultRoom')).status, 'not member of room defaultRoom');
        assert.equal((await call.say(client, 'defaultRoom', '')).status, 'both room and message are required');
        const joined = await call.roomAdd(client, 'defaultRoom');
        assert.deepEqual([joined.status, joined.data], ['OK', true]);
        assert.equal((await call.roomAdd(client, 'defaultRoom')).status, 'connection already in this room');
        assert.deepEqual(client.rooms, ['defaultRoom']);
      } finally {
        client.disconnect();
      }
    });

    test('another client cannot subscribe or publish to a connection channel, and learns nothing', async () => {
      const { client: victim } = await connect(ActionheroClient, hero.url, transport);
      const spy = new faye.Client(`${hero.url}/faye`);
      for (const t of transport.disable) spy.disable(t);
      const seen = [];
      try {
        const channel = `/client/websocket/connection/${victim.id}`;
        const refusal = async (promise) => {
          try { await promise; return null; } catch (err) { return err; }
        };
        const direct = await refusal(spy.subscribe(channel, (m) => seen.push(m)));
        assert.ok(direct, 'subscribing to another connection channel must fail');
        assert.equal(direct.code, 403);
        // The same refusal for a channel that does not exist: existence is not revealed.
        const ghost = await refusal(spy.subscribe('/client/websocket/connection/doesnotexist0000000000', () => {}));
        assert.equal(ghost.code, 403);
        assert.equal(ghost.message, direct.message.replace(victim.id, 'doesnotexist0000000000'));
        for (const pattern of ['/client/websocket/**', '/client/websocket/connection/*', '/client/websocket/_incoming/*']) {
          const err = await refusal(spy.subscribe(pattern, (m) => seen.push(m)));
          assert.equal(err?.code, 403, pattern);
        }
        // A broad wildcard is a valid Bayeux subscription, but carries nothing of ours.
        await spy.subscribe('/**', (m) => seen.push(m));

        const published = await refusal(spy.publish(channel, { event: 'detailsView' }));
        assert.equal(published?.code, 403);
        const quit = await refusal(spy.publish(channel, { event: 'quit' }));
        assert.equal(quit?.code, 403);

        // The victim still works, and its traffic (responses, welcome of a new
        // connection) never reached the spy. The victim's response is published after
        // the spy's refused attempts, so anything leaked would have arrived by now... and
        // the spy's own marker publish, delivered to its `/**`, proves its queue was read.
        const details = await call.details(victim);
        assert.equal(details.status, 'OK');
        assert.equal(details.data.id, victim.id);
        const marker = new Promise((resolve) => spy.subscribe('/marker', resolve));
        await spy.publish('/marker', { done: true });
        await marker;
        assert.deepEqual(seen.filter((m) => !m.done), []);
      } finally {
        victim.disconnect();
        spy.disconnect();
      }
    });
  });
}

test('action over HTTP while not connected', async () => {
  const client = new ActionheroClient({ faye, host: hero.url });
  assert.equal(client.state, 'disconnected');
  const response = await call.action(client, 'randomNumber', {});
  assert.ok(response.randomNumber >= 0 && response.randomNumber < 1);
  assert.equal(response.requesterInformation.receivedParams.action, 'randomNumber');
});

test('connections appear in status and disappear on disconnect', async () => {
  const status = async () => (await (await fetch(`${hero.url}/api/status`)).json());
  const before = (await status()).connections.total;
  const { client } = await connect(ActionheroClient, hero.url, TRANSPORTS[0]);
  assert.equal((await status()).connections.total, before + 1);
  client.disconnect();
  await waitFor(async () => (await status()).connections.total === before);
});

async function waitFor(check, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}

test('behind a trusted proxy, remoteIP is the X-Forwarded-For address (long-polling)', async () => {
  const proxied = await startHero(['--trust-proxy']);
  try {
    const AC = await loadClient(proxied.url);
    const client = new AC({ faye, host: proxied.url, disable: ['websocket', 'eventsource'], retry: 1 });
    // Set on the faye client before it handshakes: every request carries it.
    const Faye = { ...faye, Client: function Client(url, options) {
      const c = new faye.Client(url, options);
      c.setHeader('X-Forwarded-For', '10.9.8.7, 127.0.0.1');
      return c;
    } };
    client.options.faye = Faye;
    const details = await new Promise((resolve, reject) => client.connect((err, d) => (err ? reject(err) : resolve(d))));
    assert.equal(details.data.remoteIP, '10.9.8.7');
    client.disconnect();
    await settle();
  } finally {
    await proxied.stop();
  }
});

test('one Bayeux client may open at most 64 connections', async () => {
  const c = new faye.Client(`${hero.url}/faye`);
  try {
    const ids = [];
    for (let i = 0; i < 64; i++) {
      const channel = `/client/websocket/_incoming/cap${i}`;
      const id = new Promise((resolve) => c.subscribe(channel, (m) => resolve(m.id)));
      ids.push(await id);
    }
    assert.equal(new Set(ids).size, 64);
    const refused = await c.subscribe('/client/websocket/_incoming/cap64', () => {}).then(() => null, (e) => e);
    assert.equal(refused?.code, 403);
    assert.match(refused.message, /Too many connections/);
  } finally {
    c.disconnect();
    await settle();
  }
});
