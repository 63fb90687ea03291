// A real redis-server for the cluster tests: a free port, no persistence, killed and
// restarted at will. Spoken to over a raw socket in RESP (no client library needed).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const redisBin = process.env.REDIS_SERVER || '/usr/bin/redis-server';

/** A free TCP port on 127.0.0.1: bind port 0, read it, close. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** RESP encoding of one command. */
function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

/** An error reply from Redis (`-ERR ...`). */
export class RedisError extends Error {}

/** Parses one RESP value from `buf` at `i`; returns [value, next] or undefined if incomplete. */
function parse(buf, i = 0) {
  const eol = buf.indexOf('\r\n', i);
  if (eol < 0) return undefined;
  const kind = String.fromCharCode(buf[i]);
  const line = buf.toString('utf8', i + 1, eol);
  const after = eol + 2;
  switch (kind) {
    case '+': return [line, after];
    case '-': return [new RedisError(line), after];
    case ':': return [Number(line), after];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, after];
      if (buf.length < after + n + 2) return undefined;
      return [buf.toString('utf8', after, after + n), after + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, after];
      const items = [];
      let at = after;
      for (let k = 0; k < n; k++) {
        const r = parse(buf, at);
        if (!r) return undefined;
        items.push(r[0]);
        at = r[1];
      }
      return [items, at];
    }
    default: throw new Error(`RESP: unexpected reply type ${JSON.stringify(kind)}`);
  }
}

/**
 * One command on a fresh connection to 127.0.0.1:`port`; resolves to the reply (string,
 * number, array, null) and rejects on an error reply, a refused connection or after `ms`.
 */
export function redisCommand(port, args, ms = 5000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`redis ${args[0]} on ${port} timed out after ${ms} ms`)); }, ms);
    const done = (fn, v) => { clearTimeout(timer); socket.destroy(); fn(v); };
    socket.on('connect', () => socket.write(encode(args)));
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let r;
      try { r = parse(buf); } catch (e) { return done(reject, e); }
      if (!r) return;
      if (r[0] instanceof RedisError) done(reject, r[0]); else done(resolve, r[0]);
    });
    socket.on('error', (e) => done(reject, e));
    socket.on('close', () => done(reject, new Error(`redis ${args[0]} on ${port}: connection closed`)));
  });
}

/**
 * Start redis-server on a free port (or `port`), without persistence; resolves once it
 * answers PING. Returns {port, url, pid, logs, command(...args), stop(), kill(), restart()}:
 * kill() is SIGKILL; restart() kills it if it runs and starts an empty one on the same port.
 */
export async function startRedis({ port, timeoutMs = 10000 } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'hero-redis-'));
  const logs = [];
  let proc;
  let wantPort = port || (await freePort());

  async function launch() {
    const args = ['--port', String(wantPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no', '--loglevel', 'notice'];
    const p = spawn(redisBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    for (const s of [p.stdout, p.stderr]) createInterface({ input: s }).on('line', (l) => logs.push(l));
    const failed = new Promise((_, reject) => {
      p.once('error', (e) => reject(new Error(`cannot start ${redisBin}: ${e.message}`)));
      p.once('exit', (code, sig) => reject(new Error(`redis-server exited (${code ?? sig}):\n${logs.join('\n')}`)));
    });
    failed.catch(() => {});
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const pong = await Promise.race([redisCommand(wantPort, ['PING'], 1000), failed]);
        if (pong === 'PONG') return;
      } catch (e) {
        if (p.exitCode !== null || p.signalCode !== null || /cannot start/.test(e.message)) throw e;
        if (Date.now() > deadline) throw new Error(`redis-server on ${wantPort} did not answer PING within ${timeoutMs} ms:\n${logs.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  const running = () => proc && proc.exitCode === null && proc.signalCode === null;
  async function signal(sig, ms = 5000) {
    if (!running()) return;
    const exited = once(proc, 'exit');
    proc.kill(sig);
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(resolve, ms, 'late'); });
    if ((await Promise.race([exited, late])) === 'late') { proc.kill('SIGKILL'); await exited; }
    clearTimeout(timer);
  }

  try {
    await launch();
  } catch (e) {
    await signal('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    port: wantPort,
    url: `redis://127.0.0.1:${wantPort}`,
    get pid() { return proc.pid; },
    get running() { return running(); },
    logs,
    /** Runs one command, e.g. command('DBSIZE'), command('INFO', 'clients'). */
    command: (...args) => redisCommand(wantPort, args),
    /** SIGKILL, no goodbye to the clients. */
    kill: () => signal('SIGKILL'),
    /** Kills it (if running) and starts an empty redis on the same port. */
    async restart() {
      await signal('SIGKILL');
      logs.push('--- restart ---');
      await launch();
    },
    async stop() {
      await signal('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
