// Fan-out: 100 real faye clients each receive 100 messages exactly once and in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTarget } from './lib/target.mjs';
import { fayeClient, disconnectAll } from './lib/faye-client.mjs';
import { within } from './lib/wait.mjs';

const CLIENTS = 100;
const MESSAGES = 100;
let server;
const clients = [];
before(async () => { server = await startTarget(); });
after(async () => {
  await disconnectAll(clients);
  await server?.stop();
});

test(`${CLIENTS} clients each receive ${MESSAGES} messages exactly once, in order`, { timeout: 60000 }, async () => {
  const received = [];
  const done = [];
  for (let i = 0; i < CLIENTS; i++) {
    const c = fayeClient(server.bayeux);
    clients.push(c);
    const log = [];
    received.push(log);
    // A final 'end' marker follows the numbered messages from the same publisher, so once
    // it is in, any duplicate or stray delivery would already be in the log too.
    done.push(new Promise((resolve) => {
      c.subscribe('/fan', (m) => { log.push(m); if (m === 'end') resolve(); }).then(() => {}, () => {});
    }));
  }
  // Wait for every subscribe acknowledgement before publishing.
  await within(30000, Promise.all(clients.map((c) => c.subscribe('/fan-ready', () => {}))), 'subscribes');
  const pub = fayeClient(server.bayeux);
  clients.push(pub);
  // Connect the publisher first: the faye client may reorder publishes queued while it is
  // still handshaking (observed with faye 1.4.3), which is not what this test is about.
  await within(10000, pub.subscribe('/fan-ready', () => {}), 'publisher connect');
  for (let n = 0; n < MESSAGES; n++) pub.publish('/fan', n);
  await within(20000, pub.publish('/fan', 'end'), 'publishes');
  await within(30000, Promise.all(done), 'deliveries');
  const expected = [...Array(MESSAGES).keys(), 'end'];
  for (let i = 0; i < CLIENTS; i++) assert.deepEqual(received[i], expected, `client ${i}`);
});
