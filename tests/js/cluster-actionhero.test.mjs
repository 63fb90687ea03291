// Our clients on a three-node cluster behind a round-robin balancer without sticky
// sessions (PROTOCOL 1.7, 1.8, 2): /faye/client.js publishes and subscribes, and
// actionheroClient.js connects, runs an action and joins a room.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, withLogs } from './lib/cluster.mjs';
import { loadClientJs } from './lib/clientjs.mjs';
import { faye, settle, loadClient, call, nextEvent } from './lib/actionhero.mjs';
import { Inbox, within } from './lib/wait.mjs';

const Faye = loadClientJs();
let cluster;
before(async () => { cluster = await startCluster({ nodes: 3 }); });
after(async () => {
  await settle();
  await cluster?.stop();
});

/** Our client, recording the connectionType of each /meta/connect it sends. */
function ours(url, { websocket = true } = {}) {
  const c = new Faye.Client(url, { retry: 1 });
  if (!websocket) c.disable('websocket');
  c.connectionTypes = new Set();
  c.copies = [];
  c.addExtension({
    outgoing(m, cb) { if (m.channel === '/meta/connect') c.connectionTypes.add(m.connectionType); cb(m); },
    incoming(m, cb) { if (!m.channel.startsWith('/meta/') && m.successful === undefined) c.copies.push(m); cb(m); },
  });
  return c;
}

for (const [name, websocket] of [['websocket', true], ['long-polling', false]]) {
  test(`client.js over ${name} through the balancer: subscribe, receive a publish from another client`, { timeout: 30000 }, () => withLogs(cluster, async () => {
    const { balancer } = cluster;
    const sub = ours(balancer.bayeux, { websocket });
    const pub = ours(balancer.bayeux, { websocket });
    const channel = `/cjs/${name}`;
    try {
      const got = new Inbox();
      await within(10000, sub.subscribe(channel, got.push), 'subscribe');
      await within(10000, pub.publish(channel, { n: 1 }), 'publish');
      assert.deepEqual(await got.next(10000, 'delivery'), { n: 1 });
      await within(10000, pub.publish(channel, { n: 2 }), 'publish');
      assert.deepEqual(await got.next(10000, 'delivery'), { n: 2 });
      assert.equal(sub.copies.length, 2, 'one copy per publish');
      assert.deepEqual([...sub.connectionTypes], [name]);
      assert.deepEqual([...pub.connectionTypes], [name]);
    } finally {
      await within(5000, Promise.all([sub.disconnect(), pub.disconnect()]), 'disconnect').catch(() => {});
    }
  }));
}

test('actionheroClient.js over websocket through the balancer: randomNumber, defaultRoom, roomView', { timeout: 30000 }, () => withLogs(cluster, async () => {
  const { balancer } = cluster;
  const ActionheroClient = await loadClient(balancer.url);
  const client = new ActionheroClient({ faye, host: balancer.url, disable: [], retry: 1 });
  const welcome = nextEvent(client, 'welcome', () => true, 15000);
  try {
    const details = await within(15000, new Promise((resolve, reject) =>
      client.connect((err, d) => (err ? reject(err) : resolve(d)))), 'actionhero connect');
    assert.equal(details.status, 'OK', JSON.stringify(details));
    assert.match(details.data.id, /^[a-z0-9]{20,}$/);
    assert.equal(details.data.id, client.id);
    assert.deepEqual(await welcome, { welcome: 'Hello! Welcome to the actionhero api', context: 'api' });
    assert.equal(client.state, 'connected');
    const r = await within(10000, call.action(client, 'randomNumber', {}), 'randomNumber');
    assert.equal(typeof r.randomNumber, 'number', JSON.stringify(r));
    assert.ok(r.randomNumber >= 0 && r.randomNumber < 1, JSON.stringify(r));
    const joined = await within(10000, call.roomAdd(client, 'defaultRoom'), 'roomAdd');
    assert.equal(joined.status, 'OK', JSON.stringify(joined));
    const view = await within(10000, call.roomView(client, 'defaultRoom'), 'roomView');
    assert.equal(view.status, 'OK', JSON.stringify(view));
    assert.equal(view.data.room, 'defaultRoom');
    assert.ok(view.data.members[client.id], `member list has ${client.id}: ${JSON.stringify(view.data)}`);
    assert.equal(view.data.membersCount, 1, JSON.stringify(view.data));
    const mine = await within(10000, call.details(client), 'detailsView');
    assert.deepEqual(mine.data.rooms, ['defaultRoom']);
    // The session really went through the balancer's websocket path.
    assert.equal(client.client._dispatcher.connectionType, 'websocket');
    assert.ok(balancer.upgradeLog.length >= 1);
  } finally {
    client.disconnect();
  }
}));
