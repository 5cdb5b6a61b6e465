/* a run's Gantt (each task's queued, running and end times: where the hours
 * went) and a DAG's run durations over time */
'use strict';
dq.ganttPage = function (run) {
  dq.main().innerHTML = '<h1>Run ' + run + ' <span id="gantt-state" class="muted"></span></h1><p id="gantt-links"></p>' +
    '<p class="muted">grey: queued, colour: running until it ended</p><div id="gantt"></div>';
  var load = function () {
    return Promise.all([dq.get('runs/' + run), dq.get('runs/' + run + '/tasks')]).then(function (x) {
      var r = x[0], tasks = x[1].tasks;
      document.getElementById('gantt-state').textContent = r.state + ', ' + dq.dur(r.duration_s);
      document.getElementById('gantt-links').innerHTML = '<a href="#/dags/' + dq.enc(r.dag_id) + '">DAG ' + dq.esc(r.dag_id) + '</a>';
      dq.drawGantt(document.getElementById('gantt'), r, tasks);
    });
  };
  load().catch(dq.showError);
  dq.refresh = load;
  dq.poll(load, 2000);
};

dq.drawGantt = function (box, run, tasks) {
  var t0 = Infinity, t1 = -Infinity, now = Date.now();
  tasks.forEach(function (t) {
    [t.queued_at, t.started_at, t.ended_at].forEach(function (s) {
      if (s) { var v = Date.parse(s); t0 = Math.min(t0, v); t1 = Math.max(t1, v); }
    });
    if (t.started_at && !t.ended_at) t1 = Math.max(t1, now);
  });
  if (!isFinite(t0)) { box.innerHTML = '<p class="muted">no task has started yet</p>'; return; }
  var span = Math.max(t1 - t0, 1), W = 900;
  var x = function (s) { return ((Date.parse(s) - t0) / span * W).toFixed(1); };
  var rows = tasks.filter(function (t) { return t.queued_at || t.started_at; }).sort(function (a, b) {
    return Date.parse(a.started_at || a.queued_at) - Date.parse(b.started_at || b.queued_at);
  });
  box.innerHTML = '<div class="muted">' + dq.esc(dq.ts(new Date(t0).toISOString())) + ' + ' + dq.dur(span / 1000) + '</div>' +
    rows.map(function (t) {
      var q = t.queued_at && t.started_at ? '<div class="q" style="left:' + x(t.queued_at) + 'px;width:' +
        Math.max(1, x(t.started_at) - x(t.queued_at)) + 'px"></div>' : '';
      var end = t.ended_at || new Date(now).toISOString();
      var b = t.started_at ? '<div class="b st-' + t.state + '" style="left:' + x(t.started_at) + 'px;width:' +
        Math.max(2, x(end) - x(t.started_at)) + 'px" title="' + dq.esc(t.task_id) + ' ' + dq.dur(dq.secs(t.started_at, t.ended_at)) + '"></div>' : '';
      return '<div class="grow" data-task="' + dq.esc(t.task_id) + '"><div class="gname">' + dq.esc(t.task_id) + '</div>' +
        '<div class="row" style="width:' + (W + 4) + 'px">' + q + b + '</div></div>';
    }).join('');
};

/* run durations of a DAG, newest right */
dq.historyPage = function (dag) {
  dq.main().innerHTML = dq.dagHeader(dag, 'history') + '<div id="history"></div>';
  var load = function () {
    return dq.get('dags/' + dq.enc(dag) + '/runs?limit=100').then(function (res) {
      var runs = res.runs.slice().reverse(), max = 0;
      runs.forEach(function (r) { if (r.duration_s) max = Math.max(max, r.duration_s); });
      var H = 200, w = 14, out = ['<svg id="history-chart" width="' + (runs.length * (w + 2) + 60) + '" height="' + (H + 30) + '">'];
      out.push('<text x="0" y="12">' + dq.dur(max) + '</text><text x="0" y="' + (H + 12) + '">0</text>');
      runs.forEach(function (r, i) {
        var h = max ? (r.duration_s || 0) / max * H : 0;
        out.push('<a href="#/runs/' + r.run_id + '/gantt"><rect class="st-' + r.state + '" x="' + (50 + i * (w + 2)) + '" y="' + (H - h + 10) +
          '" width="' + w + '" height="' + Math.max(h, 1) + '" fill="' + dq.stateColour(r.state) + '"><title>run ' + r.run_id + ': ' +
          dq.dur(r.duration_s) + '</title></rect></a>');
      });
      out.push('</svg>');
      document.getElementById('history').innerHTML = '<p class="muted">duration of the last ' + runs.length + ' runs (click one for its Gantt)</p>' + out.join('');
    });
  };
  dq.get('dags/' + dq.enc(dag)).then(function (d) { dq.dagActions(dag, d.is_paused); });
  load().catch(dq.showError);
  dq.poll(load, 5000);
};
