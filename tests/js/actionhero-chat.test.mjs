// The chat page (/chat.html, embedded in hero) in real headless Chromium: two browser
// contexts join a room, exchange messages, and one leaves while the other watches.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startHero } from './lib/hero.mjs';

const outputDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../output');
let hero;
let browser;

before(async () => {
  hero = await startHero([]);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});
after(async () => {
  await browser?.close();
  await hero?.stop();
});

async function openChat() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${hero.url}/chat.html`);
  await page.waitForSelector('body[data-state="connected"]');
  const id = await page.textContent('#me');
  assert.match(id, /^[a-z0-9]{20,}$/);
  return { context, page, id, errors };
}

const logHas = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll('#log .line')].some((l) => l.textContent.includes(t)), text);

test('two browsers chat in a room; one leaves and the other sees it', async () => {
  const alice = await openChat();
  const bob = await openChat();
  try {
    await alice.page.click('#join');
    await alice.page.waitForSelector('body[data-room="defaultRoom"]');
    await alice.page.waitForFunction(() => document.querySelector('#membersCount').textContent === '1');

    await bob.page.click('#join');
    await bob.page.waitForSelector('body[data-room="defaultRoom"]');
    // Alice sees Bob enter and the member list grow.
    await logHas(alice.page, 'I have entered the room');
    await alice.page.waitForFunction(() => document.querySelector('#membersCount').textContent === '2');
    await bob.page.waitForFunction(() => document.querySelector('#membersCount').textContent === '2');
    const members = await alice.page.$$eval('#members li', (lis) => lis.map((li) => li.dataset.id).sort());
    assert.deepEqual(members, [alice.id, bob.id].sort());

    await alice.page.fill('#message', 'Hello Bob!');
    await alice.page.click('#send');
    await logHas(bob.page, 'Hello Bob!');
    await bob.page.fill('#message', 'Hi Alice');
    await bob.page.press('#message', 'Enter');
    await logHas(alice.page, 'Hi Alice');
    // Each sees its own line once (rendered locally), never echoed back by the server.
    const aliceLines = await alice.page.$$eval('#log .line', (ls) => ls.map((l) => l.textContent));
    assert.equal(aliceLines.filter((l) => l.includes('Hello Bob!')).length, 1, aliceLines.join('\n'));

    mkdirSync(outputDir, { recursive: true });
    await alice.page.screenshot({ path: path.join(outputDir, 'chat.png'), fullPage: true });

    await bob.page.click('#leave');
    await bob.page.waitForSelector('body[data-room=""]');
    await logHas(alice.page, 'I have left the room');
    await alice.page.waitForFunction(() => document.querySelector('#membersCount').textContent === '1');
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  } finally {
    await alice.context.close();
    await bob.context.close();
  }
});
