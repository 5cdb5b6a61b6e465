/* a DAG's graph: laid out in layers by dagre (vendor/), drawn as SVG,
 * nodes coloured by the states of a chosen run */
'use strict';
dq.graphPage = function (dag, q) {
  dq.main().innerHTML = dq.dagHeader(dag, 'graph') + '<div class="bar">run <select id="graph-run"></select></div>' +
    '<div id="graph-box" style="overflow:auto;background:#fff;border:1px solid #ddd"></div>';
  var sel = document.getElementById('graph-run'), def = null;
  var color = function (states) {
    document.querySelectorAll('#graph .node').forEach(function (n) {
      var s = states[n.dataset.task] || 'none';
      n.setAttribute('class', 'node st-' + s);
      n.dataset.state = s;
      n.querySelector('rect').setAttribute('fill', dq.stateColour(s));
    });
  };
  var load = function () {
    if (!sel.value) return color({});
    return dq.get('runs/' + sel.value + '/tasks').then(function (res) {
      var m = {};
      res.tasks.forEach(function (t) { m[t.task_id] = t.state; });
      color(m);
    });
  };
  Promise.all([dq.get('dags/' + dq.enc(dag)), dq.get('dags/' + dq.enc(dag) + '/runs?limit=50'), dq.loadDagre()]).then(function (x) {
    def = x[0];
    dq.dagActions(dag, def.is_paused);
    sel.innerHTML = x[1].runs.map(function (r) {
      return '<option value="' + r.run_id + '">' + r.run_id + ' ' + r.state + ' ' + dq.esc(dq.ts(r.logical_date)) + '</option>';
    }).join('');
    if (q.run) sel.value = q.run;
    dq.drawGraph(document.getElementById('graph-box'), def);
    sel.onchange = load;
    dq.refresh = load;
    return load();
  }).catch(dq.showError);
  dq.poll(load, 2500);
};

/* dagre is large: loaded by the graph page only, once */
dq.loadDagre = function () {
  if (window.dagre) return Promise.resolve();
  return new Promise(function (ok, fail) {
    var s = document.createElement('script');
    s.src = 'static/vendor/dagre.min.js';
    s.onload = ok;
    s.onerror = function () { fail({ detail: 'cannot load the graph layout library' }); };
    document.head.appendChild(s);
  });
};

dq.stateColour = function (s) {
  return { success: '#43a047', failed: '#e53935', running: '#7cb342', queued: '#9e9e9e', scheduled: '#d2b48c',
           up_for_retry: '#fbc02d', upstream_failed: '#fb8c00', skipped: '#f48fb1' }[s] || '#e0e0e0';
};

dq.drawGraph = function (box, def) {
  var g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 50, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(function () { return {}; });
  def.tasks.forEach(function (t) { g.setNode(t.task_id, { width: Math.max(60, 8 * t.task_id.length + 20), height: 28 }); });
  def.edges.forEach(function (e) { g.setEdge(e[0], e[1]); });
  dagre.layout(g);
  var gr = g.graph(), out = [];
  out.push('<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="' + (gr.width + 20) + '" height="' + (gr.height + 20) + '">');
  out.push('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#78909c"/></marker></defs>');
  g.edges().forEach(function (e) {
    var pts = g.edge(e).points;
    out.push('<path class="edge" data-from="' + dq.esc(e.v) + '" data-to="' + dq.esc(e.w) + '" marker-end="url(#arrow)" d="M' +
      pts.map(function (p) { return p.x.toFixed(1) + ',' + p.y.toFixed(1); }).join('L') + '"/>');
  });
  g.nodes().forEach(function (id) {
    var n = g.node(id);
    out.push('<g class="node" data-task="' + dq.esc(id) + '" transform="translate(' + (n.x - n.width / 2) + ',' + (n.y - n.height / 2) + ')">' +
      '<rect rx="4" width="' + n.width + '" height="' + n.height + '" fill="#e0e0e0" stroke="#546e7a"/>' +
      '<text x="10" y="18">' + dq.esc(id) + '</text></g>');
  });
  out.push('</svg>');
  box.innerHTML = out.join('');
};
