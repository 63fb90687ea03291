// A round-robin HTTP load balancer with NO sticky sessions, for the cluster tests: every
// HTTP request (not every TCP connection: a keep-alive client is not pinned) goes to the
// next backend in turn, streamed both ways; a websocket upgrade is piped as raw sockets to
// the next backend in turn. It records where each request went, so a test can assert that
// the traffic really was spread.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);
const BODY_LIMIT = 64 * 1024;

/**
 * Start a balancer in front of `backends` (base URLs such as http://127.0.0.1:PORT);
 * resolves to {url, port, counts, upgrades, upgradeLog, requests, messages(), stop()}:
 * - counts[i]: HTTP requests sent to backend i; upgrades[i]: websockets piped to it;
 * - upgradeLog: one {backend, url} per websocket, in arrival order;
 * - requests: one record per HTTP request {backend, at, method, url, body, status, error};
 *   `at` is its arrival (Date.now()), `body` the request body (up to 64 KiB) once read;
 * - messages(): every Bayeux message of the JSON POST bodies, as {backend, at, ...message}.
 */
export async function startBalancer(backends) {
  const targets = backends.map((u) => new URL(u));
  let turn = 0;
  const next = () => { const i = turn; turn = (turn + 1) % targets.length; return i; };
  const counts = targets.map(() => 0);
  const upgrades = targets.map(() => 0);
  const upgradeLog = [];
  const requests = [];
  const agents = targets.map(() => new http.Agent({ keepAlive: true }));
  const sockets = new Set();
  const track = (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); };

  const server = http.createServer((req, res) => {
    const i = next();
    counts[i]++;
    const rec = { backend: i, at: Date.now(), method: req.method, url: req.url, body: '', status: undefined, error: undefined };
    requests.push(rec);
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k)) headers[k] = v;
    const up = http.request({
      host: targets[i].hostname, port: targets[i].port, method: req.method, path: req.url, headers, agent: agents[i],
    }, (pres) => {
      rec.status = pres.statusCode;
      const out = [];
      for (let k = 0; k < pres.rawHeaders.length; k += 2) {
        if (!HOP_BY_HOP.has(pres.rawHeaders[k].toLowerCase())) out.push(pres.rawHeaders[k], pres.rawHeaders[k + 1]);
      }
      res.writeHead(pres.statusCode, pres.statusMessage, out);
      pres.pipe(res);
      pres.on('error', () => res.destroy());
    });
    up.on('error', (e) => {
      rec.error = e.message;
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`balancer: backend ${i} failed: ${e.message}`);
      } else {
        res.destroy();
      }
    });
    const chunks = [];
    let size = 0;
    req.on('data', (c) => { if (size < BODY_LIMIT) { chunks.push(c); size += c.length; } });
    req.on('end', () => { rec.body = Buffer.concat(chunks).toString('utf8').slice(0, BODY_LIMIT); });
    req.pipe(up);
    // The client gave up (e.g. an aborted long-poll): give up upstream too.
    res.on('close', () => { if (!res.writableFinished) up.destroy(); });
  });
  server.on('connection', track);

  server.on('upgrade', (req, socket, head) => {
    const i = next();
    upgrades[i]++;
    upgradeLog.push({ backend: i, url: req.url });
    const conn = net.connect(Number(targets[i].port), targets[i].hostname);
    track(conn);
    let connected = false;
    const drop = () => { socket.destroy(); conn.destroy(); };
    socket.on('error', drop);
    socket.on('close', drop);
    conn.on('error', () => {
      if (connected || socket.destroyed) return drop();
      socket.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    conn.on('close', () => { if (connected) drop(); });
    conn.on('connect', () => {
      connected = true;
      let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let k = 0; k < req.rawHeaders.length; k += 2) text += `${req.rawHeaders[k]}: ${req.rawHeaders[k + 1]}\r\n`;
      conn.write(text + '\r\n');
      if (head && head.length) conn.write(head);
      socket.pipe(conn);
      conn.pipe(socket);
    });
  });

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    counts,
    upgrades,
    upgradeLog,
    requests,
    messages() {
      const out = [];
      for (const r of requests) {
        if (r.method !== 'POST' || !r.body.startsWith('[') && !r.body.startsWith('{')) continue;
        let parsed;
        try { parsed = JSON.parse(r.body); } catch { continue; }
        for (const m of [].concat(parsed)) if (m && typeof m === 'object') out.push({ backend: r.backend, at: r.at, ...m });
      }
      return out;
    },
    async stop() {
      const closed = new Promise((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      for (const a of agents) a.destroy();
      await closed;
    },
  };
}
