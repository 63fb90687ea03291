// Our client.js in real headless Chromium, loaded by a page with
// <script src="/faye/client.js">: two isolated browser contexts exchange messages over
// websocket and over forced long-polling (XHR). Against the real npm faye server (serving
// our client.js and the page next to it) and, when TARGET=hero, against hero itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { TARGET } from './lib/target.mjs';
import { startFayeServer } from './lib/faye-server.mjs';
import { startHero } from './lib/hero.mjs';
import { clientJsPath } from './lib/clientjs.mjs';

const outputDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../output');
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>client.js test</title>
<script src="/faye/client.js"></script></head>
<body><h1>Hero client.js</h1><pre id="log"></pre>
<script>
  function log(s) { document.getElementById('log').textContent += s + '\\n'; }
</script></body></html>`;

/** Start a server that serves PAGE at /public/test.html and our client at /faye/client.js. */
async function start(kind) {
  if (kind === 'faye') {
    const send = (type, body) => (req, res) => { res.writeHead(200, { 'Content-Type': type }); res.end(body); };
    const s = await startFayeServer({
      routes: {
        '/faye/client.js': send('text/javascript; charset=utf-8', readFileSync(clientJsPath)),
        '/public/test.html': send('text/html; charset=utf-8', PAGE),
      },
    });
    return s;
  }
  // hero serves /faye/client.js itself; the page comes from its public directory.
  const dir = mkdtempSync(path.join(tmpdir(), 'hero-public-'));
  writeFileSync(path.join(dir, 'test.html'), PAGE);
  const s = await startHero(['--public', dir]);
  return { ...s, async stop() { await s.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});
after(async () => { await browser?.close(); });

/** A page in its own browser context, with a client subscribed to /browser/chat. */
async function openClient(url, websocket, name, errors) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
  page.setDefaultTimeout(10000);
  const res = await page.goto(`${url}/public/test.html`);
  assert.equal(res.status(), 200);
  await page.evaluate(({ websocket, name }) => {
    window.client = new Faye.Client('/faye', { retry: 1 });
    if (!websocket) client.disable('websocket');
    window.inbox = [];
    window.connectionTypes = [];
    window.ups = 0;
    client.on('transport:up', () => { ups++; });
    client.addExtension({
      outgoing(m, cb) { if (m.channel === '/meta/connect') connectionTypes.push(m.connectionType); cb(m); },
    });
    log(name + ' subscribing');
    return client.subscribe('/browser/chat', (d) => { inbox.push(d); log(name + ' got ' + JSON.stringify(d)); })
      .then(() => log(name + ' subscribed'));
  }, { websocket, name });
  return { context, page };
}

const KINDS = TARGET === 'hero' ? ['faye', 'hero'] : ['faye'];
for (const kind of KINDS) {
  for (const [transport, websocket] of [['websocket', true], ['long-polling', false]]) {
    test(`browser client.js ${transport} vs ${kind}: two pages exchange messages`, { timeout: 40000 }, async () => {
      const server = await start(kind);
      const errors = [];
      const a = await openClient(server.url, websocket, 'A', errors);
      const b = await openClient(server.url, websocket, 'B', errors);
      try {
        await a.page.evaluate(() => client.publish('/browser/chat', { from: 'A', text: 'hello B' }));
        await b.page.evaluate(() => client.publish('/browser/chat', { from: 'B', text: 'hello A' }));
        // Each page gets both messages (its own publish comes back), once each.
        for (const { page } of [a, b]) {
          await page.waitForFunction(() => inbox.length >= 2);
          const inbox = await page.evaluate(() => inbox);
          assert.deepEqual(inbox.map((m) => m.from).sort(), ['A', 'B']);
        }
        // A publish that waits for nothing else: B sees exactly what A sent, in order.
        await a.page.evaluate(() => { for (let i = 0; i < 20; i++) client.publish('/browser/chat', { from: 'A', i }); });
        await b.page.waitForFunction(() => inbox.length >= 22);
        const seq = (await b.page.evaluate(() => inbox)).slice(2).map((m) => m.i);
        assert.deepEqual(seq, [...Array(20).keys()]);
        for (const { page } of [a, b]) {
          const types = await page.evaluate(() => [...new Set(connectionTypes)]);
          assert.deepEqual(types, [transport]);
          assert.ok(await page.evaluate(() => ups >= 1), 'transport:up fired');
          assert.match(await page.evaluate(() => client.getClientId()), /^[a-z0-9]+$/);
        }
        mkdirSync(outputDir, { recursive: true });
        await b.page.screenshot({ path: path.join(outputDir, `clientjs-browser-${kind}-${transport}.png`), fullPage: true });
        assert.deepEqual(errors, []);
        await a.page.evaluate(() => client.disconnect());
        await b.page.evaluate(() => client.disconnect());
      } finally {
        await a.context.close();
        await b.context.close();
        await server.stop();
      }
    });
  }
}
