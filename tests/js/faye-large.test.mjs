// Large deliveries over websocket with the real npm faye client: eight 900 KB messages
// published at once all arrive (the server splits its frames to fit its write buffer
// instead of failing the socket and losing them), and a message too large for any frame
// is refused to its publisher.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHero } from './lib/hero.mjs';
import { fayeClient, disconnectAll } from './lib/faye-client.mjs';
import { Inbox, within } from './lib/wait.mjs';

let hero;
const clients = [];
// Bodies up to 8 MiB, so that a publisher can send what no websocket frame may carry.
before(async () => { hero = await startHero([], { env: { HERO_BAYEUX__MAX_BODY_BYTES: String(8 << 20) } }); });
after(async () => {
  await disconnectAll(clients);
  await hero?.stop();
});

test('eight 900 KB messages published at once all reach a websocket subscriber', { timeout: 60000 }, async () => {
  const sub = fayeClient(`${hero.url}/faye`);
  const pub = fayeClient(`${hero.url}/faye`, { websocket: false });
  clients.push(sub, pub);
  const inbox = new Inbox();
  await within(10000, sub.subscribe('/large', inbox.push), 'subscribe');
  const big = 'x'.repeat(900 * 1024);
  await within(30000, Promise.all(Array.from({ length: 8 }, (_, n) => pub.publish('/large', { n, big }))), 'publish');
  const got = [];
  for (let i = 0; i < 8; i++) got.push(await inbox.next(20000, `delivery ${i}`));
  assert.deepEqual(got.map((m) => m.n).sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.ok(got.every((m) => m.big.length === big.length));
});

test('a message too large for any websocket frame is refused to its publisher', { timeout: 30000 }, async () => {
  const pub = fayeClient(`${hero.url}/faye`, { websocket: false });
  clients.push(pub);
  // Over 4 x max_frame_bytes (1 MiB by default), under the 8 MiB body limit set above.
  const huge = 'y'.repeat(5 * 1024 * 1024);
  const refused = await within(20000, pub.publish('/large', { huge }).then(() => null, (e) => e), 'publish');
  assert.ok(refused, 'the publish was refused');
  assert.equal(refused.code, 407, JSON.stringify(refused));
  assert.match(refused.message, /^Message too large to deliver \(at most \d+ bytes - 4 x max_frame_bytes\)$/);
});
