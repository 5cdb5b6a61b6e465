/* the log viewer: a try's output, tries switchable, tailed while the task
 * instance runs (GET ...logs?try=N&offset=BYTES asks only for what is new) */
'use strict';
dq.logView = function (box, run, task) {
  box.innerHTML = '<div class="bar">try <select id="log-try"></select> <span id="log-info" class="muted"></span></div>' +
    '<pre class="log" id="log-text"></pre>';
  var sel = box.querySelector('#log-try'), pre = box.querySelector('#log-text'), info = box.querySelector('#log-info');
  var v = { tryNo: null, offset: 0, decoder: new TextDecoder(), busy: false, tries: '', trunc: 0 };
  var reset = function () { v.offset = 0; v.decoder = new TextDecoder(); pre.textContent = ''; };
  sel.onchange = function () { v.tryNo = +sel.value; reset(); fetchMore(); };
  var fetchMore = function () {
    if (v.busy || !v.tryNo) return;
    v.busy = true;
    var path = 'runs/' + run + '/tasks/' + dq.enc(task) + '/logs?try=' + v.tryNo + '&offset=' + v.offset;
    dq.api('GET', path, undefined, true).then(function (r) {
      if (r.status === 404) { info.textContent = 'no log for this try yet (stored when the try ends)'; return null; }
      if (!r.ok) throw { detail: 'log: HTTP ' + r.status };
      var size = +(r.headers.get('X-Dagq-Log-Size') || 0), trunc = +(r.headers.get('X-Dagq-Truncated-Bytes') || 0);
      /* past 1 MiB the kept tail slides: read it again from its start */
      if (trunc !== v.trunc) { v.trunc = trunc; if (v.offset) { reset(); v.again = true; return null; } }
      info.textContent = size + ' bytes' + (trunc ? ', the first ' + trunc + ' bytes were not kept' : '') +
        ' · ' + (r.headers.get('X-Dagq-State') || '');
      return r.arrayBuffer();
    }).then(function (buf) {
      if (!buf || !buf.byteLength) return;
      v.offset += buf.byteLength;
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += v.decoder.decode(buf, { stream: true });
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }).catch(function (e) { info.textContent = dq.errText(e); }).then(function () {
      v.busy = false;
      if (v.again) { v.again = false; fetchMore(); }
    });
  };
  return {
    /* called with the task instance each time it is read again */
    update: function (ti) {
      var nums = ti.tries.map(function (y) { return y.try_number; });
      var key = nums.join(',');
      if (key !== v.tries) {
        v.tries = key;
        var cur = v.tryNo;
        sel.innerHTML = nums.map(function (n) { return '<option value="' + n + '">' + n + '</option>'; }).join('');
        if (!cur || nums.indexOf(cur) < 0 || cur === nums[nums.length - 2]) cur = nums[nums.length - 1] || null;
        if (cur !== v.tryNo) { v.tryNo = cur; reset(); }
        if (cur) sel.value = String(cur);
      }
      if (!v.tryNo) { info.textContent = 'no try yet'; return; }
      fetchMore();
    }
  };
};
