// Raw HTTP for wire-level tests: exact status, headers and body, any method and header.
import http from 'node:http';

/** One request; resolves to {status, headers, body} (body as a UTF-8 string). */
export function raw(url, { method = 'GET', headers = {}, body } = {}, ms = 10000) {
  return new Promise((resolve, reject) => {
    // agent:false: a fresh connection per request, so one reply cannot affect the next.
    const req = http.request(url, { method, headers, timeout: ms, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** POST a Bayeux message (object or array) as application/json; resolves to the parsed reply. */
export async function bayeuxPost(url, message, headers = {}) {
  const res = await raw(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(message) });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.body}`);
  return JSON.parse(res.body);
}

/** Handshake over long-polling; resolves to the client id. */
export async function handshake(url) {
  const [reply] = await bayeuxPost(url, { channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling', 'eventsource'], id: 'h' });
  if (!reply.successful) throw new Error('handshake failed: ' + JSON.stringify(reply));
  return reply.clientId;
}

/**
 * Open a streaming GET (eventsource); resolves to {res, text(), waitFor(re, ms), close()}
 * where text() is everything received so far.
 */
export function openStream(url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers, agent: false }, (res) => {
      let text = '';
      const waiters = new Set();
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; for (const w of waiters) w(); });
      resolve({
        res,
        text: () => text,
        waitFor(re, ms = 5000) {
          return new Promise((ok, fail) => {
            const check = () => { if (re.test(text)) { waiters.delete(check); clearTimeout(t); ok(text); } };
            const t = setTimeout(() => { waiters.delete(check); fail(new Error(`stream: no ${re} in ${JSON.stringify(text)}`)); }, ms);
            waiters.add(check);
            check();
          });
        },
        close() { req.destroy(); },
      });
    });
    req.on('error', reject);
    req.end();
  });
}
