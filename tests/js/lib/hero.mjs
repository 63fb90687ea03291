// Starts the real `hero` binary on a free port and stops it when the test ends.
//
// HERO_BIN names the binary (the Rust test wrapper sets it); it defaults to the debug build.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const heroBin = process.env.HERO_BIN || path.join(root, 'target/debug/hero');

/**
 * Start hero with extra CLI args (and env); resolves to {url, port, proc, logs, stop()}.
 * The port is read from the "listening on http://ADDR:PORT" log line.
 * `port` (default 0 = any free port) lets a test restart hero on the SAME port.
 */
export async function startHero(args = [], { env = {}, cwd = root, timeoutMs = 20000, port: wantPort = 0, bin = heroBin } = {}) {
  // HERO_BIN is for this harness only: hero reads HERO_* variables as configuration and
  // rejects unknown keys, so it must not see it.
  const { HERO_BIN: _bin, ...inherited } = process.env;
  const proc = spawn(bin, ['--bind', '127.0.0.1', '--port', String(wantPort), ...args], {
    cwd,
    env: { ...inherited, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = [];
  const collect = (stream) => createInterface({ input: stream }).on('line', (l) => logs.push(l));
  collect(proc.stderr);
  const port = await new Promise((resolve, reject) => {
    // A hero that never says it listens is killed, not left behind.
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('hero did not start:\n' + logs.join('\n'))); }, timeoutMs);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`hero exited with ${code}:\n` + logs.join('\n'))); });
    // A missing binary is an 'error' event, not an exit: fail at once with a clear message.
    proc.once('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${heroBin} (build it: cargo build -p hero): ${e.message}`)); });
    createInterface({ input: proc.stdout }).on('line', (line) => {
      logs.push(line);
      const m = /listening on http:\/\/[^\s]*:(\d+)/.exec(line);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url, port, proc, logs,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await once(proc, 'exit');
    },
  };
}
