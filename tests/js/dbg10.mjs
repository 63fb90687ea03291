import { startHero } from './lib/hero.mjs';
import { loadClient, connect, call, TRANSPORTS } from './lib/actionhero.mjs';
const h = await startHero([]);
const AC = await loadClient(h.url);
const { client } = await connect(AC, h.url, TRANSPORTS[0]);
for (const e of ['disconnected', 'connected', 'reconnected']) client.on(e, () => console.log('EVENT', e, client.state));
client.client.on('transport:down', () => console.log('faye down', Date.now() % 100000));
client.client.on('transport:up', () => console.log('faye up', Date.now() % 100000));
client.client.addExtension({ incoming(m, n) { console.log('IN', Date.now()%100000, JSON.stringify(m).slice(0,220)); n(m); }, outgoing(m, n) { console.log('OUT', Date.now()%100000, JSON.stringify(m).slice(0,220)); n(m); } });
await call.roomAdd(client, 'defaultRoom');
const res = await fetch(`${h.url}/faye`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify([{ channel: '/meta/disconnect', clientId: client.client._dispatcher.clientId }]) });
console.log('killed', await res.text()); call.action(client, 'randomNumber', {}).then(r => console.log('ACTION', JSON.stringify(r)));
await new Promise((r) => setTimeout(r, 6000));
console.log('state', client.state, client._setupRunning, client.id);
await h.stop(); process.exit(0);
