// Connection lifecycle (PROTOCOL 2.5, 3.3): a transport restart, a lost Bayeux session,
// quit, and a server-side destroy (ClientDisconnect at shutdown).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHero } from './lib/hero.mjs';
import { settle, loadClient, connect, call, nextEvent, recordSays, TRANSPORTS } from './lib/actionhero.mjs';

const heroes = [];
async function hero() {
  const h = await startHero([]);
  heroes.push(h);
  return { h, ActionheroClient: await loadClient(h.url) };
}
after(async () => {
  await settle();
  await Promise.all(heroes.map((h) => h.stop()));
});

const status = async (url) => (await (await fetch(`${url}/api/status`)).json());

test('a websocket transport restart: same connection, rooms kept, callbacks resolve', async () => {
  const { h, ActionheroClient } = await hero();
  const { client } = await connect(ActionheroClient, h.url, TRANSPORTS[0]);
  try {
    assert.equal((await call.roomAdd(client, 'defaultRoom')).status, 'OK');
    const id = client.id;
    // The roomAdd response can arrive before the Bayeux ack of its publish; faye resends
    // an unacknowledged publish after a drop (at-least-once), which would run the verb
    // twice. Drop the socket once nothing is in flight.
    const dispatcher = client.client._dispatcher;
    const unacked = () => [...dispatcher._envelopes.values()].filter((e) => e.message.channel !== '/meta/connect').length;
    for (let i = 0; unacked() > 0 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(unacked(), 0, 'every publish acknowledged before the drop');
    const down = nextEvent(client, 'disconnected');
    const back = nextEvent(client, 'reconnected');
    dispatcher._transport.close(); // the socket drops
    await down;
    assert.equal(client.state, 'reconnecting');
    await back;
    assert.equal(client.state, 'connected');
    assert.equal(client.id, id, 'the Bayeux session survived, so did the connection');
    const r = await call.action(client, 'randomNumber', {});
    assert.ok(r.randomNumber >= 0, JSON.stringify(r));
    const details = await call.details(client);
    assert.deepEqual(details.data.rooms, ['defaultRoom']);
  } finally {
    client.disconnect();
  }
});

for (const transport of TRANSPORTS) {
  describe(`over ${transport.name}`, () => {
    test('a lost Bayeux session: a new connection, rooms rejoined, counts in step', async () => {
      const { h, ActionheroClient } = await hero();
      const { client } = await connect(ActionheroClient, h.url, transport);
      const { client: peer } = await connect(ActionheroClient, h.url, transport);
      try {
        assert.equal((await call.roomAdd(client, 'defaultRoom')).status, 'OK');
        assert.equal((await call.roomAdd(peer, 'defaultRoom')).status, 'OK');
        const oldId = client.id;
        const back = nextEvent(client, 'reconnected', () => true, 20000);
        const oldLeft = nextEvent(peer, 'say', (m) => m.from === oldId && m.message === 'I have left the room');
        // Someone ends the client's Bayeux session (as an expiry would).
        const res = await fetch(`${h.url}/faye`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify([{ channel: '/meta/disconnect', clientId: client.client._dispatcher.clientId }]),
        });
        assert.equal((await res.json())[0].successful, true);
        await oldLeft;
        // A call made now resolves on the new connection.
        const during = call.action(client, 'randomNumber', {});
        await back;
        const r = await during;
        assert.ok(r.randomNumber >= 0, JSON.stringify(r));
        assert.notEqual(client.id, oldId);
        const newJoin = (await call.roomView(peer, 'defaultRoom')).data;
        assert.ok(newJoin.members[client.id], 'rejoined under the new id');
        assert.ok(newJoin.members[peer.id], 'the peer stays');
        assert.ok(!newJoin.members[oldId], 'the lost connection left');
        // On a loaded machine the faye client may handshake twice after losing its
        // session (a second late 401 advises it again): the session it abandoned lives,
        // with its connection and rooms, until its TTL, as in faye. So the room and the
        // connection table are compared with each other, not with 2.
        const live = (await status(h.url)).connections.total;
        assert.ok(newJoin.membersCount === 2 || newJoin.membersCount === live,
          `${newJoin.membersCount} members, ${live} connections`);
        const details = await call.details(client);
        assert.equal(details.status, 'OK');
        assert.deepEqual(details.data.rooms, ['defaultRoom']);
        assert.equal(details.data.id, client.id);
        assert.equal(details.messageCount, client.messageCount);
        assert.ok((await status(h.url)).connections.total >= 2);
      } finally {
        client.disconnect();
        peer.disconnect();
      }
    });

    test('quit destroys the connection and leaves its rooms', async () => {
      const { h, ActionheroClient } = await hero();
      const { client } = await connect(ActionheroClient, h.url, transport);
      const { client: peer } = await connect(ActionheroClient, h.url, transport);
      try {
        await call.roomAdd(client, 'defaultRoom');
        await call.roomAdd(peer, 'defaultRoom');
        const left = nextEvent(peer, 'say', (m) => m.from === client.id && m.message === 'I have left the room');
        const bye = await call.send(client, { event: 'quit' });
        assert.equal(bye.status, 'OK');
        await left;
        assert.equal((await call.roomView(peer, 'defaultRoom')).data.membersCount, 1);
        assert.equal((await status(h.url)).connections.total, 1);
      } finally {
        client.disconnect();
        peer.disconnect();
      }
    });

    test('the server destroys connections at shutdown: ClientDisconnect, and the client stops', async () => {
      const { h, ActionheroClient } = await hero();
      const { client } = await connect(ActionheroClient, h.url, transport);
      const messages = [];
      client.on('message', (m) => messages.push(m));
      const stopped = nextEvent(client, 'disconnected');
      recordSays(client);
      await h.stop();
      const event = await stopped;
      assert.equal(event.status, 'ClientDisconnect');
      assert.equal(event.context, 'api');
      assert.equal(typeof event.reason, 'string');
      assert.equal(client.state, 'disconnected');
      assert.equal(client.client, null, 'the Bayeux client is stopped');
      assert.ok(messages.some((m) => m.status === 'ClientDisconnect'));
    });
  });
}
