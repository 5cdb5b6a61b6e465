/* a DAG's grid: runs x tasks coloured by state, from one compact call
 * (GET dags/{dag}/grid), rows virtualised so 2,000 tasks cost what the
 * screen shows; a cell opens the task instance and its log */
'use strict';
dq.CODES = { c: 'scheduled', q: 'queued', r: 'running', s: 'success', f: 'failed', y: 'up_for_retry',
             u: 'upstream_failed', k: 'skipped', '-': 'none' };
dq.ROW = 20;

/* task indexes in topological order (upstreams first), by name within a layer */
dq.topoOrder = function (n, edges, names) {
  var indeg = new Array(n).fill(0), down = [], layer = new Array(n).fill(0), i;
  for (i = 0; i < n; i++) down.push([]);
  edges.forEach(function (e) { down[e[0]].push(e[1]); indeg[e[1]]++; });
  var q = [], order = [];
  for (i = 0; i < n; i++) if (!indeg[i]) q.push(i);
  while (q.length) {
    var u = q.pop();
    order.push(u);
    down[u].forEach(function (v) { layer[v] = Math.max(layer[v], layer[u] + 1); if (!--indeg[v]) q.push(v); });
  }
  for (i = 0; i < n; i++) if (indeg[i] > 0) order.push(i); /* cannot happen: the DB refuses cycles */
  return order.sort(function (a, b) { return layer[a] - layer[b] || (names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0); });
};

dq.gridPage = function (dag) {
  dq.main().innerHTML = dq.dagHeader(dag, 'grid') + '<div class="layout"><div class="left"><div id="grid">' +
    '<div id="grid-head"></div><div id="grid-body"><div id="grid-space"></div><div id="grid-rows"></div></div>' +
    '</div></div><div id="ti-panel" hidden></div></div>';
  var st = { dag: dag, g: null, order: null, key: '' };
  var body = document.getElementById('grid-body');
  body.onscroll = function () { requestAnimationFrame(function () { dq.gridRows(st); }); };
  document.getElementById('grid-rows').onclick = function (ev) {
    var c = ev.target.closest('.cell');
    if (c) dq.openTask(st, +c.dataset.run, c.dataset.task);
  };
  document.getElementById('grid-head').onclick = function (ev) {
    var c = ev.target.closest('.runcol');
    if (c) dq.openRun(st, +c.dataset.run);
  };
  var load = function () {
    return dq.get('dags/' + dq.enc(dag) + '/grid?runs=25').then(function (g) {
      var key = g.tasks.join('\n') + '|' + g.edges.length;
      if (key !== st.key) { st.order = dq.topoOrder(g.tasks.length, g.edges, g.tasks); st.key = key; }
      st.g = g;
      dq.gridHead(st);
      dq.gridRows(st);
      if (!window.dqGridRendered) window.dqGridRendered = performance.now();
      document.getElementById('grid').dataset.rendered = '1';
    });
  };
  dq.get('dags/' + dq.enc(dag)).then(function (d) { dq.dagActions(dag, d.is_paused); }, dq.showError);
  dq.refresh = function () { return load().then(function () { if (st.panel) st.panel(); }); };
  load().catch(dq.showError);
  dq.poll(dq.refresh, 2000);
};

dq.gridHead = function (st) {
  var g = st.g;
  document.getElementById('grid-head').innerHTML = '<div class="gname muted">' + g.tasks.length + ' tasks, ' +
    g.runs.length + ' runs</div>' + g.runs.map(function (r) {
      return '<div class="runcol st-' + r.state + (st.selRun === r.run_id && !st.selTask ? ' sel' : '') +
        '" data-run="' + r.run_id + '" title="run ' + r.run_id + ' ' + r.state + ' ' + dq.esc(dq.ts(r.logical_date)) + '"></div>';
    }).join('');
};

/* only the rows on screen */
dq.gridRows = function (st) {
  var g = st.g, body = document.getElementById('grid-body');
  if (!g || !body) return;
  var n = st.order.length, h = dq.ROW;
  document.getElementById('grid-space').style.height = (n * h) + 'px';
  var first = Math.max(0, Math.floor(body.scrollTop / h) - 5);
  var last = Math.min(n, first + Math.ceil(body.clientHeight / h) + 10);
  var out = [];
  for (var k = first; k < last; k++) {
    var i = st.order[k], name = dq.esc(g.tasks[i]);
    var cells = g.runs.map(function (r, j) {
      var s = dq.CODES[g.cells[j].charAt(i) || '-'];
      var sel = st.selRun === r.run_id && st.selTask === g.tasks[i] ? ' sel' : '';
      return '<div class="cell st-' + s + sel + '" data-run="' + r.run_id + '" data-task="' + name + '" data-state="' + s +
        '" title="' + name + ', run ' + r.run_id + ': ' + s + '"></div>';
    }).join('');
    out.push('<div class="grow" data-task="' + name + '"><div class="gname" title="' + name + '">' + name + '</div>' + cells + '</div>');
  }
  var rows = document.getElementById('grid-rows');
  rows.style.top = (first * h) + 'px';
  rows.innerHTML = out.join('');
};

dq.tiRow = function (k, v) { return '<dt>' + k + '</dt><dd>' + (v === null || v === undefined || v === '' ? '<span class="muted">-</span>' : v) + '</dd>'; };

/* the task instance panel: state, tries, times, exit code, note, actions, log */
dq.openTask = function (st, run, task) {
  st.selRun = run; st.selTask = task;
  dq.gridHead(st); dq.gridRows(st);
  var p = document.getElementById('ti-panel');
  p.hidden = false;
  p.innerHTML = '<p class="muted">loading...</p>';
  var logBox = null;
  st.panel = function () {
    return dq.get('runs/' + run + '/tasks/' + dq.enc(task)).then(function (ti) {
      if (st.selTask !== task || st.selRun !== run) return;
      var tries = ti.tries.map(function (y) {
        return '<tr><td>' + y.try_number + '</td><td><span class="sq st-' + y.state + '"></span>' + y.state + '</td><td>' +
          dq.esc(y.worker_id || '') + '</td><td>' + dq.esc(dq.ts(y.started_at)) + '</td><td>' + dq.dur(dq.secs(y.started_at, y.ended_at)) +
          '</td><td>' + (y.exit_code === null ? '' : y.exit_code) + '</td><td>' + dq.esc(y.note || '') + '</td></tr>';
      }).join('');
      var acts = dq.canOperate() ? '<div class="bar"><button id="btn-clear">Clear</button>' +
        '<button id="btn-mark-success">Mark success</button><button id="btn-mark-failed">Mark failed</button></div>' : '';
      var html = '<h2>' + dq.esc(task) + ' <span class="muted">run ' + run + '</span></h2>' + acts + '<dl>' +
        dq.tiRow('state', '<span class="sq st-' + ti.state + '"></span><span id="ti-state">' + ti.state + '</span>') +
        dq.tiRow('try', ti.try_number + ' of ' + ti.max_tries) + dq.tiRow('worker', dq.esc(ti.worker_id)) +
        dq.tiRow('host', dq.esc(ti.hostname)) + dq.tiRow('group', dq.esc(ti.worker_group)) +
        dq.tiRow('queued', dq.esc(dq.ts(ti.queued_at))) + dq.tiRow('started', dq.esc(dq.ts(ti.started_at))) +
        dq.tiRow('ended', dq.esc(dq.ts(ti.ended_at))) + dq.tiRow('duration', dq.dur(dq.secs(ti.started_at, ti.ended_at))) +
        dq.tiRow('exit code', ti.exit_code) + dq.tiRow('note', dq.esc(ti.note)) +
        dq.tiRow('command', '<code>' + dq.esc(ti.command) + '</code>') + '</dl>' +
        (tries ? '<h2>Tries</h2><table class="list" id="ti-tries"><tr><th>#</th><th>state</th><th>worker</th><th>started</th><th>took</th><th>exit</th><th>note</th></tr>' + tries + '</table>' : '') +
        '<h2>Log</h2><div id="log-box"></div>';
      var keep = logBox && document.getElementById('log-box');
      if (!keep) {
        p.innerHTML = html;
        logBox = dq.logView(document.getElementById('log-box'), run, task);
      } else {
        var holder = document.getElementById('log-box');
        holder.remove();
        p.innerHTML = html;
        document.getElementById('log-box').replaceWith(holder);
      }
      logBox.update(ti);
      if (dq.canOperate()) {
        document.getElementById('btn-clear').onclick = function () { dq.clearDialog(run, [task]); };
        document.getElementById('btn-mark-success').onclick = function () { dq.markTask(run, task, 'success'); };
        document.getElementById('btn-mark-failed').onclick = function () { dq.markTask(run, task, 'failed'); };
      }
    }).catch(function (e) { p.innerHTML = '<p class="err">' + dq.esc(dq.errText(e)) + '</p>'; });
  };
  st.panel();
};

/* the run panel: its state, links to its Gantt and graph, clear and stop */
dq.openRun = function (st, run) {
  st.selRun = run; st.selTask = null;
  dq.gridHead(st); dq.gridRows(st);
  var p = document.getElementById('ti-panel');
  p.hidden = false;
  st.panel = function () {
    return dq.get('runs/' + run).then(function (r) {
      if (st.selRun !== run || st.selTask) return;
      var counts = Object.keys(r.task_states).map(function (k) { return '<span class="sq st-' + k + '"></span>' + k + ' ' + r.task_states[k]; }).join(' ');
      p.innerHTML = '<h2>Run ' + run + ' <span class="sq st-' + r.state + '"></span><span id="run-state">' + r.state + '</span></h2>' +
        '<p><a href="#/runs/' + run + '/gantt">Gantt</a> · <a href="#/dags/' + dq.enc(st.dag) + '/graph?run=' + run + '">Graph</a></p>' +
        (dq.canOperate() ? '<div class="bar"><button id="btn-clear-run">Clear...</button><button id="btn-stop" class="danger">Stop</button></div>' : '') +
        '<dl>' + dq.tiRow('type', r.run_type) + dq.tiRow('logical date', dq.esc(dq.ts(r.logical_date))) +
        dq.tiRow('started', dq.esc(dq.ts(r.started_at))) + dq.tiRow('ended', dq.esc(dq.ts(r.ended_at))) +
        dq.tiRow('duration', dq.dur(r.duration_s)) + dq.tiRow('conf', '<code>' + dq.esc(JSON.stringify(r.conf)) + '</code>') +
        dq.tiRow('tasks', counts) + dq.tiRow('note', dq.esc(r.note)) + '</dl>';
      if (dq.canOperate()) {
        document.getElementById('btn-clear-run').onclick = function () { dq.clearDialog(run, null); };
        document.getElementById('btn-stop').onclick = function () { dq.stopRun(run); };
      }
    });
  };
  st.panel();
};
