/* operator actions: trigger (with conf), clear (downstream, only failed, a
 * dry run first), mark success/failed, stop, pause; each a POST or PATCH of
 * the API, refused by the database for a token whose role may not act */
'use strict';
dq.dialog = function (html) {
  document.getElementById('dialog').innerHTML = html;
  document.getElementById('dialog-back').hidden = false;
  var c = document.getElementById('dlg-cancel');
  if (c) c.onclick = dq.closeDialog;
};
dq.closeDialog = function () { document.getElementById('dialog-back').hidden = true; };
dq.dlgError = function (e) {
  var el = document.getElementById('dlg-error');
  if (el) el.textContent = dq.errText(e); else alert(dq.errText(e));
};

dq.setPaused = function (dag, paused) {
  return dq.api('PATCH', 'dags/' + dq.enc(dag), { is_paused: paused }).catch(function (e) { alert(dq.errText(e)); });
};

dq.triggerDialog = function (dag) {
  dq.dialog('<h2>Trigger ' + dq.esc(dag) + '</h2><p>conf (a JSON object)</p>' +
    '<textarea id="trigger-conf" rows="6">{}</textarea><p>logical date (empty: now)</p>' +
    '<input id="trigger-date" placeholder="2024-06-01T00:00:00Z"><p class="err" id="dlg-error"></p>' +
    '<div class="bar"><button class="primary" id="trigger-go">Trigger</button><button id="dlg-cancel">Cancel</button></div>');
  document.getElementById('trigger-go').onclick = function () {
    var body = {};
    try { body.conf = JSON.parse(document.getElementById('trigger-conf').value || '{}'); } catch (e) {
      return dq.dlgError({ detail: 'conf is not valid JSON: ' + e.message });
    }
    var d = document.getElementById('trigger-date').value.trim();
    if (d) body.logical_date = d;
    dq.api('POST', 'dags/' + dq.enc(dag) + '/runs', body).then(function (res) {
      dq.closeDialog();
      dq.flash('triggered run ' + res.run_id);
      if (dq.refresh) dq.refresh();
    }, dq.dlgError);
  };
};

/* clear run's tasks (task_ids null: all); a dry run lists them first */
dq.clearDialog = function (run, taskIds) {
  dq.dialog('<h2>Clear ' + (taskIds ? dq.esc(taskIds.join(', ')) : 'every task') + ' of run ' + run + '</h2>' +
    '<label><input type="checkbox" id="clear-downstream"> downstream too</label><br>' +
    '<label><input type="checkbox" id="clear-only-failed"> only failed</label>' +
    '<p class="err" id="dlg-error"></p><div id="clear-list" class="muted"></div>' +
    '<div class="bar"><button id="clear-dry">Dry run</button><button class="danger" id="clear-go">Clear</button>' +
    '<button id="dlg-cancel">Cancel</button></div>');
  var body = function (dry) {
    return { task_ids: taskIds, downstream: document.getElementById('clear-downstream').checked,
             only_failed: document.getElementById('clear-only-failed').checked, dry_run: dry };
  };
  document.getElementById('clear-dry').onclick = function () {
    dq.api('POST', 'runs/' + run + '/clear', body(true)).then(function (res) {
      document.getElementById('clear-list').innerHTML = '<p>would clear ' + res.count + ':</p><ul>' +
        res.task_instances.map(function (t) { return '<li data-task="' + dq.esc(t.task_id) + '">' + dq.esc(t.task_id) + ' (' + t.state + ')</li>'; }).join('') + '</ul>';
    }, dq.dlgError);
  };
  document.getElementById('clear-go').onclick = function () {
    dq.api('POST', 'runs/' + run + '/clear', body(false)).then(function (res) {
      dq.closeDialog();
      dq.flash('cleared ' + res.count + ' task instance' + (res.count === 1 ? '' : 's'));
      if (dq.refresh) dq.refresh();
    }, dq.dlgError);
  };
};

dq.markTask = function (run, task, state) {
  return dq.api('PATCH', 'runs/' + run + '/tasks/' + dq.enc(task), { state: state }).then(function () {
    dq.flash('marked ' + task + ' ' + state);
    if (dq.refresh) dq.refresh();
  }, function (e) { alert(dq.errText(e)); });
};

dq.stopRun = function (run, taskIds) {
  if (!confirm('Stop run ' + run + '?')) return;
  return dq.api('POST', 'runs/' + run + '/stop', taskIds ? { task_ids: taskIds } : {}).then(function () {
    dq.flash('stopped run ' + run);
    if (dq.refresh) dq.refresh();
  }, function (e) { alert(dq.errText(e)); });
};

dq.flash = function (msg) {
  var m = document.getElementById('flash');
  if (!m) { m = document.createElement('p'); m.id = 'flash'; dq.main().prepend(m); }
  m.textContent = msg;
};
