// Server restart: the server is stopped and a new one started on the SAME port; a real faye
// client notices (transport:down), re-handshakes on 401 and resubscribes, and receives again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTarget } from './lib/target.mjs';
import { fayeClient, disconnectAll } from './lib/faye-client.mjs';
import { Inbox, within, onceFaye } from './lib/wait.mjs';

/**
 * Publish `data` from a fresh client every 200 ms until `inbox` receives it (the subscriber
 * resubscribes at a moment the test cannot observe from outside); bounded by `ms`.
 */
async function publishUntilReceived(url, channel, inbox, ms = 15000) {
  const pub = fayeClient(url);
  try {
    const deadline = Date.now() + ms;
    for (let i = 0; Date.now() < deadline; i++) {
      pub.publish(channel, { i }).then(() => {}, () => {});
      try { return await inbox.next(200, 'redelivery'); } catch { /* not yet resubscribed */ }
    }
    throw new Error('no delivery after restart');
  } finally {
    await disconnectAll([pub]);
  }
}

for (const [name, websocket] of [['websocket', true], ['long-polling', false]]) {
  test(`${name}: client re-handshakes after a server restart on the same port`, { timeout: 40000 }, async () => {
    let server = await startTarget();
    const port = server.port;
    const sub = fayeClient(server.bayeux, { websocket });
    const handshakes = [];
    sub.addExtension({
      incoming(msg, cb) {
        if (msg.channel === '/meta/handshake' && msg.successful) handshakes.push(msg.clientId);
        cb(msg);
      },
    });
    try {
      const inbox = new Inbox();
      await within(10000, sub.subscribe('/restart', inbox.push), 'subscribe');
      const first = await publishUntilReceived(server.bayeux, '/restart', inbox);
      assert.equal(typeof first.i, 'number');
      assert.equal(handshakes.length, 1);

      const down = onceFaye(sub, 'transport:down', 15000);
      await server.stop();
      await down;
      const up = onceFaye(sub, 'transport:up', 15000);
      server = await startTarget({ port });
      assert.equal(server.port, port);
      await up;
      await publishUntilReceived(server.bayeux, '/restart', inbox);
      // A new session: the old client id was unknown to the new server.
      assert.equal(handshakes.length, 2);
      assert.notEqual(handshakes[0], handshakes[1]);
    } finally {
      await disconnectAll([sub]);
      await server.stop();
    }
  });
}
