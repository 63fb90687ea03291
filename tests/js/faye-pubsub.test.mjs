// The real npm faye client against the Bayeux server (hero by default, TARGET=faye for the
// reference): publish/subscribe over websocket and over long-polling, wildcards, echo to
// the publisher, unsubscribe.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTarget } from './lib/target.mjs';
import { fayeClient, disconnectAll } from './lib/faye-client.mjs';
import { Inbox, within } from './lib/wait.mjs';

let server;
const clients = [];
before(async () => { server = await startTarget(); });
after(async () => {
  await disconnectAll(clients);
  await server?.stop();
});

/** A client that records the connectionType of every /meta/connect it sends. */
function client(websocket) {
  const c = fayeClient(server.bayeux, { websocket });
  c.connectionTypes = new Set();
  c.addExtension({
    outgoing(msg, cb) {
      if (msg.channel === '/meta/connect') c.connectionTypes.add(msg.connectionType);
      cb(msg);
    },
  });
  clients.push(c);
  return c;
}

for (const [name, websocket] of [['websocket', true], ['long-polling', false]]) {
  test(`${name}: a message published by one client reaches another`, { timeout: 20000 }, async () => {
    const a = client(websocket);
    const b = client(websocket);
    const inbox = new Inbox();
    await within(10000, a.subscribe(`/chat/${name}`, inbox.push), 'subscribe');
    await within(10000, b.publish(`/chat/${name}`, { text: 'hello', n: 1 }), 'publish');
    assert.deepEqual(await inbox.next(), { text: 'hello', n: 1 });
    // The transport really is the one named: every connect went over it.
    assert.deepEqual([...a.connectionTypes], [name]);
    assert.deepEqual([...b.connectionTypes], [name]);
  });

  test(`${name}: a client receives its own publish`, { timeout: 20000 }, async () => {
    const a = client(websocket);
    const inbox = new Inbox();
    await within(10000, a.subscribe(`/self/${name}`, inbox.push), 'subscribe');
    await a.publish(`/self/${name}`, 'me');
    assert.equal(await inbox.next(), 'me');
  });

  test(`${name}: wildcard subscriptions /a/* and /a/**`, { timeout: 20000 }, async () => {
    const sub = client(websocket);
    const pub = client(websocket);
    const base = `/w${websocket ? 'ws' : 'lp'}`;
    const one = new Inbox();
    const many = new Inbox();
    await Promise.all([
      within(10000, sub.subscribe(`${base}/*`, one.push), 'subscribe /*'),
      within(10000, sub.subscribe(`${base}/**`, many.push), 'subscribe /**'),
    ]);
    // One publisher's messages are processed and delivered in order, so a message that
    // should not match is published first: if it matched, it would arrive first.
    for (const ch of [base, `${base}/b/c`, `${base}/b`, `${base}/z`]) await pub.publish(ch, ch);
    assert.deepEqual(await one.take(2), [`${base}/b`, `${base}/z`]);
    assert.deepEqual(await many.take(3), [`${base}/b/c`, `${base}/b`, `${base}/z`]);
    assert.equal(one.items.length + many.items.length, 0);
  });

  test(`${name}: unsubscribe stops delivery`, { timeout: 20000 }, async () => {
    const sub = client(websocket);
    const pub = client(websocket);
    const ch = `/unsub/${name}`;
    const got = new Inbox();
    const marks = new Inbox();
    const subscription = sub.subscribe(ch, got.push);
    await within(10000, Promise.all([subscription, sub.subscribe(`${ch}-mark`, marks.push)]), 'subscribe');
    await pub.publish(ch, 'before');
    assert.equal(await got.next(), 'before');
    subscription.cancel();
    // The unsubscribe, this publish and the marker leave in one ordered batch.
    sub.publish(ch, 'own-after');
    sub.publish(`${ch}-mark`, 'mark1');
    assert.equal(await marks.next(), 'mark1');
    await pub.publish(ch, 'other-after');
    await pub.publish(`${ch}-mark`, 'mark2');
    assert.equal(await marks.next(), 'mark2');
    assert.deepEqual(got.items, [], 'nothing delivered after unsubscribe');
  });
}
