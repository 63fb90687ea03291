// Our client.js in real headless Chromium, loaded by a page with
// <script src="/faye/client.js">: two isolated browser contexts exchange messages over
// websocket and over forced long-polling (XHR). Against the real npm faye server (serving
// our client.js and the page next to it) and, when TARGET=hero, against hero itself.
// Same-origin: the page comes from the server under test (hero: its --public dir).
// Cross-origin: the page comes from a second local server, so the client loads
// client.js and talks Bayeux across origins (CORS long-polling with credentials).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { TARGET } from './lib/target.mjs';
import { startFayeServer } from './lib/faye-server.mjs';
import { startHero } from './lib/hero.mjs';
import { clientJsPath } from './lib/clientjs.mjs';

const outputDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../output');
/** The test page; `base` is '' (same origin as the server) or the server's URL. */
const page = (base) => `<!doctype html>
<html><head><meta charset="utf-8"><title>client.js test</title>
<script src="${base}/faye/client.js"></script></head>
<body><h1>Hero client.js</h1><pre id="log"></pre>
<script>
  function log(s) { document.getElementById('log').textContent += s + '\\n'; }
  window.BAYEUX = '${base}/faye';
</script></body></html>`;

const html = (body) => (req, res) => { res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }); res.end(body); };

/**
 * Start the server under test; the same-origin page is at `${url}/public/test.html`.
 * Hero serves /faye/client.js itself and the page from its public directory; the faye
 * server gets routes serving our client.js (faye would serve its own there) and the page.
 */
async function start(kind) {
  if (kind === 'hero') {
    const dir = mkdtempSync(path.join(tmpdir(), 'hero-public-'));
    writeFileSync(path.join(dir, 'test.html'), page(''));
    const s = await startHero(['--public', dir]);
    return { ...s, async stop() { await s.stop(); rmSync(dir, { recursive: true, force: true }); } };
  }
  const js = readFileSync(clientJsPath);
  return startFayeServer({
    routes: {
      '/faye/client.js': (req, res) => { res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }); res.end(js); },
      '/public/test.html': html(page('')),
    },
  });
}

/** A page server on another port: the page loads client.js and talks Bayeux cross-origin. */
async function startPageServer(serverUrl) {
  const srv = http.createServer(html(page(serverUrl)));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { url: `http://127.0.0.1:${srv.address().port}/test.html`, stop: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }) };
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
async function openClient(pageUrl, websocket, name, errors, contexts) {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
  page.setDefaultTimeout(10000);
  const res = await page.goto(pageUrl);
  assert.equal(res.status(), 200, `GET ${pageUrl} (hero serves it from --public, PROTOCOL 3.2)`);
  assert.equal(await page.evaluate(() => typeof Faye.Client), 'function', '/faye/client.js defines Faye.Client');
  await page.evaluate(({ websocket, name }) => {
    window.client = new Faye.Client(BAYEUX, { retry: 1 });
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
const CASES = KINDS.flatMap((kind) => [['websocket', true], ['long-polling', false]].flatMap(([transport, websocket]) =>
  ['same-origin', 'cross-origin'].map((origin) => ({ kind, transport, websocket, origin }))));
for (const { kind, transport, websocket, origin } of CASES) {
  test(`browser client.js ${transport} ${origin} vs ${kind}: two pages exchange messages`, { timeout: 40000 }, async () => {
    const server = await start(kind);
    const pages = origin === 'cross-origin' ? await startPageServer(server.url) : null;
    const pageUrl = pages ? pages.url : `${server.url}/public/test.html`;
    const errors = [];
    const contexts = [];
    try {
      const a = await openClient(pageUrl, websocket, 'A', errors, contexts);
      const b = await openClient(pageUrl, websocket, 'B', errors, contexts);
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
      await b.page.screenshot({ path: path.join(outputDir, `clientjs-browser-${kind}-${transport}-${origin}.png`), fullPage: true });
      assert.deepEqual(errors, []);
      await a.page.evaluate(() => client.disconnect());
      await b.page.evaluate(() => client.disconnect());
    } finally {
      for (const c of contexts) await c.close();
      await pages?.stop();
      await server.stop();
    }
  });
}
