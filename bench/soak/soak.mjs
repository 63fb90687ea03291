// Soak: one hero under DURATION seconds of mixed load, its RSS sampled every SAMPLE s.
// Loopback only; every count bounded. Started by bench/soak.sh (which builds hero).
//
//   - HTTP: HTTP loops of GET /api/randomNumber and /api/status (keep-alive);
//   - actionhero clients (actionheroClient.js on the real npm faye client): WS_CHURN over
//     websocket and LP_CHURN over long-polling, each connecting, calling randomNumber a
//     few times, joining defaultRoom, saying, leaving, disconnecting, again and again;
//   - IDLE slots of websocket clients that join, sit 5-30 s, and leave;
//   - FAYE raw faye long-polling clients: handshake, subscribe to a channel of their
//     own, publish to it, receive every message, unsubscribe, disconnect, again;
//   - one listener in defaultRoom the whole time, which must receive every `say` that
//     was answered OK.
//
// At most WS_CHURN + LP_CHURN + IDLE + FAYE + 1 clients (default 161) are connected at
// once. Fails (exit 1) when a reply was lost or wrong (every call has a 15 s deadline), a
// say did not reach the listener, or a sample after WARMUP s is above the warm one (the
// first at or after WARMUP) by more than max(BOUND_MB, BOUND_PCT %): default 10 MB or
// 20 %, whichever is larger. Under this load RSS moves by about 1 MB between samples
// (jemalloc returns freed pages after its 10 s decay); the floor of 10 MB over ~8 minutes
// of churn (tens of thousands of client sessions) fails any leak above a few hundred
// bytes per session. The last line gives the trend (MB/min) after the warm-up.
import { readFileSync } from 'node:fs';
import { startHero } from '../../tests/js/lib/hero.mjs';
import { loadClient, call } from '../../tests/js/lib/actionhero.mjs';
import { faye } from '../../tests/js/lib/faye-client.mjs';

const num = (k, d) => (process.env[k] === undefined ? d : Number(process.env[k]));
const DURATION = num('DURATION', 600);
const SAMPLE = num('SAMPLE', 30);
const WARMUP = num('WARMUP', Math.min(120, Math.floor(DURATION / 3)));
const BOUND_MB = num('BOUND_MB', 10);
const BOUND_PCT = num('BOUND_PCT', 20);
const HTTP = num('HTTP', 4);
const WS_CHURN = num('WS_CHURN', 30);
const LP_CHURN = num('LP_CHURN', 10);
const IDLE = num('IDLE', 100);
const FAYE = num('FAYE', 20);
const DEADLINE_MS = 15000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (n) => Math.floor(Math.random() * n);
const counts = { http: 0, actions: 0, acSessions: 0, says: 0, idle: 0, fayeSessions: 0, fayeMessages: 0 };
const errors = [];
let live = 0;
let maxLive = 0;
let stopping = false;

function error(kind, e) {
  errors.push(`${kind}: ${e && e.message ? e.message : e}`);
  if (errors.length <= 10) console.error(`soak: error ${errors[errors.length - 1]}`);
}

/** `promise`, or a rejection naming `what` after the deadline. */
function timed(promise, what, ms = DEADLINE_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no reply within ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

const hero = await startHero([], { env: { RUST_LOG: 'warn,hero::cli=info' } });
const pid = hero.proc.pid;
process.on('exit', () => { if (hero.proc.exitCode === null) hero.proc.kill('SIGKILL'); });
const AC = await loadClient(hero.url);
console.log(`soak: hero pid ${pid} at ${hero.url}; ${DURATION} s, RSS every ${SAMPLE} s, warm-up ${WARMUP} s, bound max(${BOUND_MB} MB, ${BOUND_PCT}%)`);
console.log(`soak: ${HTTP} HTTP loops, ${WS_CHURN} websocket + ${LP_CHURN} long-polling actionhero churners, ${IDLE} idle slots, ${FAYE} faye long-polling clients`);

function rssKb() {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function acConnect(disable) {
  const client = new AC({ faye, host: hero.url, disable, retry: 1 });
  live++;
  maxLive = Math.max(maxLive, live);
  try {
    await timed(new Promise((resolve, reject) => client.connect((err, d) => (err ? reject(err) : resolve(d)))), 'connect');
  } catch (e) {
    client.disconnect();
    live--;
    throw e;
  }
  return client;
}

function acClose(client) {
  client.disconnect();
  live--;
}

// The listener: every answered say must reach it.
const sent = new Set();
const heard = new Set();
const listener = await acConnect([]);
listener.on('say', (m) => { if (typeof m.message === 'string' && m.message.startsWith('soak ')) heard.add(m.message); });
if ((await call.roomAdd(listener, 'defaultRoom')).status !== 'OK') throw new Error('listener could not join');
let sayId = 0;

async function acSession(disable, tag) {
  const client = await acConnect(disable);
  try {
    for (let i = 0, n = 1 + rand(8); i < n; i++) {
      const r = await timed(call.action(client, 'randomNumber', {}), `${tag} action`);
      if (r.error || typeof r.randomNumber !== 'number') throw new Error(`${tag} action: ${JSON.stringify(r).slice(0, 200)}`);
      counts.actions++;
    }
    if (Math.random() < 0.7) {
      const joined = await timed(call.roomAdd(client, 'defaultRoom'), `${tag} roomAdd`);
      if (joined.status !== 'OK') throw new Error(`${tag} roomAdd: ${JSON.stringify(joined)}`);
      for (let i = 0, n = rand(3); i < n; i++) {
        const id = `soak ${tag} ${++sayId}`;
        const said = await timed(call.say(client, 'defaultRoom', id), `${tag} say`);
        if (said.status !== 'OK') throw new Error(`${tag} say: ${JSON.stringify(said)}`);
        sent.add(id);
        counts.says++;
      }
      const left = await timed(call.roomLeave(client, 'defaultRoom'), `${tag} roomLeave`);
      if (left.status !== 'OK') throw new Error(`${tag} roomLeave: ${JSON.stringify(left)}`);
    }
    counts.acSessions++;
  } finally {
    acClose(client);
  }
}

async function idleSession() {
  const client = await acConnect(Math.random() < 0.8 ? [] : ['websocket', 'eventsource']);
  try {
    if (Math.random() < 0.5) {
      const joined = await timed(call.roomAdd(client, 'defaultRoom'), 'idle roomAdd');
      if (joined.status !== 'OK') throw new Error(`idle roomAdd: ${JSON.stringify(joined)}`);
    }
    const until = Date.now() + 5000 + rand(25000);
    while (!stopping && Date.now() < until) await sleep(250);
    counts.idle++;
  } finally {
    acClose(client);
  }
}

let fayeId = 0;
async function fayeSession() {
  const client = new faye.Client(`${hero.url}/faye`, { retry: 1 });
  client.disable('websocket');
  client.disable('eventsource');
  live++;
  maxLive = Math.max(maxLive, live);
  const channel = `/soak/${++fayeId}`;
  const got = new Set();
  try {
    const sub = client.subscribe(channel, (m) => got.add(m.n));
    await timed(sub, 'faye subscribe');
    const n = 1 + rand(10);
    for (let i = 0; i < n; i++) await timed(client.publish(channel, { n: i, pad: 'x'.repeat(rand(512)) }), 'faye publish');
    const deadline = Date.now() + DEADLINE_MS;
    while (got.size < n && Date.now() < deadline) await sleep(20);
    if (got.size < n) throw new Error(`faye: ${n - got.size} of ${n} messages lost on ${channel}`);
    counts.fayeMessages += n;
    await timed(Promise.resolve(sub.cancel()), 'faye unsubscribe');
    counts.fayeSessions++;
  } finally {
    await timed(Promise.resolve(client.disconnect()), 'faye disconnect').catch((e) => error('faye', e));
    live--;
  }
}

async function httpLoop() {
  const paths = ['/api/randomNumber', '/api/status'];
  while (!stopping) {
    const path = paths[rand(2)];
    try {
      const res = await timed(fetch(hero.url + path), `GET ${path}`);
      const body = await res.json();
      if (res.status !== 200 || body.error) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      counts.http++;
    } catch (e) {
      error('http', e);
    }
    await sleep(5);
  }
}

/** Runs `session` again and again until the end, with a short pause between. */
async function loop(kind, session) {
  while (!stopping) {
    try {
      await session();
    } catch (e) {
      error(kind, e);
    }
    await sleep(20 + rand(200));
  }
}

const started = Date.now();
const samples = [];
function sample() {
  const t = Math.round((Date.now() - started) / 1000);
  const kb = rssKb();
  samples.push({ t, kb });
  console.log(
    `[${String(t).padStart(4)} s] rss ${(kb / 1024).toFixed(1)} MB | live clients ${live} (max ${maxLive}) | ` +
      `http ${counts.http} actions ${counts.actions} ac-sessions ${counts.acSessions} says ${counts.says} ` +
      `idle ${counts.idle} faye ${counts.fayeSessions}/${counts.fayeMessages} msgs | errors ${errors.length}`,
  );
}
sample();
const sampler = setInterval(sample, SAMPLE * 1000);

const workers = [];
for (let i = 0; i < HTTP; i++) workers.push(httpLoop());
for (let i = 0; i < WS_CHURN; i++) workers.push(loop('websocket', () => acSession([], `ws${i}`)));
for (let i = 0; i < LP_CHURN; i++) workers.push(loop('long-polling', () => acSession(['websocket', 'eventsource'], `lp${i}`)));
for (let i = 0; i < FAYE; i++) workers.push(loop('faye', fayeSession));
for (let i = 0; i < IDLE; i++) workers.push((async () => { await sleep(rand(10000)); await loop('idle', idleSession); })());

await sleep(DURATION * 1000);
clearInterval(sampler);
if ((Date.now() - started) / 1000 - samples[samples.length - 1].t > SAMPLE / 2) sample();
stopping = true;
await timed(Promise.all(workers), 'stopping the load', 60000).catch((e) => error('stop', e));
await sleep(2000); // the last says reach the listener
sample();
const missing = [...sent].filter((id) => !heard.has(id));
if (missing.length > 0) error('chat', `${missing.length} of ${sent.size} says never reached the listener (e.g. ${missing[0]})`);
acClose(listener);
await hero.stop();

// Verdict.
const warm = samples.find((s) => s.t >= WARMUP) || samples[samples.length - 1];
const limitKb = warm.kb + Math.max(BOUND_MB * 1024, (warm.kb * BOUND_PCT) / 100);
const after = samples.filter((s) => s.t > warm.t);
const peak = after.reduce((m, s) => Math.max(m, s.kb), warm.kb);
const over = after.filter((s) => s.kb > limitKb);
let slope = 0;
if (after.length >= 2) {
  const first = after[0];
  const last = after[after.length - 1];
  slope = ((last.kb - first.kb) / 1024) / ((last.t - first.t) / 60);
}
console.log(
  `soak: warm RSS ${(warm.kb / 1024).toFixed(1)} MB at ${warm.t} s, limit ${(limitKb / 1024).toFixed(1)} MB, ` +
    `peak after warm-up ${(peak / 1024).toFixed(1)} MB, trend ${slope.toFixed(2)} MB/min`,
);
console.log(`soak: totals ${JSON.stringify(counts)}, says heard ${heard.size}/${sent.size}, max live clients ${maxLive}, errors ${errors.length}`);
const failures = [];
if (errors.length > 0) failures.push(`${errors.length} errors (first: ${errors[0]})`);
if (over.length > 0) failures.push(`RSS past the bound at ${over.map((s) => `${s.t} s`).join(', ')}`);
if (failures.length > 0) {
  console.log(`soak: FAIL: ${failures.join('; ')}`);
  process.exit(1);
}
console.log('soak: PASS');
process.exit(0);
