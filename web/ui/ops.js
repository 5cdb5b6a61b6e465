/* workers, queues, pools and the audit: the data of dagq workers, queues,
 * pools, refreshed every few seconds */
'use strict';
dq.tablePage = function (title, path, key, cols, ms) {
  dq.main().innerHTML = '<h1>' + title + '</h1><table class="list" id="' + key + '"><thead><tr>' +
    cols.map(function (c) { return '<th>' + c[0] + '</th>'; }).join('') + '</tr></thead><tbody></tbody></table>';
  var load = function () {
    return dq.get(path).then(function (res) {
      var tb = document.querySelector('#' + key + ' tbody');
      if (!tb) return;
      tb.innerHTML = res[key].map(function (row) {
        return '<tr>' + cols.map(function (c) { return '<td>' + c[1](row) + '</td>'; }).join('') + '</tr>';
      }).join('') || '<tr><td colspan="' + cols.length + '" class="muted">none</td></tr>';
    });
  };
  load().catch(dq.showError);
  dq.poll(load, ms || 3000);
};
dq.f = function (k) { return function (r) { return dq.esc(r[k] === null || r[k] === undefined ? '' : r[k]); }; };

dq.workersPage = function () {
  dq.tablePage('Workers', 'workers', 'workers', [['worker', dq.f('worker_id')],
    ['incarnation', function (r) { return dq.esc(String(r.incarnation).slice(0, 8)); }], ['host', dq.f('hostname')],
    ['pid', dq.f('pid')], ['groups', function (r) { return dq.esc(r.groups.join(', ')); }], ['slots', dq.f('slots')],
    ['running', dq.f('running')], ['state', dq.f('state')],
    ['last heartbeat', function (r) { return dq.dur(r.heartbeat_age_s) + ' ago'; }]]);
};
dq.queuesPage = function () {
  dq.tablePage('Queues', 'queues', 'queues', [['group', dq.f('worker_group')], ['queued', dq.f('queued')],
    ['ready', dq.f('ready')], ['running', dq.f('running')], ['workers', dq.f('live_workers')],
    ['free slots', dq.f('free_slots')],
    ['oldest queued', function (r) { return r.queued ? dq.dur(r.oldest_queued_age_s) : ''; }]]);
};
dq.poolsPage = function () {
  dq.tablePage('Pools', 'pools', 'pools', [['pool', dq.f('pool')], ['slots', dq.f('slots')], ['used', dq.f('used')],
    ['queued', dq.f('queued')], ['running', dq.f('running')], ['free', dq.f('free')], ['description', dq.f('description')]]);
};
dq.auditPage = function () {
  dq.tablePage('Audit: every write', 'audit?limit=200', 'entries', [['when', function (r) { return dq.esc(dq.ts(r.at)); }],
    ['token', dq.f('token_name')], ['role', dq.f('role')], ['from', dq.f('source')], ['method', dq.f('method')],
    ['path', dq.f('path')], ['body', function (r) { return '<code>' + dq.esc(r.body ? JSON.stringify(r.body) : '') + '</code>'; }],
    ['status', dq.f('status')], ['detail', dq.f('detail')]], 5000);
};
