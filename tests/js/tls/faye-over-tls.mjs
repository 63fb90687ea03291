// Run by tests/tls.rs (not a *.test.mjs of the main suite: it needs the certificate the
// Rust test makes). The real npm faye client against a hero serving TLS: a round trip
// over `wss://` and one over `https://` long-polling, with the server's certificate
// trusted through NODE_EXTRA_CA_CERTS (no verification switched off).
// Usage: node faye-over-tls.mjs https://127.0.0.1:PORT/faye
import { fayeClient, disconnectAll } from '../lib/faye-client.mjs';

const url = process.argv[2];
const deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms).unref());

async function roundTrip(transport) {
  const client = fayeClient(url, { websocket: transport === 'websocket' });
  const types = new Set();
  client.addExtension({ outgoing(m, cb) { if (m.channel === '/meta/connect') types.add(m.connectionType); cb(m); } });
  try {
    const channel = `/tls/${transport.replace('-', '')}`;
    let received;
    const got = new Promise((resolve) => { received = resolve; });
    await Promise.race([client.subscribe(channel, received), deadline(10000, `${transport} subscribe`)]);
    await Promise.race([client.publish(channel, { over: transport }), deadline(10000, `${transport} publish`)]);
    const message = await Promise.race([got, deadline(10000, `${transport} delivery`)]);
    if (message.over !== transport) throw new Error(`${transport}: got ${JSON.stringify(message)}`);
    // A connect after the handshake shows the transport the client settled on.
    await Promise.race([new Promise((resolve) => { const t = setInterval(() => { if (types.has(transport)) { clearInterval(t); resolve(); } }, 20); }), deadline(10000, `${transport} connect`)]);
    return [...types];
  } finally {
    await disconnectAll([client]);
  }
}

const result = {};
for (const transport of ['websocket', 'long-polling']) result[transport] = await roundTrip(transport);
console.log(JSON.stringify(result));
process.exit(0);
