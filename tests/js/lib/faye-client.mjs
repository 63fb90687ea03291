// The real npm faye client (1.4.3) for Node, loaded from CommonJS.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** The `faye` module: `new faye.Client(url, options)`. */
export const faye = require('faye');

/** A faye client with short retry so reconnect tests stay quick; disconnect it when done. */
export function fayeClient(url, { websocket = true, ...options } = {}) {
  const client = new faye.Client(url, { retry: 1, ...options });
  if (!websocket) client.disable('websocket');
  return client;
}

/**
 * Disconnect faye clients and wait for the server's answers (bounded): a client whose
 * disconnect never reached the server keeps timers alive and the test process with them.
 */
export async function disconnectAll(clients, ms = 5000) {
  let timer;
  await Promise.race([
    Promise.all(clients.map((c) => Promise.resolve(c.disconnect()).catch(() => {}))),
    new Promise((resolve) => { timer = setTimeout(resolve, ms); }),
  ]);
  clearTimeout(timer);
}
