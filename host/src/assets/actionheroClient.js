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
    var Faye;
    try { Faye = self._fayeModule(); } catch (e) { return callback(e); }

    self.state = 'connecting';
    if (!self.client) {
      self.client = new Faye.Client(self.options.host + self.options.fayePath, { retry: self.options.retry });
      (self.options.disable || []).forEach(function (t) { self.client.disable(t); });
      self.client.on('transport:down', function () {
        if (self.state === 'connected') {
          self.state = 'reconnecting';
          self.emit('disconnected');
        }
      });
      self.client.on('transport:up', function () {
        if (self.state === 'reconnecting') self._revalidate();
      });
    }
    self._setup(function (err, details) {
      if (err) {
        self.state = 'disconnected';
        return callback(err);
      }
      self.emit('connected');
      callback(null, details);
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
        finish(new Error('cannot subscribe to the connection channel: ' + (err && err.message || err)));
      });
    });
    setup.then(null, function (err) {
      finish(new Error('cannot subscribe to the setup channel: ' + (err && err.message || err)));
    });
  };

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
    Object.keys(pending).forEach(function (n) {
      var entry = pending[n];
      clearTimeout(entry.timer);
      entry.fn({ error: reason, context: 'response', messageCount: Number(n) });
    });
  };

  // After the transport came back: is our connection still there? If not, open a new
  // one and rejoin the rooms.
  ActionheroClient.prototype._revalidate = function () {
    var self = this;
    if (self._setupRunning) return;
    self._setupRunning = true;
    var renew = function () {
      setTimeout(function () {
        self._setup(function (err) {
          self._setupRunning = false;
          if (err) {
            self.state = 'reconnecting';
            return;
          }
          var rooms = self.rooms.slice();
          rooms.forEach(function (room) { self.send({ event: 'roomAdd', room: room }, function () {}); });
          self.emit('connected');
          self.emit('reconnected');
        });
      }, self.options.connectionDelay);
    };
    if (!self._channel) return renew();
    var checked = false;
    var check = function (ok) {
      if (checked) return;
      checked = true;
      if (!ok) return renew();
      self._setupRunning = false;
      self.state = 'connected';
      self.emit('connected');
      self.emit('reconnected');
    };
    self.send({ event: 'detailsView' }, function (response) {
      check(!response.error && response.status === 'OK');
    }, { timeout: Math.min(self.options.timeout, 5000), onRefused: function () { check(false); } });
  };

  // ---- sending ----

  ActionheroClient.prototype.send = function (args, callback, sendOptions) {
    var self = this;
    sendOptions = sendOptions || {};
    if (!self._channel || !self.client) {
      if (typeof callback === 'function') callback({ error: 'Error: not connected', context: 'response' });
      return;
    }
    self.messageCount++;
    var n = self.messageCount;
    if (typeof callback === 'function') {
      var timer = setTimeout(function () {
        if (!self.callbacks[n]) return;
        delete self.callbacks[n];
        callback({ error: 'Error: timeout', context: 'response', messageCount: n });
      }, sendOptions.timeout || self.options.timeout);
      self.callbacks[n] = { fn: callback, timer: timer };
    }
    var publication = self.client.publish(self._channel, args);
    if (publication && publication.then) {
      publication.then(null, function (err) {
        var entry = self.callbacks[n];
        if (entry) {
          delete self.callbacks[n];
          clearTimeout(entry.timer);
          entry.fn({ error: 'Error: ' + (err && err.message || 'refused'), context: 'response', messageCount: n });
        }
        if (sendOptions.onRefused) sendOptions.onRefused(err);
        else if (self.state === 'connected') self._revalidate();
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
