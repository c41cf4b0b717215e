const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The dashboard page. Its first screen draws the topology as the chapter's
 * figures do: one row per tier (DNS, edge, balancer, web, workers, cache,
 * database, …), one column per data center (and the global scope), each
 * process a box coloured by its health with its role; a click gives its
 * details and the kill and restart buttons. The process table is the second
 * view; below, one uPlot chart per named query.
 */
export function dashboardPage(
  name: string,
  charts: { key: string; title: string; unit: string }[],
  uplotCss: string,
): string {
  const chartDivs = charts
    .map(
      (c) =>
        `<section class="chart"><h3>${esc(c.title)}</h3><div id="chart-${esc(c.key)}" data-unit="${esc(c.unit)}"></div></section>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>scaleout · ${esc(name)}</title>
<link rel="icon" href="data:,">
<style>${uplotCss}
body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d1d1f}
header{padding:.8rem 1.2rem;background:#fff;border-bottom:1px solid #e3e3e6;display:flex;gap:1rem;align-items:baseline}
main{padding:1rem 1.2rem;display:grid;gap:1rem}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{padding:.35rem .6rem;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
.healthy{color:#1b7f3b;font-weight:600}.unhealthy{color:#b26a00;font-weight:600}.down{color:#c62828;font-weight:600}
.leader{font-weight:700}
button{font:inherit;padding:.15rem .6rem;border-radius:4px;border:1px solid #ccc;background:#fff;cursor:pointer}
button.kill{border-color:#c62828;color:#c62828}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:1rem}
.chart{background:#fff;padding:.5rem;border:1px solid #e3e3e6;border-radius:6px}
.chart h3{margin:.2rem 0 .4rem;font-size:14px}
nav{display:flex;gap:.4rem}nav button.on{background:#1d1d1f;color:#fff;border-color:#1d1d1f}
#picture{display:grid;gap:.35rem;background:#fff;border:1px solid #e3e3e6;border-radius:6px;padding:.6rem}
#picture .dc{font-weight:700;text-align:center;padding:.2rem;border-bottom:2px solid #e3e3e6}
#picture .tier{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#666;align-self:center}
#picture .cell{display:flex;flex-wrap:wrap;gap:.3rem;align-content:flex-start;min-height:2.4rem;padding:.25rem;border-radius:4px;background:#fafafb}
.box{border:1px solid;border-radius:5px;padding:.2rem .45rem;cursor:pointer;font-size:12px;line-height:1.25;min-width:6.5rem}
.box b{display:block;font-size:12.5px}.box span{color:#444}
.box.healthy{background:#e7f6ec;border-color:#1b7f3b}.box.unhealthy{background:#fff4e0;border-color:#b26a00}
.box.down{background:#fde7e7;border-color:#c62828}.box.down span{color:#c62828}
.box.selected{outline:2px solid #27c;outline-offset:1px}
.box.role-leader,.box.role-master{box-shadow:inset 4px 0 0 #1d1d1f}
#picture-view.hidden{display:none}
#picture-view{display:grid;grid-template-columns:minmax(0,1fr) 16rem;gap:1rem;align-items:start}
#details{background:#fff;border:1px solid #e3e3e6;border-radius:6px;padding:.6rem;position:sticky;top:.5rem}
#details p{color:#666;margin:.2rem 0}#details dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:.4rem 0}
#details dt{color:#666}#details dd{margin:0;overflow-wrap:anywhere}
.hidden{display:none}
#events{font-family:ui-monospace,monospace;font-size:12px;max-height:8rem;overflow:auto;background:#fff;border:1px solid #e3e3e6;padding:.4rem}
</style></head>
<body>
<header><strong>scaleout</strong><span>topology <b id="name">${esc(name)}</b></span><span id="preset"></span><a id="site" href="#"></a></header>
<main>
<nav><button id="view-picture" class="on">topology</button><button id="view-table">table</button></nav>
<section id="picture-view"><div id="picture"></div><aside id="details"><p>Click a process for its details, kill -9 and restart.</p></aside></section>
<section id="table-view" class="hidden">
<table id="processes"><thead><tr><th>process</th><th>role</th><th>address</th><th>pid</th><th>health</th><th>lag</th><th>restarts</th><th></th></tr></thead><tbody></tbody></table>
</section>
<div id="events"></div>
<section id="dead-letter" class="hidden"><h3>Dead letter (jobs that failed their last attempt)</h3>
<table><thead><tr><th>data center</th><th>job</th><th>id</th><th>attempts</th><th>failed at</th><th>reason</th><th></th></tr></thead><tbody></tbody></table></section>
<div class="charts">
${chartDivs}
</div>
</main>
<script src="uplot.js"></script>
<script>
const token = new URLSearchParams(location.search).get('token');
const q = token ? '?token=' + encodeURIComponent(token) : '';
const keys = ${JSON.stringify(charts.map((c) => c.key))};
const plots = {};
window.__dashboard = { points: {}, topologyUpdates: 0 };
const events = document.getElementById('events');
const note = (text) => { const d = document.createElement('div'); d.textContent = new Date().toLocaleTimeString() + '  ' + text; events.prepend(d); };
let last = {};

async function act(name, action) {
  const res = await fetch('api/processes/' + encodeURIComponent(name) + '/' + action + q, { method: 'POST', headers: { 'x-dashboard': '1' } });
  note(action + ' ' + name + ': ' + (res.ok ? 'ok' : (await res.json()).error));
  refreshTopology();
}

const restarts = {};
function restartsText(p) {
  if (!p.lastExit) return String(p.restarts ?? 0);
  const e = p.lastExit;
  return (p.restarts ?? 0) + ' (last exit ' + (e.signal ?? (e.code !== null ? 'code ' + e.code : 'unknown')) + ' at ' + e.at.slice(11, 19) + ')';
}
// The chapter's tiers, top to bottom as its figures draw them; each component declares its own.
const tierOrder = ['dns', 'edge', 'balancer', 'web', 'worker', 'cache', 'database', 'coordination', 'observability', 'control'];
const tierNames = { dns: 'DNS', edge: 'edge', balancer: 'load balancer', web: 'web tier', worker: 'workers', cache: 'cache tier', database: 'database tier', coordination: 'coordination', observability: 'observability', control: 'control' };
let selected = null;
const show = (view) => {
  document.getElementById('picture-view').classList.toggle('hidden', view !== 'picture');
  document.getElementById('table-view').classList.toggle('hidden', view !== 'table');
  document.getElementById('view-picture').classList.toggle('on', view === 'picture');
  document.getElementById('view-table').classList.toggle('on', view === 'table');
};
document.getElementById('view-picture').onclick = () => show('picture');
document.getElementById('view-table').onclick = () => show('table');

function actionButton(p) {
  if (p.kind === 'prometheus' || p.kind === 'dashboard') return null;
  const b = document.createElement('button');
  b.className = p.alive ? 'kill' : 'restart'; b.textContent = p.alive ? 'kill -9' : 'restart';
  b.onclick = (e) => { e.stopPropagation(); act(p.name, p.alive ? 'kill' : 'restart'); };
  return b;
}

function drawPicture(t) {
  const scopes = [...new Set(t.processes.map((p) => p.dataCenter))].sort((a, b) => (a === 'global') - (b === 'global') || a.localeCompare(b));
  const pic = document.getElementById('picture');
  pic.style.gridTemplateColumns = '8.5rem ' + scopes.map((s) => (s === 'global' ? 'minmax(0,.55fr)' : 'minmax(0,1fr)')).join(' ');
  const nodes = [document.createElement('div')];
  for (const s of scopes) {
    const h = document.createElement('div'); h.className = 'dc'; h.textContent = s === 'global' ? 'global' : 'data center ' + s;
    // Two data centers: each can be lost at once (every process of it with SIGKILL), as in the drill.
    if (s !== 'global' && scopes.length > 2) {
      const b = document.createElement('button'); b.className = 'kill'; b.textContent = 'kill ' + s;
      b.onclick = async () => {
        const res = await fetch('api/data-centers/' + encodeURIComponent(s) + '/kill' + q, { method: 'POST', headers: { 'x-dashboard': '1' } });
        note('kill data center ' + s + ': ' + (res.ok ? (await res.json()).killed.length + ' processes' : (await res.json()).error));
        refreshTopology();
      };
      h.append(' ', b);
    }
    nodes.push(h);
  }
  for (const tier of tierOrder) {
    const inTier = t.processes.filter((p) => p.chapterTier === tier);
    if (inTier.length === 0) continue;
    const label = document.createElement('div'); label.className = 'tier'; label.textContent = tierNames[tier] ?? tier; nodes.push(label);
    for (const s of scopes) {
      const cell = document.createElement('div'); cell.className = 'cell'; cell.dataset.tier = tier; cell.dataset.dataCenter = s;
      for (const p of inTier.filter((x) => x.dataCenter === s)) {
        const box = document.createElement('div');
        box.className = 'box ' + p.health + ' role-' + p.role.replace(/[^a-z]+/g, '-') + (selected === p.name ? ' selected' : '');
        box.dataset.process = p.name; box.dataset.health = p.health; box.dataset.role = p.role; box.dataset.kind = p.kind;
        box.title = p.kind + ' · ' + p.address + (p.detail ? ' · ' + p.detail : '');
        const name = document.createElement('b'); name.textContent = p.name;
        const role = document.createElement('span'); role.textContent = p.health === 'down' ? 'down' : p.role;
        box.append(name, role);
        box.onclick = () => { selected = selected === p.name ? null : p.name; drawPicture(t); drawDetails(t); };
        cell.append(box);
      }
      nodes.push(cell);
    }
  }
  pic.replaceChildren(...nodes);
}

function drawDetails(t) {
  const el = document.getElementById('details');
  const p = t.processes.find((x) => x.name === selected);
  if (!p) { const hint = document.createElement('p'); hint.textContent = 'Click a process for its details, kill -9 and restart.'; el.replaceChildren(hint); return; }
  const h = document.createElement('h3'); h.textContent = p.name; h.style.margin = '0';
  const dl = document.createElement('dl');
  const rows = [['kind', p.kind], ['role', p.role], ['data center', p.dataCenter], ['tier', p.chapterTier], ['address', p.address], ['pid', p.pid ?? '-'],
    ['health', p.health + (p.detail && p.health !== 'down' ? ' (' + p.detail + ')' : '')], ['lag', p.lagBytes === undefined ? '' : p.lagBytes === null ? '?' : p.lagBytes + ' B'],
    ['version', p.version ?? ''], ['restarts', restartsText(p)]];
  for (const [k, v] of rows) { if (v === '') continue; const dt = document.createElement('dt'); dt.textContent = k; const dd = document.createElement('dd'); dd.textContent = String(v); dl.append(dt, dd); }
  const b = actionButton(p);
  el.replaceChildren(h, dl, ...(b ? [b] : []));
}

async function refreshTopology() {
  const res = await fetch('api/topology' + q);
  if (!res.ok) return;
  const t = await res.json();
  document.getElementById('preset').textContent = '(' + t.preset + ')';
  const site = document.getElementById('site'); site.href = t.publicUrl; site.textContent = t.publicUrl;
  const body = document.querySelector('#processes tbody');
  body.replaceChildren(...t.processes.map((p) => {
    const tr = document.createElement('tr');
    tr.dataset.process = p.name; tr.dataset.health = p.health; tr.dataset.role = p.role;
    const cells = [p.name, p.role, p.address, p.pid ?? '-', p.health + (p.detail && p.health !== 'down' ? ' (' + p.detail + ')' : ''), p.lagBytes === undefined ? '' : p.lagBytes === null ? '?' : p.lagBytes + ' B', restartsText(p)];
    for (const [i, c] of cells.entries()) { const td = document.createElement('td'); td.textContent = c; if (i === 4) td.className = p.health; if (i === 1 && p.role === 'leader') td.className = 'leader'; tr.append(td); }
    const td = document.createElement('td');
    const b = actionButton(p);
    if (b) td.append(b);
    tr.append(td);
    if (last[p.name] && last[p.name] !== p.health + '/' + p.role) note(p.name + ': ' + last[p.name] + ' → ' + p.health + '/' + p.role);
    if (restarts[p.name] !== undefined && p.restarts > restarts[p.name]) note(p.name + ' restarted by the supervisor (' + restartsText(p) + ')');
    restarts[p.name] = p.restarts;
    last[p.name] = p.health + '/' + p.role;
    return tr;
  }));
  drawPicture(t);
  drawDetails(t);
  window.__dashboard.topologyUpdates++;
}

async function refreshCharts() {
  for (const key of keys) {
    const res = await fetch('api/charts/' + key + q + (q ? '&' : '?') + 'seconds=120');
    if (!res.ok) continue;
    const d = await res.json();
    const el = document.getElementById('chart-' + key);
    const data = [d.t, ...d.series.map((s) => s.values)];
    window.__dashboard.points[key] = d.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
    const labels = d.series.map((s) => s.label).join('|');
    if (!plots[key] || plots[key].labels !== labels) {
      plots[key]?.plot.destroy();
      const colors = ['#2a7', '#c72', '#27c', '#a3c', '#d33', '#777'];
      const plot = new uPlot({ width: Math.max(420, el.clientWidth || 460), height: 200, legend: { show: true },
        series: [{}, ...d.series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], spanGaps: true }))],
        axes: [{}, { label: el.dataset.unit }] }, data, el);
      plots[key] = { plot, labels };
    } else plots[key].plot.setData(data);
  }
}

async function refreshDeadLetter() {
  const res = await fetch('api/jobs/failed' + q);
  const section = document.getElementById('dead-letter');
  if (!res.ok) { section.classList.add('hidden'); return; }
  const { jobs } = await res.json();
  section.classList.toggle('hidden', jobs.length === 0);
  section.querySelector('tbody').replaceChildren(...jobs.map((j) => {
    const tr = document.createElement('tr');
    for (const c of [j.dataCenter, j.name, j.id, j.attempts, new Date(j.failedAt).toLocaleTimeString(), j.reason]) {
      const td = document.createElement('td'); td.textContent = String(c); tr.append(td);
    }
    const b = document.createElement('button'); b.textContent = 'retry';
    b.onclick = async () => {
      const r = await fetch('api/jobs/' + encodeURIComponent(j.id) + '/retry' + (q ? q + '&' : '?') + 'dataCenter=' + encodeURIComponent(j.dataCenter), { method: 'POST', headers: { 'x-dashboard': '1' } });
      note('retry ' + j.id + ': ' + (r.ok ? 'ok' : (await r.json()).error));
      refreshDeadLetter();
    };
    const td = document.createElement('td'); td.append(b); tr.append(td);
    return tr;
  }));
}

refreshTopology(); refreshCharts(); refreshDeadLetter();
setInterval(refreshTopology, 1000);
setInterval(refreshCharts, 2000);
setInterval(refreshDeadLetter, 5000);
</script>
</body></html>`;
}
