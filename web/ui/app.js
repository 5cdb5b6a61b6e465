/* dagq web UI core: the token (kept in sessionStorage only), API calls, the
 * hash router, polling that stops when the view changes, small helpers. */
'use strict';
var dq = {};

dq.base = 'api/v1/';
dq.me = null; // whoami: {token, role, operator, author, admin}

dq.token = function () { return sessionStorage.getItem('dagq.token'); };

/* fetch wrapper: JSON in and out, the token in the Authorization header
 * (never a cookie: no CSRF). Rejects with {status, error, detail}. */
dq.api = function (method, path, body, raw) {
  var opts = { method: method, headers: {} };
  var t = dq.token();
  if (t) opts.headers['Authorization'] = 'Bearer ' + t;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  return fetch(dq.base + path, opts).then(function (r) {
    /* a token refused now (revoked, expired): back to the login page; answers
     * to requests of a token since replaced are ignored */
    if (r.status === 401 && t && t === dq.token() && path !== 'whoami') dq.logout('your token was refused: log in again');
    if (raw) return r;
    return r.text().then(function (txt) {
      var j = null;
      try { j = txt ? JSON.parse(txt) : null; } catch (e) { j = { error: 'bad answer', detail: txt }; }
      if (!r.ok) throw { status: r.status, error: j && j.error, detail: j && j.detail };
      return j;
    });
  });
};
dq.get = function (p) { return dq.api('GET', p); };

dq.esc = function (s) {
  return String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g, function (c) {
    return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
  });
};
dq.enc = encodeURIComponent;
dq.ts = function (s) { return s ? String(s).replace('T', ' ').replace(/\.\d+/, '').replace('+00:00', '') : ''; };
dq.dur = function (sec) {
  if (sec === null || sec === undefined) return '';
  sec = Math.max(0, sec);
  if (sec < 60) return sec.toFixed(1) + 's';
  if (sec < 3600) return Math.floor(sec / 60) + 'm' + Math.round(sec % 60) + 's';
  return Math.floor(sec / 3600) + 'h' + Math.round((sec % 3600) / 60) + 'm';
};
dq.secs = function (a, b) { return a ? ((b ? Date.parse(b) : Date.now()) - Date.parse(a)) / 1000 : null; };
dq.main = function () { return document.getElementById('main'); };
dq.errText = function (e) { return e && e.detail ? e.detail : (e && e.message) || String(e); };
dq.showError = function (e) {
  var m = dq.main();
  m.insertAdjacentHTML('afterbegin', '<p class="err" id="page-error">' + dq.esc(dq.errText(e)) + '</p>');
};

/* polling: one timer set per view, cleared when the route changes */
dq.timers = [];
dq.poll = function (fn, ms) {
  var stopped = false, id;
  var run = function () {
    if (stopped) return;
    Promise.resolve().then(fn).catch(function () {}).then(function () {
      if (!stopped) id = setTimeout(run, ms);
    });
  };
  id = setTimeout(run, ms);
  dq.timers.push(function () { stopped = true; clearTimeout(id); });
};
dq.stopTimers = function () { dq.timers.forEach(function (f) { f(); }); dq.timers = []; };

/* routes: '#/dags/x/graph?run=3' -> handler('dags/x/graph', {run: '3'}) */
dq.routes = [];
dq.route = function (re, fn) { dq.routes.push([re, fn]); };
dq.query = function () {
  var h = location.hash, i = h.indexOf('?'), q = {};
  if (i >= 0) h.slice(i + 1).split('&').forEach(function (kv) {
    var p = kv.split('='); if (p[0]) q[decodeURIComponent(p[0])] = decodeURIComponent(p[1] || '');
  });
  return q;
};
dq.render = function () {
  dq.stopTimers();
  dq.closeDialog && dq.closeDialog();
  if (!dq.token()) return dq.loginPage();
  var h = location.hash.replace(/^#\/?/, '').replace(/\?.*$/, '');
  for (var i = 0; i < dq.routes.length; i++) {
    var m = h.match(dq.routes[i][0]);
    if (m) return dq.routes[i][1].apply(null, m.slice(1).map(decodeURIComponent).concat([dq.query()]));
  }
  dq.main().innerHTML = '<p class="err">no such page</p>';
};

dq.loginPage = function (why) {
  document.getElementById('who').textContent = '';
  document.getElementById('logout').hidden = true;
  dq.main().innerHTML = '<form class="login" id="login-form"><h1>dagq</h1>' +
    '<p>Paste an API token (<code>dagq tokens create --name NAME --role viewer</code>). It is kept in ' +
    'this browser tab only.</p><input id="token" type="password" autocomplete="off" placeholder="dagq_...">' +
    '<button class="primary" id="login-btn" type="submit">Log in</button>' +
    '<p class="err" id="login-error">' + dq.esc(why || '') + '</p></form>';
  document.getElementById('login-form').onsubmit = function (ev) {
    ev.preventDefault();
    sessionStorage.setItem('dagq.token', document.getElementById('token').value.trim());
    (dq.whoamiP = dq.whoami()).then(dq.render, function (e) {
      sessionStorage.removeItem('dagq.token');
      dq.loginPage(dq.errText(e));
    });
  };
};
dq.logout = function (why) {
  sessionStorage.removeItem('dagq.token');
  dq.me = null;
  dq.stopTimers();
  dq.loginPage(why);
};
dq.whoami = function () {
  return dq.get('whoami').then(function (me) {
    dq.me = me;
    document.getElementById('who').textContent = me.token + ' (' + me.role + ')';
    document.getElementById('logout').hidden = false;
    return me;
  });
};
dq.canOperate = function () { return !!(dq.me && dq.me.operator); };
