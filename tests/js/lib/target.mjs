// Which Bayeux server the faye-* tests talk to: hero (default) or the real npm faye server
// (TARGET=faye), so the tests are first proven against the reference implementation.
import { startHero } from './hero.mjs';
import { startFayeServer } from './faye-server.mjs';

/** 'hero' or 'faye'. */
export const TARGET = process.env.TARGET === 'faye' ? 'faye' : 'hero';

/** True when assertions about rules that only hero implements (PROTOCOL 1.6 etc.) apply. */
export const HERO = TARGET === 'hero';

/**
 * Start the selected server; resolves to {url, port, bayeux, stop()} where `bayeux` is the
 * Bayeux endpoint URL. `port` reuses a port (server restart tests).
 */
export async function startTarget({ port = 0 } = {}) {
  const s = TARGET === 'faye' ? await startFayeServer({ port }) : await startHero([], { port });
  return { ...s, bayeux: `${s.url}/faye` };
}
