// Middleware over the websocket server, seen by real actionheroClient.js clients, for
// the two builds of one source (crates/test-actions/src/middleware.rs): linked into
// hero-testbed, and compiled into the dynamic fixture tests/fixtures/test-plugin, which
// the plain hero loads from its plugin directory. Action middleware order and rewrites,
// connection hooks once per connection, chat middleware refusing a join and rewriting
// a say. The HTTP side is tests/middleware.rs.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHero } from './lib/hero.mjs';
import { settle, loadClient, connect, call, nextEvent, until, TRANSPORTS, testbedBin } from './lib/actionhero.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const websocket = TRANSPORTS.find((t) => t.name === 'websocket');
const rooms = JSON.stringify({ defaultRoom: {}, mwRoom: {}, mwVipLounge: {}, mwSticky: {} });

/** Builds the fixture (cached by cargo, in the plugin tests' target dir) into a fresh plugin directory. */
function fixtureDir() {
  const target = path.join(root, 'target/plugin-tests');
  const built = spawnSync(process.env.CARGO || 'cargo', ['build', '--quiet', '--lib', '-p', 'hero-test-plugin'], {
    cwd: root,
    env: { ...process.env, CARGO_TARGET_DIR: target },
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 600000,
  });
  if (built.status !== 0) throw new Error('building tests/fixtures/test-plugin failed');
  const dir = mkdtempSync(path.join(tmpdir(), 'hero-mw-'));
  copyFileSync(path.join(target, 'debug/libhero_test_plugin.so'), path.join(dir, 'libmw.so'));
  return dir;
}

const builds = [
  { name: 'static (hero-testbed)', start: () => startHero(['--starting-chat-rooms', rooms], { bin: testbedBin }) },
  {
    name: 'dynamic (fixture loaded by hero)',
    start: async () => {
      const hero = await startHero(['--plugins', fixtureDir(), '--starting-chat-rooms', rooms]);
      await until(() => hero.logs.some((l) => l.includes('loaded plugin hero-test-plugin')), 15000);
      return hero;
    },
  },
];

for (const build of builds) {
  describe(`middleware, ${build.name}`, () => {
    let hero;
    let ActionheroClient;
    const open = () => connect(ActionheroClient, hero.url, websocket).then((x) => x.client);
    const counts = async (client) => (await call.action(client, 'mwCounts', {}));

    before(async () => {
      hero = await build.start();
      ActionheroClient = await loadClient(hero.url);
    });
    after(async () => {
      await settle();
      await hero?.stop();
    });

    test('action middleware over websocket: order, rewrites, global vs per-action, refusal', async () => {
      const [a, denied] = await Promise.all([open(), open()]);
      try {
        const echo = await call.action(a, 'mwEcho', { word: 'hi' });
        assert.equal(echo.error, undefined, JSON.stringify(echo));
        assert.deepEqual(echo.mwTrail, ['mwLocal', 'mwTrace', 'mwSecond']);
        assert.deepEqual(echo.postTrail, ['mwLocal', 'mwTrace', 'mwSecond']);
        assert.equal(echo.word, 'HI');
        assert.equal(echo.secret, '[redacted]');
        assert.equal(echo.mwSeen, true);
        const plain = await call.action(a, 'mwPlain', {});
        assert.deepEqual(plain.mwTrail, ['mwTrace', 'mwSecond']);
        assert.deepEqual(plain.postTrail, ['mwTrace', 'mwSecond']);
        // Refused before the action: it does not run (its run counter stays), and no
        // post-processor runs. (`deny` sticks to that connection: it gets its own.)
        const runs = (await counts(a)).mwEchoRuns;
        const refused = await call.action(denied, 'mwEcho', { deny: 1 });
        assert.equal(refused.error, 'Error: denied by mwGuard');
        assert.equal(refused.postTrail, undefined);
        assert.equal((await counts(a)).mwEchoRuns, runs);
        // A panicking middleware is an error reply; the connection serves on.
        const boom = await call.action(a, 'mwBoomAction', {});
        assert.equal(boom.error, 'Error: The server experienced an internal error');
        assert.equal((await call.action(a, 'mwPlain', {})).error, undefined);
      } finally {
        a.disconnect();
        denied.disconnect();
      }
    });

    test('connection hooks run once per connection: create before its first action, destroy once', async () => {
      const observer = await open();
      try {
        const before = await counts(observer);
        const created0 = before['mwCreated:webSocket'];
        const destroyed0 = before['mwDestroyed:webSocket'];
        const a = await open();
        const echo = await call.action(a, 'mwEcho', {});
        assert.equal(echo.mwCreated, true, 'the attribute the create hook set');
        assert.equal((await counts(observer))['mwCreated:webSocket'], created0 + 1);
        // quit destroys the connection, then the session ends too: one destroy.
        assert.equal((await call.send(a, { event: 'quit' })).status, 'OK');
        a.disconnect();
        let now = await counts(observer);
        for (let i = 0; i < 200 && now['mwDestroyed:webSocket'] < destroyed0 + 1; i += 1) {
          now = await counts(observer); // one round trip each: the destroy hook runs meanwhile
        }
        assert.equal(now['mwDestroyed:webSocket'], destroyed0 + 1);
        // A second destroy (of the session's end) would land by now: a few more round trips.
        await counts(observer);
        const later = await counts(observer);
        assert.equal(later['mwDestroyed:webSocket'], destroyed0 + 1, 'destroyed once');
        assert.equal(later['mwCreated:webSocket'], created0 + 1, 'created once');
        // The end of the Bayeux session alone destroys a connection too.
        const c = await open();
        c.disconnect();
        now = await counts(observer);
        for (let i = 0; i < 200 && now['mwDestroyed:webSocket'] < destroyed0 + 2; i += 1) {
          now = await counts(observer);
        }
        assert.equal(now['mwCreated:webSocket'], created0 + 2);
        assert.equal(now['mwDestroyed:webSocket'], destroyed0 + 2);
      } finally {
        observer.disconnect();
      }
    });

    test('chat middleware refuses a join with its message and rewrites a say', async () => {
      const [a, b] = await Promise.all([open(), open()]);
      try {
        const refused = await call.roomAdd(a, 'mwVipLounge');
        assert.equal(refused.status, 'mwChat: VIPs only');
        assert.equal(refused.data, false);
        assert.equal((await call.details(a)).data.rooms.length, 0);
        assert.equal((await call.action(a, 'mwBecomeVip', {})).vip, true);
        assert.equal((await call.roomAdd(a, 'mwVipLounge')).status, 'OK');

        assert.equal((await call.roomAdd(a, 'mwRoom')).status, 'OK');
        assert.equal((await call.roomAdd(b, 'mwRoom')).status, 'OK');
        const heard = nextEvent(b, 'say', (m) => m.room === 'mwRoom' && m.from === a.id && m.message !== 'I have entered the room');
        assert.equal((await call.say(a, 'mwRoom', 'oh darn it')).status, 'OK');
        assert.equal((await heard).message, 'oh **** it');
        // Elsewhere the filter does not apply.
        assert.equal((await call.roomAdd(a, 'defaultRoom')).status, 'OK');
        assert.equal((await call.roomAdd(b, 'defaultRoom')).status, 'OK');
        const plain = nextEvent(b, 'say', (m) => m.room === 'defaultRoom' && m.message === 'darn');
        assert.equal((await call.say(a, 'defaultRoom', 'darn')).status, 'OK');
        await plain;

        assert.equal((await call.roomAdd(a, 'mwSticky')).status, 'OK');
        assert.equal((await call.roomLeave(a, 'mwSticky')).status, 'mwChat: nobody leaves mwSticky');
        assert.ok((await call.details(a)).data.rooms.includes('mwSticky'));
      } finally {
        a.disconnect();
        b.disconnect();
      }
    });
  });
}
