// The panel page's activity drawer: the panel's recent runs and their $log lines.
// While the drawer is open (and the tab visible) it polls the REST activity endpoint.

const POLL_MS = 2000;
const SHOWN = 20;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function timeOf(iso) {
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : when.toLocaleTimeString();
}

function renderRun(run) {
  const item = element('li', `nx-activity-run nx-activity-run--${run.status}`);
  item.dataset.runId = String(run.id);
  const head = element('div', 'nx-activity-head');
  const time = element('time', 'nx-activity-time', timeOf(run.startedAt));
  time.dateTime = run.startedAt;
  head.append(
    time,
    element('span', 'nx-activity-handler', run.kind === 'lifecycle' ? `on ${run.handler}` : run.handler),
    element('span', `nx-badge nx-badge--${run.status === 'success' ? 'success' : 'error'}`, run.status),
    element('span', 'nx-muted', `${run.durationMs} ms`),
  );
  if (run.actor) head.append(element('span', 'nx-muted', `by ${run.actor}`));
  item.append(head);
  if (run.error) item.append(element('p', 'nx-activity-error', `${run.error.code}: ${run.error.message}`));
  if (run.logs.length) {
    const logs = element('ol', 'nx-activity-logs');
    for (const line of run.logs) {
      const entry = element('li', `nx-activity-log nx-activity-log--${line.level}`);
      entry.append(element('span', 'nx-activity-level', line.level), document.createTextNode(` ${line.message}`));
      logs.append(entry);
    }
    item.append(logs);
  }
  return item;
}

export function mountActivity(container, url) {
  const drawer = element('details', 'nx-activity');
  drawer.id = 'nexus-activity';
  const summary = element('summary', 'nx-activity-summary', 'Activity');
  const status = element('p', 'nx-muted nx-activity-status', 'Open to follow the runs of this panel.');
  status.setAttribute('role', 'status');
  const list = element('ol', 'nx-activity-runs');
  drawer.append(summary, status, list);
  container.append(drawer);

  let newest = null;
  let timer = null;

  async function refresh() {
    try {
      const response = await fetch(`${url}?page_size=${SHOWN}`, {
        credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store',
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = await response.json();
      const first = page.results.length ? page.results[0].id : null;
      status.textContent = page.count ? `${page.count} run(s) kept; the newest first.` : 'No runs yet.';
      if (first === newest) return;
      newest = first;
      list.replaceChildren(...page.results.map(renderRun));
    } catch (error) {
      status.textContent = `Could not load the activity (${error.message}); retrying.`;
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (!drawer.open || document.hidden) return;
    timer = setTimeout(async () => { await refresh(); schedule(); }, POLL_MS);
  }

  drawer.addEventListener('toggle', async () => {
    if (drawer.open) { await refresh(); }
    schedule();
  });
  document.addEventListener('visibilitychange', schedule);
  return drawer;
}

const data = document.getElementById('nexus-panel-data');
const bootstrap = data ? JSON.parse(data.textContent) : null;
if (bootstrap && bootstrap.activityUrl) {
  mountActivity(document.getElementById('content') || document.body, bootstrap.activityUrl);
}
