// The Hero chat page: join a room, see who is there, talk, watch others come and go.
// Uses the host's /faye/client.js and /public/javascript/actionheroClient.js.
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var client = new ActionheroClient();
  var currentRoom = null;

  function short(id) { return String(id || '').slice(0, 8); }

  function setStatus(text) { $('status').textContent = text; document.body.dataset.state = text; }

  function showError(text) { $('error').textContent = text || ''; }

  function appendLine(message, cssClass) {
    var line = document.createElement('div');
    line.className = 'line ' + (cssClass || '');
    if (message.from !== undefined) {
      var from = document.createElement('span');
      from.className = 'from';
      from.textContent = message.from === client.id ? 'me' : short(message.from);
      line.appendChild(from);
    }
    var text = document.createElement('span');
    text.className = 'text';
    text.textContent = typeof message.message === 'string' ? message.message : JSON.stringify(message.message);
    line.appendChild(text);
    $('log').appendChild(line);
    $('log').scrollTop = $('log').scrollHeight;
  }

  function renderMembers(view) {
    var list = $('members');
    list.innerHTML = '';
    var members = view ? view.members || {} : {};
    Object.keys(members).forEach(function (id) {
      var li = document.createElement('li');
      li.textContent = id === client.id ? short(id) + ' (me)' : short(id);
      li.dataset.id = id;
      if (id === client.id) li.className = 'me';
      list.appendChild(li);
    });
    $('membersCount').textContent = view ? view.membersCount : 0;
  }

  function refreshMembers() {
    if (!currentRoom) return renderMembers(null);
    client.roomView(currentRoom, function (error, response) {
      if (error) return showError(error);
      renderMembers(response.data);
    });
  }

  function setJoined(room) {
    currentRoom = room;
    $('leave').disabled = !room;
    $('message').disabled = !room;
    $('send').disabled = !room;
    $('join').disabled = !!room;
    $('room').disabled = !!room;
    document.body.dataset.room = room || '';
    refreshMembers();
  }

  client.on('connected', function () { setStatus('connected'); $('me').textContent = client.id; });
  client.on('disconnected', function () { setStatus(client.state); });
  client.on('welcome', function (m) { appendLine({ message: m.welcome }, 'notice'); });
  client.on('alert', function (m) { showError(m.message); });
  client.on('say', function (m) {
    if (m.room !== currentRoom) return;
    appendLine(m);
    // Joins and leaves arrive as messages from the joiner; the member list follows them.
    if (m.message === 'I have entered the room' || m.message === 'I have left the room' ||
        m.from === 'server') {
      refreshMembers();
    }
  });

  $('joinForm').addEventListener('submit', function (e) {
    e.preventDefault();
    var room = $('room').value.trim();
    if (!room) return showError('a room is required');
    showError('');
    client.roomAdd(room, function (error) {
      if (error) return showError(error);
      appendLine({ message: 'you joined ' + room }, 'notice');
      setJoined(room);
    });
  });

  $('leave').addEventListener('click', function () {
    var room = currentRoom;
    client.roomLeave(room, function (error) {
      if (error) return showError(error);
      appendLine({ message: 'you left ' + room }, 'notice');
      setJoined(null);
    });
  });

  $('sayForm').addEventListener('submit', function (e) {
    e.preventDefault();
    var text = $('message').value;
    if (!text || !currentRoom) return;
    client.say(currentRoom, text, function (error) {
      if (error) return showError(error);
      appendLine({ from: client.id, message: text }, 'mine');
      $('message').value = '';
    });
  });

  setStatus('connecting');
  client.connect(function (error) {
    if (error) { setStatus('disconnected'); return showError(String(error.message || error)); }
    setStatus('connected');
  });
  window.chatClient = client;
})();
