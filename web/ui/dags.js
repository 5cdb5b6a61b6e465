/* the DAGs page: name, owner, schedule, paused toggle, last runs, next run, filter */
'use strict';
dq.dagsPage = function () {
  var q = dq.query().q || '';
  dq.main().innerHTML = '<h1>DAGs</h1><div class="bar"><input id="dag-filter" placeholder="filter" value="' +
    dq.esc(q) + '"><label><input type="checkbox" id="dag-paused"> paused only</label></div>' +
    '<table class="list" id="dags"><thead><tr><th>DAG</th><th>owner</th><th>schedule</th><th>paused</th>' +
    '<th>tasks</th><th>last runs</th><th>next run</th></tr></thead><tbody></tbody></table>';
  var load = function () {
    var f = document.getElementById('dag-filter'), p = document.getElementById('dag-paused');
    if (!f) return;
    var path = 'dags?limit=1000' + (f.value ? '&q=' + dq.enc(f.value) : '') + (p.checked ? '&paused=true' : '');
    return dq.get(path).then(dq.dagsRows);
  };
  document.getElementById('dag-filter').oninput = load;
  document.getElementById('dag-paused').onchange = load;
  Promise.resolve(dq.whoamiP).then(load).catch(dq.showError);
  dq.poll(load, 3000);
};

dq.dagsRows = function (res) {
  var tb = document.querySelector('#dags tbody');
  if (!tb) return;
  tb.innerHTML = res.dags.map(function (d) {
    var squares = d.last_runs.map(function (r) {
      return '<span class="sq st-' + r.state + '" title="run ' + r.run_id + ': ' + r.state + '"></span>';
    }).join('');
    var toggle = dq.canOperate()
      ? '<input type="checkbox" class="pause-toggle" data-dag="' + dq.esc(d.dag_id) + '"' + (d.is_paused ? ' checked' : '') + '>'
      : (d.is_paused ? 'yes' : 'no');
    return '<tr data-dag="' + dq.esc(d.dag_id) + '"><td><a href="#/dags/' + dq.enc(d.dag_id) + '">' + dq.esc(d.dag_id) +
      '</a>' + (d.parked_reason ? ' <span class="err">parked: ' + dq.esc(d.parked_reason) + '</span>' : '') +
      '</td><td>' + dq.esc(d.owner) + '</td><td>' + dq.esc(d.schedule || 'manual') + '</td><td>' + toggle +
      '</td><td class="num">' + d.tasks + '</td><td>' + squares + '</td><td>' + dq.esc(dq.ts(d.next_run)) + '</td></tr>';
  }).join('') || '<tr><td colspan="7" class="muted">no DAGs</td></tr>';
  tb.querySelectorAll('.pause-toggle').forEach(function (cb) {
    cb.onchange = function () { dq.setPaused(cb.dataset.dag, cb.checked); };
  });
};

/* the tabs above a DAG's views */
dq.dagHeader = function (dag, on) {
  var tab = function (href, name, key) {
    return '<a class="' + (on === key ? 'on' : '') + '" href="' + href + '">' + name + '</a>';
  };
  var e = dq.enc(dag);
  return '<h1>DAG ' + dq.esc(dag) + ' <span id="dag-paused-flag" class="muted"></span></h1><div class="bar tabs">' +
    tab('#/dags/' + e, 'Grid', 'grid') + tab('#/dags/' + e + '/graph', 'Graph', 'graph') +
    tab('#/dags/' + e + '/history', 'Run durations', 'history') +
    '<span id="dag-actions"></span></div>';
};

/* trigger and pause buttons of a DAG, for operators */
dq.dagActions = function (dag, paused) {
  Promise.resolve(dq.whoamiP).then(function () { dq.dagButtons(dag, paused); });
};
dq.dagButtons = function (dag, paused) {
  var box = document.getElementById('dag-actions'), flag = document.getElementById('dag-paused-flag');
  if (flag) flag.textContent = paused ? '(paused)' : '';
  if (!box || !dq.canOperate()) return;
  box.innerHTML = '<button id="btn-trigger" class="primary">Trigger</button> ' +
    '<button id="btn-pause">' + (paused ? 'Unpause' : 'Pause') + '</button>';
  document.getElementById('btn-trigger').onclick = function () { dq.triggerDialog(dag); };
  document.getElementById('btn-pause').onclick = function () {
    dq.setPaused(dag, !paused).then(function () { dq.dagButtons(dag, !paused); });
  };
};
