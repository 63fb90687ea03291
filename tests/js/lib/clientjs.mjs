// Loads our browser Bayeux client (host/src/assets/client.js) into Node, as a page would
// load it: the script runs as is; Node lacks WebSocket, so faye-websocket's W3C-style client
// is handed to it as Faye.WebSocket (long-polling uses fetch when there is no XHR).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import vm from 'node:vm';

const require = createRequire(import.meta.url);
/** Path of the client script. */
export const clientJsPath = fileURLToPath(new URL('../../../host/src/assets/client.js', import.meta.url));

/** A fresh copy of the `Faye` namespace defined by client.js. */
export function loadClientJs() {
  const source = readFileSync(clientJsPath, 'utf8');
  const run = vm.compileFunction(source, ['module', 'exports'], { filename: clientJsPath });
  const module = { exports: {} };
  run(module, module.exports);
  const Faye = module.exports;
  Faye.WebSocket = require('faye-websocket').Client;
  return Faye;
}
