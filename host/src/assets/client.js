/*
 * Hero's browser Bayeux client, served at /faye/client.js (PROTOCOL.md 1.8).
 *
 * Written for this project: it speaks Bayeux to hero (or any faye-compatible server) and
 * exposes the part of faye's browser API that actionheroClient.js and typical pages use:
 *
 *   var client = new Faye.Client('/faye', {timeout: 60, retry: 5});
 *   var sub = client.subscribe('/chat', function (data) { ... });
 *   sub.then(function () { ... subscribed ... }, function (err) { ... });
 *   sub.cancel();
 *   client.publish('/chat', {text: 'hi'}).then(ok, failed);
 *   client.disable('websocket'); client.addExtension({incoming: fn, outgoing: fn});
 *   client.on('transport:up', fn); client.on('transport:down', fn); client.disconnect();
 *
 * Plain ES5, no build step. In Node it is `require`-able (module.exports); a websocket
 * constructor can be given as Faye.WebSocket, and long-polling uses fetch when there is no
 * XMLHttpRequest.
 */
(function (root) {
  'use strict';

  var Faye = { VERSION: '1.0' };

  var UNCONNECTED = 'UNCONNECTED', CONNECTING = 'CONNECTING',
      CONNECTED = 'CONNECTED', DISCONNECTED = 'DISCONNECTED';

  function later(fn, ms) { return setTimeout(fn, ms || 0); }
  function copy(obj) { var out = {}, k; for (k in obj) if (Object.prototype.hasOwnProperty.call(obj, k)) out[k] = obj[k]; return out; }
  function rethrowLater(e) { later(function () { throw e; }); }

  // ---------------------------------------------------------------------------------------
  // Promise-like results. Native Promise when there is one; the rejection is marked handled
  // so that an ignored failed publish neither crashes Node nor floods the console.
  function Deferred() {
    var self = this;
    if (typeof Promise === 'function') {
      this.promise = new Promise(function (resolve, reject) { self.resolve = resolve; self.reject = reject; });
      this.promise['catch'](function () {});
      return;
    }
    // Minimal fallback for very old browsers: callbacks, no chaining.
    var state = 0, value, queue = [];
    function settle(s, v) { if (state) return; state = s; value = v; flush(); }
    function flush() {
      while (state && queue.length) {
        var cbs = queue.shift(), fn = cbs[state - 1];
        if (typeof fn === 'function') fn(value);
      }
    }
    this.resolve = function (v) { settle(1, v); };
    this.reject = function (e) { settle(2, e); };
    this.promise = { then: function (ok, err) { queue.push([ok, err]); later(flush); return this; } };
  }
  function makeThenable(obj, deferred) {
    obj.then = function (ok, err) { return deferred.promise.then(ok, err); };
    obj['catch'] = function (err) { return deferred.promise.then(null, err); };
    return obj;
  }

  // A Bayeux error string "code:arg1,arg2:Message" as an Error with code and params.
  function bayeuxError(str) {
    str = String(str || '');
    var first = str.indexOf(':'), last = str.lastIndexOf(':');
    var err = new Error(first < 0 ? str : str.slice(last + 1));
    err.code = first < 0 ? null : parseInt(str.slice(0, first), 10);
    err.params = first < 0 || last <= first + 1 ? [] : str.slice(first + 1, last).split(',');
    err.bayeux = str;
    return err;
  }

  // Does a subscription pattern (a name, or a prefix + /* or /**) match a channel name?
  function channelMatches(pattern, name) {
    if (pattern === name) return true;
    var p = pattern.split('/'), n = name.split('/'), last = p[p.length - 1], i;
    if (last !== '*' && last !== '**') return false;
    if (last === '*' ? n.length !== p.length : n.length < p.length) return false;
    for (i = 0; i < p.length - 1; i++) if (p[i] !== n[i]) return false;
    return true;
  }

  // Run a message through the extensions' `stage` hooks in order; null drops it.
  function pipe(extensions, stage, message, done) {
    var i = 0;
    function next(msg) {
      if (!msg) return done(null);
      while (i < extensions.length && typeof extensions[i][stage] !== 'function') i++;
      if (i >= extensions.length) return done(msg);
      var ext = extensions[i++];
      try { ext[stage](msg, next); } catch (e) { rethrowLater(e); next(msg); }
    }
    next(message);
  }

  // An absolute http(s) URL for `url`, which may be relative to the page.
  function absoluteUrl(url) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(url) || !root.location) return url;
    var loc = root.location;
    if (url.slice(0, 2) === '//') return loc.protocol + url;
    if (url.charAt(0) === '/') return loc.protocol + '//' + loc.host + url;
    return loc.href.replace(/[^\/]*$/, '') + url;
  }
  function isCrossOrigin(url) {
    if (!root.location) return false;
    var m = /^([a-z]+:)\/\/([^\/]+)/i.exec(url);
    return !!m && (m[1] + '//' + m[2]).toLowerCase() !== (root.location.protocol + '//' + root.location.host).toLowerCase();
  }

  // ---------------------------------------------------------------------------------------
  // Transports. Both hand everything they receive to client._receive(list, transport) and
  // report failures with client._failed(ids, transport); replies are matched by message id
  // in the client, so a transport only moves batches.

  // long-polling: one POST of a JSON array per batch; the reply array comes back in the body.
  function LongPolling(client) {
    this.name = 'long-polling';
    this._client = client;
    this._active = [];   // abort functions of requests in flight, for close()
  }
  LongPolling.prototype.send = function (batch) {
    var client = this._client, self = this, ids = batch.map(function (m) { return m.id; });
    var finished = false, abort;
    function finish(text, failed) {
      if (finished) return;
      finished = true;
      self._active = self._active.filter(function (a) { return a !== abort; });
      var replies = null;
      if (!failed) { try { replies = JSON.parse(text); } catch (e) { replies = null; } }
      if (replies && typeof replies === 'object') client._receive([].concat(replies), self);
      else client._failed(ids, self);
    }
    var url = client._url, body = JSON.stringify(batch), cross = isCrossOrigin(url);
    if (root.XMLHttpRequest) {
      var xhr = new root.XMLHttpRequest();
      xhr.open('POST', url, true);
      xhr.setRequestHeader('Content-Type', 'application/json');
      if (cross) xhr.withCredentials = true;   // the server answers CORS with credentials
      xhr.onreadystatechange = function () {
        if (xhr.readyState !== 4) return;
        finish(xhr.responseText, xhr.status < 200 || xhr.status >= 300);
      };
      abort = function () { finished = true; xhr.abort(); };
      xhr.send(body);
    } else {
      // Node and workers: fetch. AbortController lets close() drop a held connect.
      var ctl = typeof AbortController === 'function' ? new AbortController() : null;
      abort = function () { finished = true; if (ctl) ctl.abort(); };
      root.fetch(url, {
        method: 'POST', body: body, headers: { 'Content-Type': 'application/json' },
        credentials: cross ? 'include' : 'same-origin', signal: ctl ? ctl.signal : undefined
      }).then(function (res) {
        return res.text().then(function (text) { finish(text, !res.ok); });
      }).then(null, function () { finish(null, true); });
    }
    this._active.push(abort);
  };
  LongPolling.prototype.close = function () {
    var active = this._active;
    this._active = [];
    active.forEach(function (abort) { abort(); });
  };

  // websocket: one socket, opened on first use; every frame is a JSON array. Batches sent
  // before the socket is open wait for it. If the socket never opens at all, websocket is
  // unusable here (proxy, old server): the client falls back to long-polling silently.
  function WebSocketTransport(client) {
    this.name = 'websocket';
    this._client = client;
    this._socket = null;
    this._open = false;
    this._everOpen = false;
    this._waiting = [];   // batches queued until the socket opens
    this._sent = {};      // ids sent on the current socket and not yet answered
  }
  WebSocketTransport.prototype.send = function (batch) {
    var self = this;
    batch.forEach(function (m) { self._sent[m.id] = true; });
    if (this._open) return this._socket.send(JSON.stringify(batch));
    this._waiting.push(batch);
    if (!this._socket) this._connect();
  };
  WebSocketTransport.prototype._connect = function () {
    var self = this, client = this._client, Ctor = Faye.WebSocket || root.WebSocket || root.MozWebSocket, socket;
    try {
      socket = new Ctor(client._url.replace(/^http/i, 'ws'));
    } catch (e) {
      return later(function () { self._closed(null); });
    }
    this._socket = socket;
    socket.onopen = function () {
      if (self._socket !== socket) return;
      self._open = self._everOpen = true;
      var waiting = self._waiting;
      self._waiting = [];
      waiting.forEach(function (batch) { socket.send(JSON.stringify(batch)); });
    };
    socket.onmessage = function (event) {
      if (self._socket !== socket) return;
      var messages;
      try { messages = JSON.parse(event.data); } catch (e) { return; }
      messages = [].concat(messages);
      messages.forEach(function (m) { if (m && m.id) delete self._sent[m.id]; });
      client._receive(messages, self);
    };
    // onerror is always followed by onclose; handle the loss once, there.
    socket.onclose = function () { if (self._socket === socket) self._closed(socket); };
  };
  WebSocketTransport.prototype._closed = function () {
    var client = this._client, waiting = this._waiting, ids = Object.keys(this._sent);
    var neverOpened = !this._everOpen;
    this._socket = null;
    this._open = false;
    this._waiting = [];
    this._sent = {};
    if (neverOpened && client._state !== DISCONNECTED) {
      // Silent fallback: resend what was waiting over long-polling, at once.
      client._websocketFailed();
      waiting.forEach(function (batch) { client._resend(batch); });
      return;
    }
    client._failed(ids, this);
  };
  // The socket looks open but swallows messages: fail what it holds and start afresh.
  WebSocketTransport.prototype.drop = function () {
    var socket = this._socket;
    this._closed();
    if (socket) { try { socket.close(); } catch (e) { /* already closing */ } }
  };
  WebSocketTransport.prototype.close = function () {
    var socket = this._socket;
    this._socket = null;
    this._open = false;
    this._waiting = [];
    this._sent = {};
    if (socket) { try { socket.close(); } catch (e) { /* already closing */ } }
  };

  // ---------------------------------------------------------------------------------------
  // Subscriptions: returned by client.subscribe; thenable (settled by the server's ack).
  function Subscription(client, channel, callback) {
    this._client = client;
    this.channel = channel;
    this._callback = callback;
    this._withChannel = null;
    this._deferred = new Deferred();
    makeThenable(this, this._deferred);
  }
  Subscription.prototype.cancel = function () { this._client._removeSubscription(this); };
  Subscription.prototype.unsubscribe = Subscription.prototype.cancel;
  // Like faye: a callback that also gets the concrete channel (useful with wildcards).
  Subscription.prototype.withChannel = function (fn) { this._withChannel = fn; return this; };

  // ---------------------------------------------------------------------------------------
  // The client.
  //
  // Life cycle: handshake over HTTP (always, like faye) -> pick websocket or long-polling ->
  // (re)subscribe every channel, send what waited, start the connect loop. A connect is held
  // by the server until it has deliveries or its timeout runs out; over websocket deliveries
  // are pushed and the connect reply is only a heartbeat. The server's advice decides what
  // follows a connect: retry (connect again after `interval`), handshake (new session, then
  // resubscribe) or none (stop). Transport failures retry after `retry` seconds.
  function Client(url, options) {
    options = options || {};
    this._url = absoluteUrl(url);
    this._retry = 1000 * (options.retry || 5);
    this._advice = { reconnect: 'retry', interval: 0, timeout: 1000 * (options.timeout || 60) };
    this._state = UNCONNECTED;
    this._clientId = null;
    this._nextId = 0;
    this._disabled = {};
    this._extensions = [];
    this._listeners = {};
    this._channels = {};      // channel -> {subs: [Subscription], acked: bool}
    this._pending = {};       // message id -> entry awaiting its reply
    this._waiting = [];       // entries to send once a session exists
    this._outbox = [];        // messages batched for the next flush
    this._flushTimer = null;
    this._timers = {};        // handshake / connect timers, cleared by disconnect()
    this._connectToken = null;  // identifies the one connect in flight (null: none)
    this._transportUp = null;
    this._http = new LongPolling(this);
    this._ws = null;
  }

  Client.prototype.getClientId = function () { return this._clientId; };
  Client.prototype.getState = function () { return this._state; };

  /** Turn a feature off; only 'websocket' means something here (forces long-polling). */
  Client.prototype.disable = function (feature) { this._disabled[feature] = true; };

  Client.prototype.addExtension = function (ext) { this._extensions.push(ext); };
  Client.prototype.removeExtension = function (ext) {
    this._extensions = this._extensions.filter(function (e) { return e !== ext; });
  };

  Client.prototype.on = Client.prototype.bind = function (event, fn) {
    (this._listeners[event] = this._listeners[event] || []).push(fn);
  };
  Client.prototype.off = Client.prototype.unbind = function (event, fn) {
    var list = this._listeners[event] || [];
    this._listeners[event] = fn ? list.filter(function (f) { return f !== fn; }) : [];
  };
  Client.prototype._emit = function (event, arg) {
    (this._listeners[event] || []).slice().forEach(function (fn) {
      try { fn(arg); } catch (e) { rethrowLater(e); }
    });
  };

  /** Start the session now instead of on the first subscribe/publish. */
  Client.prototype.connect = function () {
    if (this._state === DISCONNECTED) this._state = UNCONNECTED;   // a disconnected client may start again
    if (this._state === UNCONNECTED) this._handshake();
  };

  Client.prototype.subscribe = function (channel, callback) {
    var sub = new Subscription(this, channel, callback), record = this._channels[channel];
    if (record) {
      record.subs.push(sub);
      if (record.acked) sub._deferred.resolve();
      return sub;
    }
    this._channels[channel] = { subs: [sub], acked: false };
    if (this._state === CONNECTED) this._sendSubscribe(channel);
    else this.connect();   // the handshake subscribes every channel in _channels
    return sub;
  };

  Client.prototype.unsubscribe = function (channel, callback) {
    var record = this._channels[channel], self = this;
    if (!record) return;
    record.subs.slice().forEach(function (sub) {
      if (!callback || sub._callback === callback) self._removeSubscription(sub);
    });
  };

  Client.prototype._removeSubscription = function (sub) {
    var record = this._channels[sub.channel];
    if (!record) return;
    record.subs = record.subs.filter(function (s) { return s !== sub; });
    if (record.subs.length) return;
    // Last local subscriber gone: tell the server (if it knows us at all).
    delete this._channels[sub.channel];
    if (this._state === CONNECTED) this._send({ channel: '/meta/unsubscribe', subscription: sub.channel }, function () {});
  };

  Client.prototype._sendSubscribe = function (channel) {
    var self = this;
    this._send({ channel: '/meta/subscribe', subscription: channel }, function (reply) {
      var record = self._channels[channel];
      if (!record) return;   // cancelled meanwhile
      if (reply.successful) {
        record.acked = true;
        record.subs.forEach(function (s) { s._deferred.resolve(); });
      } else if (!self._isUnknownClient(reply)) {
        // Refused (403, 405, ...): the subscription will never deliver.
        delete self._channels[channel];
        var err = bayeuxError(reply.error);
        record.subs.forEach(function (s) { s._deferred.reject(err); });
      }
      // 401: the re-handshake subscribes the channel again and settles it then.
    });
  };

  Client.prototype.publish = function (channel, data) {
    var deferred = new Deferred(), publication = makeThenable({}, deferred);
    if (this._state === UNCONNECTED || this._state === DISCONNECTED) this.connect();
    this._send({ channel: channel, data: data }, function (reply) {
      if (reply.successful) deferred.resolve();
      else deferred.reject(bayeuxError(reply.error));
    });
    return publication;
  };

  Client.prototype.disconnect = function () {
    var deferred = new Deferred(), result = makeThenable({}, deferred), self = this;
    var wasConnected = this._state === CONNECTED;
    this._state = DISCONNECTED;
    this._connectToken = null;
    this._clearTimers();
    this._waiting = [];
    if (!wasConnected) {
      this._closeTransports();
      deferred.resolve();
      return result;
    }
    // Sent directly: _send would queue it, the client no longer being CONNECTED.
    this._dispatch({ id: this._newId(), message: { channel: '/meta/disconnect' }, onReply: function () {
      self._closeTransports();
      deferred.resolve();
    }, onFail: function () {
      self._closeTransports();
      deferred.resolve();
    } });
    return result;
  };

  Client.prototype._clearTimers = function () {
    var name;
    for (name in this._timers) clearTimeout(this._timers[name]);
    this._timers = {};
  };
  Client.prototype._closeTransports = function () {
    var id;
    for (id in this._pending) clearTimeout(this._pending[id].timer);
    this._pending = {};
    this._http.close();
    if (this._ws) this._ws.close();
    this._ws = null;
    this._clientId = null;
  };
  Client.prototype._schedule = function (name, fn, ms) {
    clearTimeout(this._timers[name]);
    var self = this;
    this._timers[name] = later(function () { delete self._timers[name]; fn.call(self); }, ms);
  };

  Client.prototype._newId = function () { return (++this._nextId).toString(36); };

  // The transport for session messages: websocket unless disabled, unsupported or broken.
  Client.prototype._transport = function () {
    var types = this._serverTypes || [];
    var wsOk = !this._disabled.websocket && (Faye.WebSocket || root.WebSocket || root.MozWebSocket) &&
               types.indexOf('websocket') >= 0;
    if (!wsOk) return this._http;
    return this._ws || (this._ws = new WebSocketTransport(this));
  };
  Client.prototype._websocketFailed = function () {
    this._disabled.websocket = true;
    this._ws = null;
  };

  // ---- session: handshake and connect loop ---------------------------------------------
  Client.prototype._handshake = function () {
    if (this._state !== UNCONNECTED) return;
    this._state = CONNECTING;
    this._clientId = null;
    var self = this, canWs = !this._disabled.websocket && (Faye.WebSocket || root.WebSocket || root.MozWebSocket);
    var message = {
      channel: '/meta/handshake', version: '1.0',
      supportedConnectionTypes: canWs ? ['websocket', 'long-polling'] : ['long-polling']
    };
    // Always over HTTP, like faye: the transport is chosen from the server's answer.
    this._dispatch({ id: this._newId(), message: message, via: this._http, onReply: function (reply) {
      if (self._state !== CONNECTING) return;
      if (reply.successful) return self._handshaken(reply);
      self._state = UNCONNECTED;
      if (self._advice.reconnect === 'none') return self._stop();
      self._schedule('handshake', self._handshake, Math.max(self._advice.interval, self._retry));
    }, onFail: function () {
      if (self._state !== CONNECTING) return;
      self._state = UNCONNECTED;
      self._schedule('handshake', self._handshake, self._retry);
    } });
  };

  Client.prototype._handshaken = function (reply) {
    var channel, waiting = this._waiting;
    this._clientId = reply.clientId;
    this._serverTypes = reply.supportedConnectionTypes || ['long-polling'];
    this._state = CONNECTED;
    this._waiting = [];
    // A new session knows none of our channels: subscribe them all (before anything that
    // waited, so a publish to our own channel comes back to us), then start connecting.
    for (channel in this._channels) {
      this._channels[channel].acked = false;
      this._sendSubscribe(channel);
    }
    for (var i = 0; i < waiting.length; i++) this._dispatch(waiting[i]);
    this._connect();
  };

  Client.prototype._connect = function () {
    if (this._state !== CONNECTED || this._connectToken) return;
    // The token makes a late answer to a connect of an earlier session harmless: only the
    // current connect may schedule the next one, so there is never more than one loop.
    var self = this, token = this._connectToken = {};
    this._send({ channel: '/meta/connect', connectionType: this._transport().name }, function (reply) {
      if (self._connectToken !== token) return;
      self._connectToken = null;
      if (self._state !== CONNECTED) return;
      var reconnect = self._advice.reconnect;
      if (reconnect === 'none') return self._stop();
      if (reconnect === 'handshake' || self._isUnknownClient(reply)) return self._rehandshake();
      self._schedule('connect', self._connect, reply.successful ? self._advice.interval : Math.max(self._advice.interval, self._retry));
    }, function () {
      if (self._connectToken !== token) return;
      self._connectToken = null;
      if (self._state === CONNECTED) self._schedule('connect', self._connect, self._retry);
    });
  };

  // The server lost our session (restart, expiry): start a new one. Messages that got 401
  // are queued again and go out with the new client id.
  Client.prototype._rehandshake = function () {
    if (this._state !== CONNECTED) return;
    this._state = UNCONNECTED;
    this._clientId = null;
    this._connectToken = null;
    this._schedule('handshake', this._handshake, this._advice.interval);
  };

  Client.prototype._stop = function () {
    this._state = DISCONNECTED;
    this._connectToken = null;
    this._clearTimers();
    this._closeTransports();
  };

  Client.prototype._isUnknownClient = function (reply) {
    return !reply.successful && /^401:/.test(reply.error || '');
  };

  // ---- sending ---------------------------------------------------------------------------
  // _send: a session message. Without a session it waits for the handshake.
  Client.prototype._send = function (message, onReply, onFail) {
    var entry = { id: this._newId(), message: message, onReply: onReply, onFail: onFail };
    if (this._state === CONNECTED) this._dispatch(entry);
    else if (this._state !== DISCONNECTED || message.channel === '/meta/disconnect') this._waiting.push(entry);
  };

  // _dispatch: stamp id and client id, run outgoing extensions, batch for this tick.
  Client.prototype._dispatch = function (entry) {
    var self = this, message = copy(entry.message);
    message.id = entry.id;
    if (this._clientId && message.channel !== '/meta/handshake') message.clientId = this._clientId;
    pipe(this._extensions, 'outgoing', message, function (msg) {
      if (!msg) return;   // an extension dropped it
      var via = entry.via || self._transport();
      entry.sentVia = via;
      clearTimeout(entry.timer);
      self._pending[entry.id] = entry;
      // No reply within 1.2 x the server's hold time means the request is lost.
      entry.timer = later(function () { self._timedOut(entry); }, 1.2 * self._advice.timeout || self._retry);
      self._outbox.push({ message: msg, via: via });
      if (!self._flushTimer) self._flushTimer = later(function () { self._flush(); });
    });
  };

  // Everything queued in one tick leaves as one batch per transport. A connect that shares
  // its batch must not be held by the server, or the others would wait the whole timeout.
  Client.prototype._flush = function () {
    var outbox = this._outbox, batches = [], i, j, batch;
    this._flushTimer = null;
    this._outbox = [];
    for (i = 0; i < outbox.length; i++) {
      for (j = 0; j < batches.length && batches[j].via !== outbox[i].via; j++);
      if (j === batches.length) batches.push({ via: outbox[i].via, messages: [] });
      batches[j].messages.push(outbox[i].message);
    }
    for (i = 0; i < batches.length; i++) {
      batch = batches[i].messages;
      if (batch.length > 1) {
        for (j = 0; j < batch.length; j++) {
          if (batch[j].channel === '/meta/connect') batch[j].advice = { timeout: 0 };
        }
      }
      batches[i].via.send(batch);
    }
  };

  // A batch the websocket could not take (it never opened): the same messages over HTTP.
  Client.prototype._resend = function (batch) {
    var self = this;
    batch = batch.filter(function (m) { return self._pending[m.id]; });
    batch.forEach(function (m) {
      self._pending[m.id].sentVia = self._http;
      if (m.channel === '/meta/connect') m.connectionType = self._http.name;
    });
    if (batch.length) this._http.send(batch);
  };

  Client.prototype._timedOut = function (entry) {
    if (this._pending[entry.id] !== entry) return;
    // A websocket that swallows messages is dead even if it looks open: drop it.
    if (this._ws && entry.sentVia === this._ws) return this._ws.drop();
    this._failed([entry.id], null);
  };

  // Transport failure for these message ids: connect/handshake have their own retry logic;
  // other messages are sent again after `retry`.
  Client.prototype._failed = function (ids, transport) {
    var self = this;
    this._setTransportUp(false);
    ids.forEach(function (id) {
      var entry = self._pending[id];
      if (!entry) return;
      delete self._pending[id];
      clearTimeout(entry.timer);
      if (entry.onFail) return entry.onFail();
      later(function () {
        if (self._state === CONNECTED) self._dispatch(entry);
        else if (self._state !== DISCONNECTED) self._waiting.push(entry);
      }, self._retry);
    });
  };

  Client.prototype._setTransportUp = function (up) {
    if (this._transportUp === up) return;
    this._transportUp = up;
    this._emit(up ? 'transport:up' : 'transport:down');
  };

  // ---- receiving -------------------------------------------------------------------------
  Client.prototype._receive = function (messages, transport) {
    var self = this;
    this._setTransportUp(true);
    messages.forEach(function (message) {
      if (!message || typeof message !== 'object') return;
      pipe(self._extensions, 'incoming', message, function (msg) { if (msg) self._handle(msg); });
    });
  };

  Client.prototype._handle = function (message) {
    if (message.advice) {
      var advice = message.advice, key;
      for (key in advice) this._advice[key] = advice[key];
    }
    if (message.successful !== undefined) return this._reply(message);
    if (message.data !== undefined && message.channel) this._deliver(message);
  };

  Client.prototype._reply = function (reply) {
    var entry = this._pending[reply.id];
    if (!entry) return;
    delete this._pending[reply.id];
    clearTimeout(entry.timer);
    var ch = entry.message.channel;
    if (this._isUnknownClient(reply) && ch !== '/meta/connect' && ch !== '/meta/handshake' &&
        ch !== '/meta/disconnect' && ch !== '/meta/unsubscribe') {
      // Our session is gone. Publishes wait for the new one; subscribes are redone by it.
      if (ch !== '/meta/subscribe' && this._state !== DISCONNECTED) this._waiting.push(entry);
      this._rehandshake();
      if (ch !== '/meta/subscribe') return;
    }
    entry.onReply(reply);
  };

  // One delivery: every local subscription whose pattern matches gets it once.
  Client.prototype._deliver = function (message) {
    var pattern, record, i, sub;
    for (pattern in this._channels) {
      if (!channelMatches(pattern, message.channel)) continue;
      record = this._channels[pattern];
      for (i = 0; i < record.subs.length; i++) {
        sub = record.subs[i];
        try {
          if (sub._callback) sub._callback.call(null, message.data);
          if (sub._withChannel) sub._withChannel.call(null, message.channel, message.data);
        } catch (e) { rethrowLater(e); }
      }
    }
  };

  Faye.Client = Client;
  Faye.Subscription = Subscription;
  Faye.channelMatches = channelMatches;

  if (typeof module === 'object' && module && module.exports) module.exports = Faye;
  if (typeof window !== 'undefined') window.Faye = Faye;
})(typeof window !== 'undefined' ? window : (typeof self !== 'undefined' ? self : (typeof globalThis !== 'undefined' ? globalThis : this)));
