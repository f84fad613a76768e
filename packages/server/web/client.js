// imi browser client: a terminal-like page for one WebSocket connection to
// the intermediary. No framework, no dependency: scrollback, an input line
// with history, ANSI colours, hidden input while the app turns echo off
// (passwords), and reconnection with backoff that resumes the same session.
//
// It speaks the imi.v1 subprotocol: text frames are output, binary frames
// are control messages (one JSON object each), e.g. {"type":"echo","visible":false}.
//
// Resume: the server gives the page a token ({"type":"session","token":…});
// when the connection drops, the page reconnects offering "imi.resume" too
// and sends {"type":"resume","token":…,"received":N} first (N: output
// messages it has), never in the URL. The server answers with a new token
// and how many of the page's lines it got; the page sends the rest, then
// the lines typed while disconnected. The page acknowledges output now and
// then ({"type":"ack","received":N}) so the server keeps only what it may
// have to replay. The token lives in this page's memory only.
(function () {
  'use strict';

  var MAX_LINES = 2000; // scrollback
  var MAX_HISTORY = 100;
  var MIN_DELAY_MS = 500; // reconnect backoff: min * 2^attempt, capped, with jitter
  var MAX_DELAY_MS = 10000;
  var PROTOCOL = 'imi.v1'; // asks for control messages (binary frames of JSON)
  var RESUME_PROTOCOL = 'imi.resume'; // "my first message is a resume"
  var REFUSED = { 4001: true, 4002: true, 4003: true }; // a resume refused for good: start a new session
  var SERVICE_RESTART = 1012; // the intermediary is being upgraded: resume at once
  var MAX_UNSENT = 200; // lines typed while disconnected
  var MAX_UNCONFIRMED = 500; // lines sent, kept until the server says it got them
  var ACK_EVERY = 32; // acknowledge output after this many messages…
  var ACK_DELAY_MS = 500; // …or this long after the first unacknowledged one

  var output = document.getElementById('output');
  var input = document.getElementById('input');
  var form = document.getElementById('line');
  var status = document.getElementById('status');
  var pathMeta = document.querySelector('meta[name="imi-ws-path"]');
  var path = pathMeta && pathMeta.content.charAt(0) === '/' ? pathMeta.content : '/ws';
  var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;

  // ------------------------------------------------------------ output

  var current = null; // the line being written to
  var pending = ''; // an escape sequence cut at the end of a message
  var style = blankStyle();

  function blankStyle() {
    return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };
  }

  function newLine() {
    current = document.createElement('div');
    current.className = 'line';
    output.appendChild(current);
    while (output.childElementCount > MAX_LINES) output.removeChild(output.firstElementChild);
  }

  function atBottom() {
    return output.scrollHeight - output.scrollTop - output.clientHeight < 40;
  }

  function colour(n) {
    if (n < 16) return n;
    if (n < 232) {
      var levels = [0, 95, 135, 175, 215, 255];
      var i = n - 16;
      return 'rgb(' + levels[Math.floor(i / 36)] + ',' + levels[Math.floor(i / 6) % 6] + ',' + levels[i % 6] + ')';
    }
    var grey = 8 + 10 * (n - 232);
    return 'rgb(' + grey + ',' + grey + ',' + grey + ')';
  }

  function paint(element, value, property, prefix) {
    if (value === null) return;
    if (typeof value === 'number') element.classList.add(prefix + value);
    else element.style[property] = value;
  }

  function append(text, className) {
    if (text === '') return;
    if (current === null) newLine();
    var plain = !className && style.fg === null && style.bg === null && !style.bold && !style.dim && !style.italic && !style.underline && !style.inverse;
    if (plain) {
      current.appendChild(document.createTextNode(text));
      return;
    }
    var span = document.createElement('span');
    span.textContent = text;
    if (className) span.className = className;
    if (style.bold) span.classList.add('b');
    if (style.dim) span.classList.add('d');
    if (style.italic) span.classList.add('i');
    if (style.underline) span.classList.add('u');
    var fg = style.fg;
    var bg = style.bg;
    if (style.inverse) {
      fg = bg === null ? 'var(--bg)' : bg;
      bg = style.fg === null ? 'var(--fg)' : style.fg;
    }
    paint(span, fg, 'color', 'fg');
    paint(span, bg, 'background', 'bg');
    current.appendChild(span);
  }

  function extended(codes, i, set) {
    // 38;5;n (256 colours) or 38;2;r;g;b (truecolor); returns how many codes it used.
    if (codes[i + 1] === 5 && i + 2 < codes.length) {
      set(colour(codes[i + 2] & 255));
      return 2;
    }
    if (codes[i + 1] === 2 && i + 4 < codes.length) {
      set('rgb(' + (codes[i + 2] & 255) + ',' + (codes[i + 3] & 255) + ',' + (codes[i + 4] & 255) + ')');
      return 4;
    }
    return 0;
  }

  function sgr(params) {
    var codes = params === '' ? [0] : params.split(';').map(function (p) { return p === '' ? 0 : parseInt(p, 10) || 0; });
    for (var i = 0; i < codes.length; i++) {
      var c = codes[i];
      if (c === 0) style = blankStyle();
      else if (c === 1) style.bold = true;
      else if (c === 2) style.dim = true;
      else if (c === 3) style.italic = true;
      else if (c === 4) style.underline = true;
      else if (c === 7) style.inverse = true;
      else if (c === 22) style.bold = style.dim = false;
      else if (c === 23) style.italic = false;
      else if (c === 24) style.underline = false;
      else if (c === 27) style.inverse = false;
      else if (c >= 30 && c <= 37) style.fg = c - 30;
      else if (c === 38) i += extended(codes, i, function (v) { style.fg = v; });
      else if (c === 39) style.fg = null;
      else if (c >= 40 && c <= 47) style.bg = c - 40;
      else if (c === 48) i += extended(codes, i, function (v) { style.bg = v; });
      else if (c === 49) style.bg = null;
      else if (c >= 90 && c <= 97) style.fg = c - 90 + 8;
      else if (c >= 100 && c <= 107) style.bg = c - 100 + 8;
    }
  }

  /** Writes text from the server: ANSI SGR sequences become styles, other controls are dropped. */
  function render(text) {
    var follow = atBottom();
    text = pending + text;
    pending = '';
    var run = '';
    var i = 0;
    while (i < text.length) {
      var ch = text.charAt(i);
      if (ch === '\x1b') {
        append(run);
        run = '';
        if (i + 1 >= text.length) {
          pending = text.slice(i);
          break;
        }
        if (text.charAt(i + 1) !== '[') {
          i += 2; // a two-character escape: nothing to show
          continue;
        }
        var j = i + 2;
        while (j < text.length && (text.charCodeAt(j) < 0x40 || text.charCodeAt(j) > 0x7e)) j++;
        if (j >= text.length) {
          if (j - i < 64) pending = text.slice(i);
          break;
        }
        if (text.charAt(j) === 'm') sgr(text.slice(i + 2, j));
        i = j + 1;
        continue;
      }
      if (ch === '\n') {
        append(run);
        run = '';
        newLine();
      } else if (ch === '\t' || ch >= ' ') {
        run += ch;
      } // CR, BEL and other controls are dropped
      i++;
    }
    append(run);
    if (follow) output.scrollTop = output.scrollHeight;
  }

  function note(text) {
    var follow = atBottom();
    if (current !== null && current.childNodes.length > 0) newLine();
    append(text, 'note');
    newLine();
    if (follow) output.scrollTop = output.scrollHeight;
  }

  // ------------------------------------------------------------ connection

  var ws = null;
  var attempt = 0;
  var everConnected = false;
  var countdown = null;
  var ready = false; // lines may be sent on ws (a new session is open, or a resume was accepted)
  var token = null; // the current resume token
  var got = 0; // output messages received in this session
  var acked = 0; // … of which the server was told
  var ackTimer = null;
  var unconfirmed = []; // lines sent that the server has not confirmed (the last MAX_UNCONFIRMED)
  var confirmedBase = 0; // lines of this session before unconfirmed[0]
  var unsent = []; // lines typed while not connected

  function setStatus(state, text) {
    status.setAttribute('data-state', state);
    status.textContent = text;
  }

  function sendControl(socket, message) {
    socket.send(new TextEncoder().encode(JSON.stringify(message)));
  }

  /** Sends a line on the open session, keeping it until the server confirms it. */
  function transmit(line) {
    ws.send(line);
    unconfirmed.push(line);
    if (unconfirmed.length > MAX_UNCONFIRMED) {
      unconfirmed.shift();
      confirmedBase++;
    }
  }

  /** The session is usable: lines typed meanwhile go now. */
  function becomeReady(text) {
    ready = true;
    attempt = 0;
    setStatus('connected', 'connected');
    if (text) note(text);
    var lines = unsent;
    unsent = [];
    for (var i = 0; i < lines.length; i++) transmit(lines[i]);
  }

  /** A new session: nothing of the old one carries over. */
  function forgetSession() {
    token = null;
    got = 0;
    acked = 0;
    unconfirmed = [];
    confirmedBase = 0;
    setEcho(true);
  }

  function scheduleAck() {
    if (ws === null || !ready || token === null) return;
    if (got - acked >= ACK_EVERY) {
      clearTimeout(ackTimer);
      ackTimer = null;
      acked = got;
      sendControl(ws, { type: 'ack', received: got });
    } else if (ackTimer === null) {
      ackTimer = setTimeout(function () {
        ackTimer = null;
        if (ws !== null && ready && got > acked) {
          acked = got;
          sendControl(ws, { type: 'ack', received: got });
        }
      }, ACK_DELAY_MS);
    }
  }

  /** Applies a control message (a binary frame); unknown ones are ignored. */
  function control(data) {
    var message;
    try {
      message = JSON.parse(new TextDecoder().decode(data));
    } catch (error) {
      return;
    }
    if (message === null || typeof message !== 'object') return;
    if (message.type === 'echo' && typeof message.visible === 'boolean') setEcho(message.visible);
    else if (message.type === 'session' && typeof message.token === 'string') {
      token = message.token;
      if (message.resumed !== true || typeof message.received !== 'number') return;
      // Lines the server got are done; the rest (lost with the old connection) go again, in order.
      var done = message.received - confirmedBase;
      var again = unconfirmed.slice(Math.max(0, Math.min(done, unconfirmed.length)));
      confirmedBase = message.received;
      unconfirmed = [];
      acked = got;
      unsent = again.concat(unsent);
      becomeReady('(reconnected: same session)');
    }
  }

  function connect() {
    clearInterval(countdown);
    setStatus(attempt === 0 && !everConnected ? 'connecting' : 'reconnecting', attempt === 0 && !everConnected ? 'connecting…' : 'connection lost — reconnecting…');
    var resuming = token !== null;
    var socket = new WebSocket(url, resuming ? [PROTOCOL, RESUME_PROTOCOL] : PROTOCOL);
    socket.binaryType = 'arraybuffer';
    ws = socket;
    ready = false;
    socket.onopen = function () {
      if (resuming) {
        sendControl(socket, { type: 'resume', token: token, received: got });
        return;
      }
      var again = everConnected;
      everConnected = true;
      becomeReady(again ? '(reconnected)' : '');
    };
    socket.onmessage = function (event) {
      if (typeof event.data === 'string') {
        got++;
        render(event.data);
        scheduleAck();
      } else control(event.data);
    };
    socket.onclose = function (event) {
      if (ws !== socket) return;
      ws = null;
      ready = false;
      if (REFUSED[event.code] || (token === null && resuming)) {
        note('(the session could not be resumed: starting a new one)');
        forgetSession();
      } else if (token === null) forgetSession(); // no token: the next connection is a new session, with echo on
      if (event.code === SERVICE_RESTART) attempt = 0;
      scheduleReconnect(event.code === SERVICE_RESTART ? 100 : undefined);
    };
  }

  function scheduleReconnect(soon) {
    var base = soon !== undefined ? soon : Math.min(MAX_DELAY_MS, MIN_DELAY_MS * Math.pow(2, attempt));
    attempt++;
    var delay = Math.round(base * (0.8 + Math.random() * 0.4));
    var due = Date.now() + delay;
    var tell = function () {
      var left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setStatus('reconnecting', 'connection lost — reconnecting in ' + left + ' s…');
    };
    tell();
    countdown = setInterval(tell, 1000);
    setTimeout(connect, delay);
  }

  // ------------------------------------------------------------ input

  var history = [];
  var position = 0; // history[position] is shown; history.length is the draft
  var draft = '';
  var hidden = false; // the app turned echo off: a password is being typed

  /**
   * Echo off: the input is masked, and what is sent is neither shown in the
   * scrollback nor kept in the history. Echo on again: a hidden line left
   * unsent is cleared rather than shown.
   */
  function setEcho(visible) {
    if (hidden === !visible) return;
    hidden = !visible;
    if (visible) input.value = '';
    input.type = visible ? 'text' : 'password';
    input.setAttribute('autocomplete', 'off');
    form.setAttribute('data-echo', visible ? 'on' : 'off');
    input.placeholder = visible ? '' : 'hidden input';
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var line = input.value;
    if (ws === null || ws.readyState !== WebSocket.OPEN || !ready) {
      if (unsent.length >= MAX_UNSENT) {
        note('(not connected, and too many lines waiting: your line is kept in the field)');
        return;
      }
      unsent.push(line);
      note('(not connected: your line will be sent when the connection is back)');
    } else transmit(line);
    if (hidden) {
      input.value = '';
      return;
    }
    append(line, 'echo');
    newLine();
    output.scrollTop = output.scrollHeight;
    if (line !== '' && history[history.length - 1] !== line) {
      history.push(line);
      if (history.length > MAX_HISTORY) history.shift();
    }
    position = history.length;
    draft = '';
    input.value = '';
  });

  input.addEventListener('keydown', function (event) {
    if (hidden) return; // no history in or out of a hidden line
    if (event.key === 'ArrowUp' && position > 0) {
      if (position === history.length) draft = input.value;
      position--;
      input.value = history[position];
      event.preventDefault();
    } else if (event.key === 'ArrowDown' && position < history.length) {
      position++;
      input.value = position === history.length ? draft : history[position];
      event.preventDefault();
    }
  });

  output.addEventListener('mouseup', function () {
    if (String(window.getSelection()) === '') input.focus();
  });

  // Leaving the page ends the session now (a normal close), rather than
  // leaving it parked for the resume window.
  window.addEventListener('pagehide', function () {
    if (ws !== null) ws.close(1000);
  });

  connect();
})();
