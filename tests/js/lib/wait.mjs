// Bounded waiting helpers: tests wait on events, never on fixed sleeps, and never forever.

/** Reject with `label` if `promise` does not settle within `ms`. */
export function within(ms, promise, label = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

/**
 * A queue of values pushed by callbacks (e.g. Bayeux deliveries) that a test can await:
 * `next()` resolves with the next value, `take(n)` with the next n values.
 */
export class Inbox {
  constructor() { this.items = []; this.waiters = []; }
  push = (v) => {
    const w = this.waiters.shift();
    if (w) w(v); else this.items.push(v);
  };
  next(ms = 10000, label = 'message') {
    if (this.items.length) return Promise.resolve(this.items.shift());
    let waiter;
    const p = new Promise((resolve) => { waiter = resolve; this.waiters.push(waiter); });
    // On timeout the waiter is withdrawn, so a later value is not handed to nobody.
    return within(ms, p, label).catch((e) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw e;
    });
  }
  async take(n, ms = 10000, label = 'messages') {
    const out = [];
    const deadline = Date.now() + ms;
    while (out.length < n) out.push(await this.next(Math.max(1, deadline - Date.now()), `${label} (${out.length}/${n})`));
    return out;
  }
}

/** Resolve when `emitter` (a faye client: `on`/`bind`) emits `event`. */
export function onceFaye(client, event, ms = 10000) {
  return within(ms, new Promise((resolve) => client.on(event, resolve)), event);
}
