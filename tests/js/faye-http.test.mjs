// Bayeux over raw HTTP, checked on the wire (PROTOCOL 1.1-1.3): long-polling headers,
// JSONP (callback-polling), eventsource framing, CORS, and every HTTP 400 case.
// Assertions guarded by HERO are rules only hero implements (PROTOCOL 1.6, our client.js).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startTarget, HERO } from './lib/target.mjs';
import { raw, bayeuxPost, handshake, openStream } from './lib/raw-http.mjs';

const TYPES = ['long-polling', 'cross-origin-long-polling', 'callback-polling', 'websocket', 'eventsource', 'in-process'];
let server;
let bayeux;
before(async () => { server = await startTarget(); bayeux = server.bayeux; });
after(async () => { await server?.stop(); });

const hs = (id = '1') => ({ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id });

function assertBadRequest(res, what) {
  assert.equal(res.status, 400, what);
  assert.match(res.headers['content-type'], /^text\/plain/, what);
  assert.equal(res.body, 'Bad request', what);
}

test('long-polling: handshake reply, headers and advice', async () => {
  const res = await raw(bayeux, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(hs('7')) });
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(res.headers['cache-control'], 'no-cache, no-store');
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  const body = JSON.parse(res.body);
  assert.ok(Array.isArray(body), 'a single message is answered with an array');
  const [r] = body;
  assert.equal(r.id, '7');
  assert.equal(r.channel, '/meta/handshake');
  assert.equal(r.successful, true);
  assert.equal(r.version, '1.0');
  assert.deepEqual(r.supportedConnectionTypes, TYPES);
  assert.match(r.clientId, /^[a-z0-9]{20,}$/);
  assert.deepEqual(r.advice, { reconnect: 'retry', interval: 0, timeout: 45000 });
});

test('an empty array is answered with an empty array', async () => {
  assert.deepEqual(await bayeuxPost(bayeux, []), []);
});

test('protocol errors are HTTP 200 with a Bayeux error', async () => {
  const [noVersion] = await bayeuxPost(bayeux, { channel: '/meta/handshake', supportedConnectionTypes: ['long-polling'], id: 'a' });
  assert.equal(noVersion.successful, false);
  assert.equal(noVersion.error, '402:version:Missing required parameter');
  const [noOverlap] = await bayeuxPost(bayeux, { channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['carrier-pigeon'], id: 'b' });
  assert.equal(noOverlap.error, '301:carrier-pigeon:Connection types not supported');
  assert.equal(noOverlap.advice.reconnect, 'handshake');
  const [unknown] = await bayeuxPost(bayeux, { channel: '/meta/connect', clientId: 'nosuchclient', connectionType: 'long-polling', id: 'c' });
  assert.equal(unknown.successful, false);
  assert.equal(unknown.error, '401:nosuchclient:Unknown client');
  assert.equal(unknown.clientId, undefined, 'clientId dropped from a failed connect');
  assert.equal(unknown.advice.reconnect, 'handshake');
  const [empty] = await bayeuxPost(bayeux, {});
  assert.match(empty.error, /^402:data:/);

  const clientId = await handshake(bayeux);
  const replies = await bayeuxPost(bayeux, [
    { channel: '/meta/subscribe', clientId, subscription: '/meta/**', id: 'd' },
    { channel: '/meta/subscribe/x', clientId, subscription: '/foo', id: 'e' },
    { channel: '/meta/subscribe', clientId, subscription: '/foo/*/bar', id: 'f' },
    { channel: '/meta/subscribe', clientId, subscription: ['/ok', '/ok/**'], id: 'g' },
  ]);
  const byId = Object.fromEntries(replies.map((r) => [r.id, r]));
  assert.match(byId.d.error, /^403:/);
  assert.match(byId.e.error, /^403:/);
  assert.match(byId.f.error, /^405:/);
  assert.equal(byId.g.successful, true);
  assert.deepEqual(byId.g.subscription, ['/ok', '/ok/**'], 'subscription echoed as sent');
  if (HERO) {
    // PROTOCOL 1.6: no wildcard eavesdropping on the websocket server's connection channels.
    const [w] = await bayeuxPost(bayeux, { channel: '/meta/subscribe', clientId, subscription: '/client/websocket/connection/*', id: 'h' });
    assert.match(w.error ?? JSON.stringify(w), /^403:/);
  }
});

test('callback-polling (JSONP): framing, default callback and U+2028 escaping', async () => {
  const id = 'x\u2028y\u2029z';
  const q = encodeURIComponent(JSON.stringify(hs(id)));
  const res = await raw(`${bayeux}?message=${q}&jsonp=my.cb_$1`);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(res.headers['content-disposition'], 'attachment; filename=f.txt');
  assert.equal(res.headers['cache-control'], 'no-cache, no-store');
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  const m = /^\/\*\*\/my\.cb_\$1\((.*)\);$/s.exec(res.body);
  assert.ok(m, `JSONP framing: ${res.body}`);
  assert.ok(!/[\u2028\u2029]/.test(res.body), 'line separators are escaped');
  assert.ok(m[1].includes('\\u2028') && m[1].includes('\\u2029'));
  const [r] = JSON.parse(m[1]);
  assert.equal(r.id, id);
  assert.equal(r.successful, true);

  const dflt = await raw(`${bayeux}?message=${encodeURIComponent(JSON.stringify(hs()))}`);
  assert.match(dflt.body, /^\/\*\*\/jsonpcallback\(\[.*\]\);$/s);
});

test('eventsource: retry line, deliveries as data frames, eventsource advice', { timeout: 20000 }, async () => {
  const clientId = await handshake(bayeux);
  const [sub] = await bayeuxPost(bayeux, { channel: '/meta/subscribe', clientId, subscription: '/es', id: 's' });
  assert.equal(sub.successful, true);
  const stream = await openStream(`${bayeux}/${clientId}`, { Accept: 'text/event-stream' });
  try {
    assert.equal(stream.res.statusCode, 200);
    assert.match(stream.res.headers['content-type'], /^text\/event-stream/);
    await stream.waitFor(/^retry: 5000\r\n\r\n/);
    const [connect] = await bayeuxPost(bayeux, { channel: '/meta/connect', clientId, connectionType: 'eventsource', id: 'c' });
    assert.equal(connect.successful, true);
    assert.equal(connect.advice.interval, 45000);
    assert.equal(connect.advice.timeout, 0);
    const pubId = await handshake(bayeux);
    await bayeuxPost(bayeux, { channel: '/es', clientId: pubId, data: { hello: 'es' }, id: 'p1' });
    const text = await stream.waitFor(/data: .*\r\n\r\n$/);
    const frame = /^retry: 5000\r\n\r\n(?::\r\n\r\n)*data: (.*)\r\n\r\n$/.exec(text);
    assert.ok(frame, `event-stream framing: ${JSON.stringify(text)}`);
    const delivered = JSON.parse(frame[1]);
    assert.ok(Array.isArray(delivered));
    assert.deepEqual(delivered.map((m) => [m.channel, m.data, m.id, m.clientId]), [['/es', { hello: 'es' }, 'p1', undefined]]);
    // The keep-alive comment, every 10 s.
    await stream.waitFor(/:\r\n\r\n$/, 12000);
  } finally {
    stream.close();
  }
});

test('CORS: preflight headers', async () => {
  const expectCommon = (res, origin) => {
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], origin);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.equal(res.headers['access-control-allow-headers'], 'Accept, Authorization, Content-Type, Pragma, X-Requested-With');
    assert.equal(res.headers['access-control-allow-methods'], 'POST, GET');
    assert.equal(res.headers['access-control-max-age'], '86400');
  };
  const pre = { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' };
  expectCommon(await raw(bayeux, { method: 'OPTIONS', headers: { Origin: 'http://other.test:8080', ...pre } }), 'http://other.test:8080');
  expectCommon(await raw(bayeux, { method: 'OPTIONS', headers: { Referer: 'http://ref.test/page' } }), 'http://ref.test/page');
  expectCommon(await raw(bayeux, { method: 'OPTIONS' }), '*');
});

test('CORS: cross-origin POST (form body and JSON body)', async () => {
  const origin = 'http://other.test:8080';
  const form = await raw(bayeux, {
    method: 'POST',
    headers: { Origin: origin, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'message=' + encodeURIComponent(JSON.stringify(hs('f'))),
  });
  assert.equal(form.status, 200);
  assert.equal(form.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(form.headers['access-control-allow-origin'], origin);
  assert.equal(form.headers['access-control-allow-credentials'], 'true');
  assert.equal(JSON.parse(form.body)[0].successful, true);
  const json = await raw(bayeux, { method: 'POST', headers: { Origin: origin, 'Content-Type': 'application/json' }, body: JSON.stringify([hs('j')]) });
  assert.equal(json.headers['access-control-allow-origin'], origin);
  assert.equal(JSON.parse(json.body)[0].id, 'j');
  const same = await raw(bayeux, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify([hs('s')]) });
  assert.equal(same.headers['access-control-allow-origin'], undefined, 'no CORS headers without Origin');
});

test('HTTP 400 cases', async () => {
  const post = (body, type = 'application/json') => raw(bayeux, { method: 'POST', headers: { 'Content-Type': type }, body });
  assertBadRequest(await post('{"channel": '), 'malformed JSON');
  assertBadRequest(await post('42'), 'JSON number');
  assertBadRequest(await post('"/meta/handshake"'), 'JSON string');
  assertBadRequest(await post('true'), 'JSON boolean');
  assertBadRequest(await post('message=' + encodeURIComponent('{oops'), 'application/x-www-form-urlencoded'), 'malformed JSON in form');
  assertBadRequest(await post('foo=bar', 'application/x-www-form-urlencoded'), 'form without message');
  assertBadRequest(await raw(bayeux), 'GET without message');
  assertBadRequest(await raw(`${bayeux}?jsonp=cb`), 'GET with jsonp but no message');
  const msg = encodeURIComponent(JSON.stringify(hs()));
  for (const cb of ['alert(1)', '1cb', 'a..b', 'a-b', 'cb;x', '.a', 'a.']) {
    assertBadRequest(await raw(`${bayeux}?message=${msg}&jsonp=${encodeURIComponent(cb)}`), `JSONP callback ${cb}`);
  }
  for (const method of ['PUT', 'DELETE', 'PATCH']) {
    assertBadRequest(await raw(bayeux, { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(hs()) }), method);
  }
});

test('/faye/client.js serves a browser Bayeux client', async () => {
  const res = await raw(`${bayeux}/client.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /javascript/);
  assert.match(res.body, /Faye/);
  if (HERO) {
    // Hero serves our own client (PROTOCOL 1.8), byte for byte.
    const ours = readFileSync(new URL('../../host/src/assets/client.js', import.meta.url), 'utf8');
    assert.equal(res.body, ours);
    assert.equal((await raw(`${server.url}/faye.js`)).body, ours);
  }
});
