// The websocket `file` verb under load, through actionheroClient.js on the real npm faye
// client: a thousand `file` verbs for a 1 MB file count against simultaneousActions
// (the server reads a handful at a time, its memory stays bounded), and a file over
// max_file_verb_bytes is refused with an error pointing at its HTTP URL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startHero } from './lib/hero.mjs';
import { faye, settle, loadClient, connect, call, TRANSPORTS } from './lib/actionhero.mjs';

const publicDir = mkdtempSync(path.join(tmpdir(), 'hero-files-'));
writeFileSync(path.join(publicDir, 'mega.bin'), Buffer.alloc(1000 * 1000, 7));
writeFileSync(path.join(publicDir, 'huge.bin'), Buffer.alloc(2 << 20, 9));

let hero;
let ActionheroClient;
before(async () => {
  hero = await startHero(['--public', publicDir]);
  ActionheroClient = await loadClient(hero.url);
});
after(async () => {
  await settle();
  await hero?.stop();
});

/** The hero process's resident memory, in MiB. */
function rssMiB() {
  const status = readFileSync(`/proc/${hero.proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024;
}

const websocket = TRANSPORTS.find((t) => t.name === 'websocket');

test('a thousand file verbs for a 1 MB file: a few read at a time, the rest refused, memory bounded', { timeout: 120000 }, async () => {
  const { client } = await connect(ActionheroClient, hero.url, websocket);
  try {
    const before = rssMiB();
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rssMiB()); }, 20);
    const replies = await Promise.all(Array.from({ length: 1000 }, () => call.file(client, 'mega.bin')));
    clearInterval(sampler);
    peak = Math.max(peak, rssMiB());
    const served = replies.filter((r) => r.error === null);
    const refused = replies.filter((r) => r.error === 'Error: you have too many pending requests');
    assert.equal(served.length + refused.length, 1000, JSON.stringify(replies.find((r) => r.error && !refused.includes(r))));
    assert.ok(served.length >= 5, `served ${served.length}`);
    assert.ok(served.every((r) => r.length === 1000 * 1000 && r.encoding === 'base64'));
    // Unbounded, this took the server from ~10 MB to 2.7 GB.
    assert.ok(peak - before < 300, `RSS grew ${Math.round(peak - before)} MiB (from ${Math.round(before)})`);
  } finally {
    client.disconnect();
  }
});

test('a file over max_file_verb_bytes is refused with its HTTP URL', { timeout: 30000 }, async () => {
  const { client } = await connect(ActionheroClient, hero.url, websocket);
  try {
    const reply = await call.file(client, 'huge.bin');
    assert.equal(reply.content, null);
    assert.equal(reply.length, 2 << 20);
    assert.equal(reply.error, `the file is ${2 << 20} bytes, more than max_file_verb_bytes (1048576); fetch it over HTTP: /public/huge.bin`);
    const res = await fetch(`${hero.url}/public/huge.bin`);
    assert.equal((await res.arrayBuffer()).byteLength, 2 << 20);
  } finally {
    client.disconnect();
  }
});
