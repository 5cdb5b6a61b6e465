/* routes of the UI, then start */
'use strict';
dq.route(/^$/, dq.dagsPage);
dq.route(/^dags\/([^/]+)$/, dq.gridPage);
dq.route(/^dags\/([^/]+)\/graph$/, dq.graphPage);
dq.route(/^dags\/([^/]+)\/history$/, dq.historyPage);
dq.route(/^runs\/(\d+)\/gantt$/, dq.ganttPage);
dq.route(/^workers$/, dq.workersPage);
dq.route(/^queues$/, dq.queuesPage);
dq.route(/^pools$/, dq.poolsPage);
dq.route(/^audit$/, dq.auditPage);
window.addEventListener('hashchange', dq.render);
document.getElementById('logout').onclick = function () { dq.logout(); };
/* the view starts at once; whoami (which buttons to show) comes beside it */
if (dq.token()) { dq.whoamiP = dq.whoami().catch(function () { dq.logout(); }); dq.render(); }
else dq.render();
