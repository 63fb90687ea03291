// /metrics on a two-node cluster: an action over websocket (actionheroClient.js) is
// counted under transport="webSocket" on the node that ran it, both nodes see two live
// nodes, and once Redis is gone the Redis error counter moves.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, withLogs } from './lib/cluster.mjs';
import { faye, settle, loadClient, call } from './lib/actionhero.mjs';
import { within } from './lib/wait.mjs';

let cluster;
before(async () => { cluster = await startCluster({ nodes: 2 }); });
after(async () => {
  await settle();
  await cluster?.stop();
});

/** One scrape of a node: Map series -> value. */
async function scrape(node) {
  const res = await fetch(`${node.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const samples = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const wsCalls = 'hero_action_calls_total{action="randomNumber",outcome="ok",transport="webSocket"}';

test('a websocket action is counted as webSocket; nodes and Redis errors are reported', { timeout: 60000 }, () => withLogs(cluster, async () => {
  const [a, b] = cluster.nodes;
  for (const node of [a, b]) {
    const s = await scrape(node);
    assert.equal(s.get('hero_cluster_nodes'), 2, 'both nodes are live');
    assert.equal(s.get('hero_redis_errors_total'), 0);
  }
  const ActionheroClient = await loadClient(a.url);
  const client = new ActionheroClient({ faye, host: a.url, disable: [], retry: 1 });
  try {
    await within(15000, new Promise((resolve, reject) =>
      client.connect((err, d) => (err ? reject(err) : resolve(d)))), 'actionhero connect');
    for (let i = 0; i < 2; i++) {
      const r = await within(10000, call.action(client, 'randomNumber', {}), 'randomNumber');
      assert.equal(typeof r.randomNumber, 'number', JSON.stringify(r));
    }
    // The connection's owner ran both calls: its counter says 2, the other node's none.
    const counts = await Promise.all([a, b].map(async (n) => (await scrape(n)).get(wsCalls) ?? 0));
    assert.equal(counts[0] + counts[1], 2, `counts ${counts}`);
    assert.ok(counts.includes(2), `one owner ran both: ${counts}`);
    const conns = await Promise.all([a, b].map(async (n) => (await scrape(n)).get('hero_connections{type="webSocket"}') ?? 0));
    assert.equal(conns[0] + conns[1], 1, `connections ${conns}`);
  } finally {
    client.disconnect();
  }

  await cluster.redis.kill();
  // Node duties (heartbeats) keep calling Redis; each failure is counted.
  const deadline = Date.now() + 20000;
  for (;;) {
    const s = await scrape(a);
    if (s.get('hero_redis_errors_total') > 0) break;
    assert.ok(Date.now() < deadline, `no Redis error counted: ${s.get('hero_redis_errors_total')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await cluster.redis.restart();
}));
