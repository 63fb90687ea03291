// Chat rooms (PROTOCOL 2.3, 2.4, 2.6) with three real clients, over websocket and over
// forced long-polling, against hero-testbed (hero plus test actions that set connection
// attributes and create or delete rooms).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHero } from './lib/hero.mjs';
import { settle, loadClient, connect, call, nextEvent, recordSays, TRANSPORTS, testbedBin } from './lib/actionhero.mjs';

let hero;
let ActionheroClient;

before(async () => {
  hero = await startHero(
    ['--starting-chat-rooms', JSON.stringify({ defaultRoom: {}, otherRoom: {}, secureRoom: { role: 'admin' } })],
    { bin: testbedBin },
  );
  ActionheroClient = await loadClient(hero.url);
});
after(async () => {
  await settle();
  await hero?.stop();
});

/** Resolves when `client` hears `message` from `from` in `room`. */
const hears = (client, room, from, message) =>
  nextEvent(client, 'say', (m) => m.room === room && m.from === from && m.message === message);

for (const transport of TRANSPORTS) {
  describe(`over ${transport.name}`, () => {
    test('three clients: announcements, say to the others only, counts on leave and disconnect', async () => {
      const room = 'defaultRoom';
      const [a, b, c, outsider] = await Promise.all(
        [0, 1, 2, 3].map(() => connect(ActionheroClient, hero.url, transport).then((x) => x.client)));
      const saidTo = { a: recordSays(a), b: recordSays(b), c: recordSays(c), outsider: recordSays(outsider) };
      try {
        assert.equal((await call.roomAdd(a, room)).status, 'OK');
        const bEnters = hears(a, room, b.id, 'I have entered the room');
        assert.equal((await call.roomAdd(b, room)).status, 'OK');
        await bEnters;
        const cEntersA = hears(a, room, c.id, 'I have entered the room');
        const cEntersB = hears(b, room, c.id, 'I have entered the room');
        assert.equal((await call.roomAdd(c, room)).status, 'OK');
        await Promise.all([cEntersA, cEntersB]);
        // The outsider is in another room only.
        assert.equal((await call.roomAdd(outsider, 'otherRoom')).status, 'OK');

        const view = await call.roomView(a, room);
        assert.equal(view.status, 'OK');
        assert.equal(view.data.room, room);
        assert.equal(view.data.membersCount, 3);
        assert.deepEqual(Object.keys(view.data.members).sort(), [a.id, b.id, c.id].sort());
        assert.equal(view.data.members[b.id].id, b.id);
        assert.ok(view.data.members[b.id].joinedAt > 0);
        const details = await call.details(a);
        assert.deepEqual(details.data.rooms, [room]);

        // say: the two others hear it, the sender and the outsider do not.
        const toB = hears(b, room, a.id, 'hello room');
        const toC = hears(c, room, a.id, 'hello room');
        const said = await call.say(a, room, 'hello room');
        assert.deepEqual([said.status, said.data], ['OK', true]);
        const heard = await toB;
        assert.equal(heard.context, 'user');
        assert.ok(Math.abs(Date.now() - heard.sentAt) < 60000);
        await toC;
        // The say response is published after the fan-out on a's own channel, so an echo
        // would already be here; the outsider's later response orders its channel likewise.
        assert.equal(saidTo.a.filter((m) => m.message === 'hello room').length, 0);
        await call.details(outsider);
        assert.equal(saidTo.outsider.filter((m) => m.room === room).length, 0);
        assert.equal((await call.say(outsider, room, 'let me in')).status, 'connection not in this room');

        // Leaving: announced to the others, count 3 -> 2.
        const cLeavesA = hears(a, room, c.id, 'I have left the room');
        const cLeavesB = hears(b, room, c.id, 'I have left the room');
        assert.equal((await call.roomLeave(c, room)).status, 'OK');
        await Promise.all([cLeavesA, cLeavesB]);
        assert.equal((await call.roomView(a, room)).data.membersCount, 2);
        assert.equal((await call.roomView(c, room)).status, `not member of room ${room}`);

        // Rejoin, then disconnect: announced, count 3 -> 2 again.
        assert.equal((await call.roomAdd(c, room)).status, 'OK');
        assert.equal((await call.roomView(a, room)).data.membersCount, 3);
        const cGone = hears(a, room, c.id, 'I have left the room');
        c.disconnect();
        await cGone;
        assert.equal((await call.roomView(a, room)).data.membersCount, 2);
        assert.equal((await call.roomView(b, room)).data.membersCount, 2);
      } finally {
        for (const x of [a, b, c, outsider]) x.disconnect();
      }
    });

    test('a secure room lets in only connections whose attributes match', async () => {
      const room = 'secureRoom';
      const [admin, guest] = await Promise.all(
        [0, 1].map(() => connect(ActionheroClient, hero.url, transport).then((x) => x.client)));
      try {
        const refused = await call.roomAdd(admin, room);
        assert.equal(refused.status, 'not authorized to join room');
        assert.equal(refused.data, false);
        const set = await call.action(admin, 'attributeTest', { key: 'role', value: 'admin' });
        assert.equal(set.error, undefined, JSON.stringify(set));
        assert.equal((await call.roomAdd(admin, room)).status, 'OK');
        await call.action(guest, 'attributeTest', { key: 'role', value: 'guest' });
        assert.equal((await call.roomAdd(guest, room)).status, 'not authorized to join room');
        assert.equal((await call.roomView(admin, room)).data.membersCount, 1);
      } finally {
        admin.disconnect();
        guest.disconnect();
      }
    });

    test('rooms from actions: create with a pattern, change it (members re-checked), delete', async () => {
      const room = `actionRoom-${transport.name}`;
      const [a, b] = await Promise.all(
        [0, 1].map(() => connect(ActionheroClient, hero.url, transport).then((x) => x.client)));
      try {
        assert.equal((await call.roomAdd(a, room)).status, 'room does not exist');
        const created = await call.action(a, 'roomCreateTest', { room, auth: {} });
        assert.equal(created.error, undefined, JSON.stringify(created));
        await call.action(a, 'attributeTest', { key: 'team', value: 'blue' });
        assert.equal((await call.roomAdd(a, room)).status, 'OK');
        assert.equal((await call.roomAdd(b, room)).status, 'OK');
        const members = await call.action(a, 'roomMembersTest', { room });
        assert.deepEqual(members.members.sort(), [a.id, b.id].sort());

        // Server-side broadcast reaches both members.
        const fromServerA = hears(a, room, 'server', 'notice');
        const fromServerB = hears(b, room, 'server', 'notice');
        await call.action(a, 'roomBroadcastTest', { room, message: 'notice' });
        await Promise.all([fromServerA, fromServerB]);

        // Tightening the pattern removes b (announced to a), and tells b.
        const bRemoved = hears(a, room, b.id, 'I have left the room');
        const bTold = nextEvent(b, 'say', (m) => m.room === room && m.from === 'server');
        await call.action(a, 'roomCreateTest', { room, auth: { team: 'blue' } });
        await Promise.all([bRemoved, bTold]);
        assert.equal((await call.roomView(a, room)).data.membersCount, 1);
        assert.deepEqual((await call.details(b)).data.rooms, []);

        // Deleting the room tells its members and removes them.
        const deleted = nextEvent(a, 'say', (m) => m.room === room && m.message === 'this room has been deleted');
        assert.equal((await call.action(b, 'roomDeleteTest', { room })).error, undefined);
        await deleted;
        assert.deepEqual((await call.details(a)).data.rooms, []);
        assert.equal((await call.roomAdd(a, room)).status, 'room does not exist');
      } finally {
        a.disconnect();
        b.disconnect();
      }
    });

    test('older verbs: roomChange, listenToRoom, silenceRoom', async () => {
      const [talker, mover, listener] = await Promise.all(
        [0, 1, 2].map(() => connect(ActionheroClient, hero.url, transport).then((x) => x.client)));
      try {
        assert.equal((await call.roomAdd(talker, 'otherRoom')).status, 'OK');
        assert.equal((await call.roomAdd(mover, 'defaultRoom')).status, 'OK');
        const moved = await new Promise((r) => mover.roomChange('otherRoom', (err, resp) => r(resp)));
        assert.equal(moved.status, 'OK');
        assert.deepEqual((await call.details(mover)).data.rooms, ['otherRoom']);
        assert.deepEqual(mover.rooms, ['otherRoom']);

        const listening = await new Promise((r) => listener.listenToRoom('otherRoom', (err, resp) => r(resp)));
        assert.equal(listening.status, 'OK');
        // A listener hears the room without being a member.
        const heard = hears(listener, 'otherRoom', talker.id, 'psst');
        await call.say(talker, 'otherRoom', 'psst');
        await heard;
        assert.equal((await call.roomView(talker, 'otherRoom')).data.membersCount, 2);
        const silenced = await new Promise((r) => listener.silenceRoom('otherRoom', (err, resp) => r(resp)));
        assert.equal(silenced.status, 'OK');
        const says = recordSays(listener);
        await call.say(talker, 'otherRoom', 'after silence');
        // The listener's own later response orders its channel after the say's fan-out.
        await call.details(listener);
        assert.deepEqual(says, []);
      } finally {
        for (const x of [talker, mover, listener]) x.disconnect();
      }
    });
  });
}

// Also needs hero-testbed: its panicTest action.
test('a panicking action answers the internal error; the connection lives on', async () => {
  const { client } = await connect(ActionheroClient, hero.url, TRANSPORTS[0]);
  try {
    const r = await call.action(client, 'panicTest', {});
    assert.equal(r.error, 'Error: The server experienced an internal error');
    assert.equal(r.messageCount, 2);
    const after = await call.action(client, 'randomNumber', {});
    assert.ok(after.randomNumber >= 0);
    assert.equal((await call.details(client)).data.pendingActions, 0);
  } finally {
    client.disconnect();
  }
});
