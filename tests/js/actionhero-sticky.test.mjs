// Sticky params have caps: through actionheroClient.js on the real npm faye client, an
// action whose params would make the connection keep more than max_sticky_params, or
// more than max_sticky_param_bytes, is refused with an error naming the setting, and
// the params kept before are unchanged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHero } from './lib/hero.mjs';
import { faye, settle, loadClient, connect, call, TRANSPORTS } from './lib/actionhero.mjs';

let hero;
let ActionheroClient;
before(async () => {
  hero = await startHero([], { env: { HERO_MAX_STICKY_PARAMS: '4', HERO_MAX_STICKY_PARAM_BYTES: '2000' } });
  ActionheroClient = await loadClient(hero.url);
});
after(async () => {
  await settle();
  await hero?.stop();
});

test('params past max_sticky_params or max_sticky_param_bytes are refused, naming the setting', { timeout: 30000 }, async () => {
  const websocket = TRANSPORTS.find((t) => t.name === 'websocket');
  const { client } = await connect(ActionheroClient, hero.url, websocket);
  try {
    // `action` is kept too: action + a + b = 3.
    const ok = await call.action(client, 'randomNumber', { a: 1, b: 2 });
    assert.equal(typeof ok.randomNumber, 'number', JSON.stringify(ok));
    const many = await call.action(client, 'randomNumber', { c: 3, d: 4 });
    assert.equal(many.error, 'Error: too many params kept on this connection (at most 4 - max_sticky_params)');
    const big = await call.action(client, 'randomNumber', { a: 'x'.repeat(3000) });
    assert.equal(big.error, 'Error: the params kept on this connection are too large (at most 2000 bytes - max_sticky_param_bytes)');
    const details = await call.details(client);
    assert.deepEqual(details.data.params, { action: 'randomNumber', a: 1, b: 2 });
  } finally {
    client.disconnect();
  }
});
