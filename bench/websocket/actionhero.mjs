// Websocket-server benchmark, loopback only, bounded in count and time:
//   1. round trip of a trivial action (randomNumber) over websocket: p50/p99;
//   2. `say` fan-out to a room of MEMBERS connections: deliveries per second.
// Clients are our actionheroClient.js on the real npm faye client.
//
//   HERO_BIN=target/release/hero node bench/websocket/actionhero.mjs [ROUNDTRIPS=2000] [MEMBERS=1000] [SAYS=20]
import { performance } from 'node:perf_hooks';
import { startHero } from '../../tests/js/lib/hero.mjs';
import { loadClient, connect, call, settle, TRANSPORTS } from '../../tests/js/lib/actionhero.mjs';

const [roundTrips = 2000, members = 1000, says = 20] = process.argv.slice(2).map(Number);
const websocket = TRANSPORTS[0];
const deadline = setTimeout(() => { console.error('bench: over 5 minutes, giving up'); process.exit(2); }, 5 * 60 * 1000);

const hero = await startHero(['--simultaneous-actions', '5'], { env: { RUST_LOG: 'warn,hero::cli=info' } });
const AC = await loadClient(hero.url);
const results = { roundTrips, members, says };
try {
  // 1. Round trip.
  const { client } = await connect(AC, hero.url, websocket);
  for (let i = 0; i < 200; i++) await call.action(client, 'randomNumber', {}); // warm-up
  const times = [];
  for (let i = 0; i < roundTrips; i++) {
    const t0 = performance.now();
    const r = await call.action(client, 'randomNumber', {});
    times.push(performance.now() - t0);
    if (r.error) throw new Error(r.error);
  }
  times.sort((a, b) => a - b);
  const pct = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  results.roundTripMs = { p50: +pct(0.5).toFixed(3), p99: +pct(0.99).toFixed(3), max: +times[times.length - 1].toFixed(3) };
  client.disconnect();

  // 2. Fan-out: MEMBERS connections in one room, one of them says SAYS messages.
  const room = 'defaultRoom';
  const clients = [];
  const t0 = performance.now();
  for (let i = 0; i < members; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, members - i) }, async () => {
      const { client: c } = await connect(AC, hero.url, websocket);
      const joined = await call.roomAdd(c, room);
      if (joined.status !== 'OK') throw new Error(joined.status);
      return c;
    }));
    clients.push(...batch);
  }
  results.joinSeconds = +((performance.now() - t0) / 1000).toFixed(2);
  const [sender, ...receivers] = clients;
  const expected = says * receivers.length;
  let delivered = 0;
  let done;
  const all = new Promise((r) => { done = r; });
  for (const c of receivers) {
    c.on('say', (m) => {
      if (m.from === sender.id && typeof m.message === 'string' && m.message.startsWith('bench ')) {
        delivered += 1;
        if (delivered === expected) done();
      }
    });
  }
  const start = performance.now();
  for (let i = 0; i < says; i++) sender.say(room, `bench ${i}`, () => {});
  await all;
  const seconds = (performance.now() - start) / 1000;
  results.fanout = { deliveries: delivered, seconds: +seconds.toFixed(3), deliveriesPerSecond: Math.round(delivered / seconds) };
  for (const c of clients) c.disconnect();
  await settle(20000);
} finally {
  clearTimeout(deadline);
  await hero.stop();
}
console.log(JSON.stringify(results));
process.exit(0);
