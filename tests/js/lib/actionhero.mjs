// Helpers for the actionheroClient.js tests: the client as hero serves it, on the real
// npm faye client, wrapped in promises.
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const realFaye = require('faye');
const tracked = new Set();

/**
 * The real faye module, with every client tracked and a 1 s retry: after a disconnect,
 * faye retries its last held connect once the socket closes, so a test must let those
 * retries reach the server (and get their 401) before stopping it; see `settle`.
 */
export const faye = {
  ...realFaye,
  Client: function Client(url, options = {}) {
    const client = new realFaye.Client(url, { retry: 1, ...options });
    tracked.add(client);
    return client;
  },
};

/** Waits (bounded) until no tracked faye client has a message in flight. */
export async function settle(ms = 15000) {
  const deadline = Date.now() + ms;
  // A closed dispatcher (after a successful disconnect) keeps no timers.
  const busy = () => [...tracked].filter((c) => c._dispatcher._transport && c._dispatcher._envelopes.size > 0);
  while (busy().length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const c of tracked) if (!busy().includes(c)) tracked.delete(c);
}

/** Fetches /public/javascript/actionheroClient.js from hero and loads it as a module. */
export async function loadClient(url) {
  const res = await fetch(`${url}/public/javascript/actionheroClient.js`);
  if (res.status !== 200) throw new Error(`actionheroClient.js: HTTP ${res.status}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'ahc-'));
  const file = path.join(dir, 'actionheroClient.cjs');
  writeFileSync(file, await res.text());
  return require(file);
}

/** Transports to run every protocol test over. */
export const TRANSPORTS = [
  { name: 'websocket', disable: [] },
  { name: 'long-polling', disable: ['websocket', 'eventsource'] },
];

/** A connected client: resolves to {client, details}. */
export async function connect(ActionheroClient, url, transport, extra = {}) {
  const client = new ActionheroClient({ faye, host: url, disable: transport.disable, retry: 1, ...extra });
  const details = await new Promise((resolve, reject) => {
    client.connect((err, d) => (err ? reject(err) : resolve(d)));
  });
  return { client, details };
}

/** Promise forms of the client's calls. */
export const call = {
  action: (c, name, params) => new Promise((r) => c.action(name, params, r)),
  details: (c) => new Promise((r) => c.detailsView((err, resp) => r(resp))),
  roomAdd: (c, room) => new Promise((r) => c.roomAdd(room, (err, resp) => r(resp))),
  roomLeave: (c, room) => new Promise((r) => c.roomLeave(room, (err, resp) => r(resp))),
  roomView: (c, room) => new Promise((r) => c.roomView(room, (err, resp) => r(resp))),
  say: (c, room, msg) => new Promise((r) => c.say(room, msg, (err, resp) => r(resp))),
  file: (c, f) => new Promise((r) => c.file(f, r)),
  send: (c, msg) => new Promise((r) => c.send(msg, r)),
};

/** Resolves with the next event `name` whose payload passes `filter`; rejects after `ms`. */
export function nextEvent(client, name, filter = () => true, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { client.off(name, handler); reject(new Error(`no ${name} event within ${ms} ms`)); }, ms);
    function handler(m) {
      if (!filter(m)) return;
      clearTimeout(timer);
      client.off(name, handler);
      resolve(m);
    }
    client.on(name, handler);
  });
}

/** Collects every `say` a client receives. */
export function recordSays(client) {
  const said = [];
  client.on('say', (m) => said.push(m));
  return said;
}

/** Resolves once `predicate()` holds, polling on the event loop (for "nothing else arrived" checks, use a marker message instead). */
export async function until(predicate, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `hero-testbed` (hero plus the test actions), next to the hero binary under test. */
export { heroBin } from './hero.mjs';
import { heroBin as _heroBin } from './hero.mjs';
export const testbedBin = path.join(path.dirname(_heroBin), 'hero-testbed');

/** Tracked faye clients that still have messages in flight (for diagnostics). */
export function inFlight() {
  return [...tracked].filter((c) => c._dispatcher._envelopes.size > 0).map((c) => ({
    state: c._state,
    transport: c._dispatcher.connectionType,
    open: !!c._dispatcher._transport,
    messages: [...c._dispatcher._envelopes.values()].map((e) => e.message.channel),
  }));
}
