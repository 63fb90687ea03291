/*
 * actionheroClient.js: the browser (and Node) client of Hero's websocket server protocol.
 *
 * Speaks PROTOCOL 2 over a Bayeux client with faye's API. In a browser, load
 * /faye/client.js first (it defines window.Faye); in Node pass the faye module:
 *
 *   var ActionheroClient = require('./actionheroClient.js');
 *   var client = new ActionheroClient({ faye: require('faye'), host: 'http://127.0.0.1:8080' });
 *
 * Events: connected, disconnected, reconnected, message, alert, api, welcome, say.
 * state: 'disconnected' | 'connecting' | 'connected' | 'reconnecting'.
 *
 * Responses are matched to callbacks by messageCount: the server counts the messages it
 * receives on a connection, and so does this client. A new connection starts both
 * counts at zero, so after a reconnect they stay in step.
 */
(function (root, factory) {
  var ActionheroClient = factory(root);
  if (typeof module === 'object' && module.exports) {
    module.exports = ActionheroClient;
    module.exports.ActionheroClient = ActionheroClient;
    module.exports.default = ActionheroClient;
  }
  if (root) {
    root.ActionheroClient = ActionheroClient;
    root.actionheroClient = ActionheroClient;
  }
})(typeof window !== 'undefined' ? window : (typeof self !== 'undefined' ? self : null), function (root) {
  'use strict';

  var CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

  function randomString(length) {
    var out = '';
    var cryptoObj = (root && root.crypto) || (typeof globalThis !== 'undefined' && globalThis.crypto);
    if (cryptoObj && cryptoObj.getRandomValues) {
      var bytes = new Uint8Array(length);
      cryptoObj.getRandomValues(bytes);
      for (var i = 0; i < length; i++) out += CHARS.charAt(bytes[i] % CHARS.length);
    } else {
      for (var j = 0; j < length; j++) out += CHARS.charAt(Math.floor(Math.random() * CHARS.length));
    }
    return out;
  }

  function defaults() {
    return {
      host: (root && root.location) ? root.location.origin : 'http://127.0.0.1:8080',
      fayePath: '/faye',
      apiPath: '/api',
      setupChannel: '/client/websocket/_incoming/' + randomString(24),
      channelPrefix: '/client/websocket/connection/',
      connectionDelay: 200,
      timeout: 60 * 1000,
      retry: 10,
      disable: [],
      faye: null
    };
  }

  function ActionheroClient(options) {
    if (!(this instanceof ActionheroClient)) return new ActionheroClient(options);
    var opts = defaults();
    options = options || {};
    for (var k in options) {
      if (Object.prototype.hasOwnProperty.call(options, k) && options[k] !== undefined) opts[k] = options[k];
    }
    this.options = opts;
    this.state = 'disconnected';
    this.id = null;
    this.details = null;
    this.rooms = [];
    this.messageCount = 0;
    this.callbacks = {};
    this.events = {};
    this.client = null;
    this._queue = [];
    this._channel = null;
    this._subscription = null;
    this._generation = 0;
    this._setupRunning = false;
  }

  // ---- events ----

  ActionheroClient.prototype.on = function (event, fn) {
    (this.events[event] = this.events[event] || []).push(fn);
    return this;
  };

  ActionheroClient.prototype.off = function (event, fn) {
    var list = this.events[event];
    if (!list) return this;
    this.events[event] = fn ? list.filter(function (f) { return f !== fn; }) : [];
    return this;
  };

  ActionheroClient.prototype.emit = function (event) {
    var args = Array.prototype.slice.call(arguments, 1);
    var list = (this.events[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i].apply(this, args); } catch (e) { if (typeof console !== 'undefined') console.error(e); }
    }
  };

  // ---- connecting ----

  ActionheroClient.prototype._fayeModule = function () {
    if (this.options.faye) return this.options.faye;
    if (root && root.Faye) return root.Faye;
    throw new Error('actionheroClient: no Bayeux client; load /faye/client.js or pass {faye: require("faye")}');
  };

  ActionheroClient.prototype.connect = function (callback) {
    var self = this;
    callback = typeof callback === 'function' ? callback : function () {};
    if (self.state === 'connected') return callback(null, self.details);
    try {
      if (!self.client) self._createFaye();
    } catch (e) {
      return callback(e);
    }
    self.state = 'connecting';
    self._setup(function (err, details) {
      if (err) {
        self.state = 'disconnected';
        return callback(err);
      }
      self.emit('connected');
      callback(null, details);
    });
  };

  // A Bayeux client, watched for transport changes and lost sessions.
  ActionheroClient.prototype._createFaye = function () {
    var self = this;
    var Faye = self._fayeModule();
    var faye = new Faye.Client(self.options.host + self.options.fayePath, { retry: self.options.retry });
    self.client = faye;
    (self.options.disable || []).forEach(function (t) { faye.disable(t); });
    faye.on('transport:down', function () {
      if (self.client !== faye || self.state !== 'connected') return;
      self.state = 'reconnecting';
      self.emit('disconnected');
      // Ask the server as soon as the transport allows: a held connect may not be
      // answered for a long while, so transport:up alone could come late.
      setTimeout(function () { if (self.state === 'reconnecting') self._revalidate(); }, self.options.connectionDelay);
    });
    faye.on('transport:up', function () {
      if (self.client === faye && self.state === 'reconnecting') self._revalidate();
    });
    // A second successful handshake means the Bayeux session was lost, and with it
    // the connection: open a new one.
    var handshakes = 0;
    faye.addExtension({
      incoming: function (message, next) {
        if (message.channel === '/meta/handshake' && message.successful) {
          handshakes++;
          if (handshakes > 1 && self.client === faye) setTimeout(function () { self._renew(false); }, 0);
        }
        next(message);
      }
    });
  };

  // Opens a new connection: setup channel -> id -> connection channel -> detailsView.
  // Both message counts start at zero on the new connection.
  ActionheroClient.prototype._setup = function (callback) {
    var self = this;
    var generation = ++self._generation;
    var done = false;
    var finish = function (err, details) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      callback(err, details);
    };
    var timer = setTimeout(function () { finish(new Error('connection setup timed out')); }, self.options.timeout);

    self._dropConnection('Error: connection lost', true);
    var setupChannel = self.options.setupChannel;
    var setup = self.client.subscribe(setupChannel, function (message) {
      if (!message || typeof message.id !== 'string' || generation !== self._generation || self.id) return;
      setup.cancel();
      self.id = message.id;
      self.messageCount = 0;
      self._channel = self.options.channelPrefix + message.id;
      var sub = self.client.subscribe(self._channel, function (m) { self._handleMessage(m, generation); });
      self._subscription = sub;
      sub.then(function () {
        self.state = 'connected';
        self.detailsView(function (error, details) {
          if (error) return finish(new Error(error));
          finish(null, details);
        });
      }, function (err) {
        finish(setupError('cannot subscribe to the connection channel', err));
      });
    });
    setup.then(null, function (err) {
      finish(setupError('cannot subscribe to the setup channel', err));
    });
  };

  function setupError(what, err) {
    var e = new Error(what + ': ' + (err && err.message || err));
    e.code = err && err.code;
    return e;
  }

  // Forgets the current connection; its pending callbacks get `reason`. The channel is
  // unsubscribed only while the Bayeux client lives on (`keepFaye`): an unsubscribe
  // queued behind a Bayeux disconnect would be retried against a closed session.
  ActionheroClient.prototype._dropConnection = function (reason, keepFaye) {
    if (keepFaye && this._subscription) {
      try { this._subscription.cancel(); } catch (e) { /* already gone */ }
    }
    this._subscription = null;
    this._channel = null;
    this.id = null;
    var pending = this.callbacks;
    this.callbacks = {};
    var limbo = this._limbo = this._limbo || {};
    if (!keepFaye) {
      var queued = this._queue || [];
      this._queue = [];
      queued.forEach(function (q) {
        if (typeof q.callback === 'function') q.callback({ error: reason, context: 'response' });
      });
    }
    Object.keys(pending).forEach(function (n) {
      var entry = pending[n];
      if (keepFaye && !entry.acked) {
        // Not acknowledged yet: the server may still refuse it (the old session is
        // gone), and then it is sent again on the new connection; keep it for that.
        limbo[n] = entry;
        return;
      }
      clearTimeout(entry.timer);
      entry.fn({ error: reason, context: 'response', messageCount: Number(n) });
    });
  };

  // After the transport came back: is our connection still there? If not, open a new
  // one and rejoin the rooms.
  ActionheroClient.prototype._revalidate = function () {
    var self = this;
    if (self._setupRunning || !self.client) return;
    if (!self._channel) return self._renew(false);
    self._setupRunning = true;
    var checked = false;
    var check = function (ok) {
      if (checked) return;
      checked = true;
      self._setupRunning = false;
      if (!ok) return self._renew(self._lostSession);
      self.state = 'connected';
      self.emit('connected');
      self.emit('reconnected');
      self._flush();
    };
    self.send({ event: 'detailsView' }, function (response) {
      check(!response.error && response.status === 'OK');
    }, { force: true, onRefused: function (err) { self._lostSession = !!(err && err.code === 401); check(false); } });
  };

  // Opens a new connection (both counts restart at zero), rejoins the rooms, then sends
  // what was queued meanwhile. `fresh`: the Bayeux session is gone (401), so start a new
  // Bayeux client too.
  ActionheroClient.prototype._renew = function (fresh, attempt) {
    var self = this;
    attempt = attempt || 0;
    if ((self._setupRunning && !attempt) || !self.client) return;
    self._setupRunning = true;
    if (self.state === 'connected') {
      self.state = 'reconnecting';
      self.emit('disconnected');
    }
    setTimeout(function () {
      if (!self.client || self.state === 'disconnected') { self._setupRunning = false; return; }
      if (fresh) {
        var old = self.client;
        self.client = null;
        try { old.disconnect(); } catch (e) { /* its session is gone already */ }
        // Its session is dead, so that disconnect fails and faye would keep its last
        // connect alive; close its transport outright when the client exposes one.
        if (old._dispatcher && typeof old._dispatcher.close === 'function') old._dispatcher.close();
        self._createFaye();
      }
      self._setup(function (err) {
        if (err) {
          self.state = 'reconnecting';
          if (attempt < 10) return self._renew(err.code === 401, attempt + 1);
          self._setupRunning = false;
          return;
        }
        self._setupRunning = false;
        self.rooms.slice().forEach(function (room) {
          self.send({ event: 'roomAdd', room: room }, function () {});
        });
        self.emit('connected');
        self.emit('reconnected');
        self._flush();
      });
    }, self.options.connectionDelay * (attempt + 1));
  };

  // Sends the messages queued while reconnecting.
  ActionheroClient.prototype._flush = function () {
    var queued = this._queue || [];
    this._queue = [];
    for (var i = 0; i < queued.length; i++) this.send(queued[i].args, queued[i].callback);
  };

  // ---- sending ----

  ActionheroClient.prototype.send = function (args, callback, sendOptions) {
    var self = this;
    sendOptions = sendOptions || {};
    if (!self.client || self.state === 'disconnected') {
      if (typeof callback === 'function') callback({ error: 'Error: not connected', context: 'response' });
      return;
    }
    if (!sendOptions.force && (self.state !== 'connected' || !self._channel)) {
      // Reconnecting: sent on the new connection once it is up.
      (self._queue = self._queue || []).push({ args: args, callback: callback });
      return;
    }
    self.messageCount++;
    var n = self.messageCount;
    if (typeof callback === 'function') {
      var timer = setTimeout(function () {
        var limbo = self._limbo || {};
        if (!self.callbacks[n] && !limbo[n]) return;
        delete self.callbacks[n];
        delete limbo[n];
        callback({ error: 'Error: timeout', context: 'response', messageCount: n });
      }, sendOptions.timeout || self.options.timeout);
      self.callbacks[n] = { fn: callback, timer: timer };
    }
    var publication = self.client.publish(self._channel, args);
    if (publication && publication.then) {
      publication.then(function () {
        var entry = self.callbacks[n];
        if (entry) entry.acked = true;
        // Acknowledged after the connection was renewed: it ran on the old one, whose
        // answer is lost with it.
        var orphan = self._limbo && self._limbo[n];
        if (orphan) {
          delete self._limbo[n];
          clearTimeout(orphan.timer);
          orphan.fn({ error: 'Error: connection lost', context: 'response', messageCount: n });
        }
      }, function (err) {
        var limbo = self._limbo || {};
        var entry = self.callbacks[n] || limbo[n];
        delete limbo[n];
        if (entry) {
          delete self.callbacks[n];
          clearTimeout(entry.timer);
        }
        if (sendOptions.onRefused) {
          if (entry) entry.fn({ error: 'Error: ' + (err && err.message || 'refused'), context: 'response', messageCount: n });
          sendOptions.onRefused(err);
          return;
        }
        // Refused: the connection is gone (403), or the whole Bayeux session (401). Send
        // it again on a new connection.
        (self._queue = self._queue || []).push({ args: args, callback: entry ? entry.fn : callback });
        self._renew(!!(err && err.code === 401));
      });
    }
  };

  ActionheroClient.prototype._handleMessage = function (message, generation) {
    if (!message || generation !== this._generation) return;
    this.emit('message', message);
    if (message.status === 'ClientDisconnect') {
      this.state = 'disconnected';
      this._dropConnection('Error: disconnected by the server');
      this._stopFaye();
      this.emit('disconnected', message);
      return;
    }
    if (message.context === 'response') {
      var entry = this.callbacks[message.messageCount];
      if (entry) {
        delete this.callbacks[message.messageCount];
        clearTimeout(entry.timer);
        entry.fn(message);
      }
    } else if (message.context === 'user') {
      this.emit('say', message);
    } else if (message.context === 'alert') {
      this.emit('alert', message);
    } else if (message.welcome && message.context === 'api') {
      this.welcome = message.welcome;
      this.emit('welcome', message);
    } else if (message.context === 'api') {
      this.emit('api', message);
    }
  };

  // (error, response): error is the response's error or a status other than OK.
  function errorFirst(callback) {
    if (typeof callback !== 'function') return undefined;
    return function (response) {
      var error = response.error || (response.status && response.status !== 'OK' ? response.status : null);
      callback(error || null, response);
    };
  }

  // ---- the API ----

  ActionheroClient.prototype.action = function (action, params, callback) {
    if (typeof params === 'function') { callback = params; params = {}; }
    params = params || {};
    var merged = {};
    for (var k in params) if (Object.prototype.hasOwnProperty.call(params, k)) merged[k] = params[k];
    merged.action = action;
    if (this.state !== 'connected' || !this._channel) return this._actionWeb(merged, callback);
    this.send({ event: 'action', params: merged }, callback);
  };

  // Over HTTP while not connected: POST JSON to the API path.
  ActionheroClient.prototype._actionWeb = function (params, callback) {
    var url = this.options.host + this.options.apiPath;
    var body = JSON.stringify(params);
    var deliver = function (response) { if (typeof callback === 'function') callback(response); };
    var fail = function (err) { deliver({ error: 'Error: ' + (err && err.message || err), context: 'response' }); };
    var fetchFn = (root && root.fetch) || (typeof fetch === 'function' ? fetch : null);
    if (fetchFn) {
      fetchFn.call(root, url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body, credentials: 'include' })
        .then(function (res) { return res.json(); })
        .then(deliver, fail);
      return;
    }
    if (root && root.XMLHttpRequest) {
      var xhr = new root.XMLHttpRequest();
      xhr.open('POST', url, true);
      xhr.setRequestHeader('Content-Type', 'application/json');
      xhr.onload = function () {
        try { deliver(JSON.parse(xhr.responseText)); } catch (e) { fail(e); }
      };
      xhr.onerror = function () { fail(new Error('request failed')); };
      xhr.send(body);
      return;
    }
    fail(new Error('no HTTP client available'));
  };

  ActionheroClient.prototype.say = function (room, message, callback) {
    this.send({ event: 'say', room: room, message: message }, errorFirst(callback));
  };

  ActionheroClient.prototype.file = function (file, callback) {
    this.send({ event: 'file', file: file }, callback);
  };

  ActionheroClient.prototype.detailsView = function (callback) {
    var self = this;
    this.send({ event: 'detailsView' }, function (response) {
      if (!response.error && response.data) self.details = response.data;
      if (typeof callback === 'function') errorFirst(callback)(response);
    });
  };

  ActionheroClient.prototype.roomView = function (room, callback) {
    this.send({ event: 'roomView', room: room }, errorFirst(callback));
  };

  ActionheroClient.prototype.roomAdd = function (room, callback) {
    var self = this;
    this.send({ event: 'roomAdd', room: room }, function (response) {
      if (!response.error && response.status === 'OK' && self.rooms.indexOf(room) < 0) self.rooms.push(room);
      if (typeof callback === 'function') errorFirst(callback)(response);
    });
  };

  ActionheroClient.prototype.roomLeave = function (room, callback) {
    var i = this.rooms.indexOf(room);
    if (i >= 0) this.rooms.splice(i, 1);
    this.send({ event: 'roomLeave', room: room }, errorFirst(callback));
  };

  // Leaves every room and joins `room` (the actionhero 8.0 verb).
  ActionheroClient.prototype.roomChange = function (room, callback) {
    var self = this;
    this.send({ event: 'roomChange', room: room }, function (response) {
      if (!response.error && response.status === 'OK') self.rooms = [room];
      if (typeof callback === 'function') errorFirst(callback)(response);
    });
  };

  ActionheroClient.prototype.listenToRoom = function (room, callback) {
    this.send({ event: 'listenToRoom', room: room }, errorFirst(callback));
  };

  ActionheroClient.prototype.silenceRoom = function (room, callback) {
    this.send({ event: 'silenceRoom', room: room }, errorFirst(callback));
  };

  ActionheroClient.prototype.documentation = function (callback) {
    this.send({ event: 'documentation' }, callback);
  };

  ActionheroClient.prototype._stopFaye = function () {
    var client = this.client;
    this.client = null;
    if (client) {
      try { client.disconnect(); } catch (e) { /* already closed */ }
    }
  };

  ActionheroClient.prototype.disconnect = function () {
    var was = this.state;
    this.state = 'disconnected';
    this._generation++;
    this._dropConnection('Error: disconnected');
    this._stopFaye();
    if (was !== 'disconnected') this.emit('disconnected');
  };

  ActionheroClient.prototype.randomString = randomString;

  return ActionheroClient;
});
