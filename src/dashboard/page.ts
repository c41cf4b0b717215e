const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The dashboard page: a live process table and one uPlot chart per named query. */
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
#events{font-family:ui-monospace,monospace;font-size:12px;max-height:8rem;overflow:auto;background:#fff;border:1px solid #e3e3e6;padding:.4rem}
</style></head>
<body>
<header><strong>scaleout</strong><span>topology <b id="name">${esc(name)}</b></span><span id="preset"></span><a id="site" href="#"></a></header>
<main>
<table id="processes"><thead><tr><th>process</th><th>role</th><th>address</th><th>pid</th><th>health</th><th>lag</th><th>restarts</th><th></th></tr></thead><tbody></tbody></table>
<div id="events"></div>
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
    if (p.kind !== 'prometheus' && p.kind !== 'dashboard') {
      const b = document.createElement('button');
      b.className = p.alive ? 'kill' : 'restart'; b.textContent = p.alive ? 'kill -9' : 'restart';
      b.onclick = () => act(p.name, p.alive ? 'kill' : 'restart');
      td.append(b);
    }
    tr.append(td);
    if (last[p.name] && last[p.name] !== p.health + '/' + p.role) note(p.name + ': ' + last[p.name] + ' → ' + p.health + '/' + p.role);
    if (restarts[p.name] !== undefined && p.restarts > restarts[p.name]) note(p.name + ' restarted by the supervisor (' + restartsText(p) + ')');
    restarts[p.name] = p.restarts;
    last[p.name] = p.health + '/' + p.role;
    return tr;
  }));
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

refreshTopology(); refreshCharts();
setInterval(refreshTopology, 1000);
setInterval(refreshCharts, 2000);
</script>
</body></html>`;
}
