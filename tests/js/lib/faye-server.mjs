// The reference Bayeux server: the real npm faye NodeAdapter mounted at /faye on a plain
// http server. The compatibility tests run against it first (TARGET=faye) to prove that
// they assert real faye behaviour; then the same tests run against hero.
import http from 'node:http';
import { once } from 'node:events';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const faye = require('faye');

/**
 * Start a faye server; resolves to {url, port, adapter, stop()}.
 * `port` 0 picks a free port; pass a previous port to restart on the same address.
 * `handler(req, res)` answers requests that are not for /faye (default 404); faye's own
 * request listener wraps it, so a test may serve pages next to the Bayeux endpoint.
 * `websocket: false` refuses every websocket upgrade (like a proxy that blocks them).
 * `routes` maps exact paths to handlers that answer BEFORE faye does (e.g. to serve our own
 * client.js at /faye/client.js, where faye would serve its own).
 */
export async function startFayeServer({ port = 0, timeout = 45, handler, websocket = true, routes = {} } = {}) {
  const server = http.createServer(handler || ((req, res) => { res.writeHead(404); res.end(); }));
  const adapter = new faye.NodeAdapter({ mount: '/faye', timeout });
  adapter.attach(server);
  const fayeListeners = server.listeners('request');
  server.removeAllListeners('request');
  server.on('request', (req, res) => {
    const route = routes[new URL(req.url, 'http://x').pathname];
    if (route) return route(req, res);
    for (const l of fayeListeners) l.call(server, req, res);
  });
  if (!websocket) {
    server.removeAllListeners('upgrade');
    server.on('upgrade', (req, socket) => socket.destroy());
  }
  // Upgraded websockets and held long-polls are not closed by server.close(): track
  // every socket so stop() really drops all clients, like a process exit.
  const sockets = new Set();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const actual = server.address().port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    adapter,
    async stop() {
      adapter.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
