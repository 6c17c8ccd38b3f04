'use strict';
// The live console: polls the JSON API once a second and renders the stream, the ledger, the alerts and health.
const $ = id => document.getElementById(id);
const state = { after: 0, alertsAfter: 0, previews: new Map(), shown: [] };
const SHOWN = 40;
const palette = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#4f46e5', '#0d9488', '#b91c1c'];

async function json(url, options) {
  const r = await fetch(url, options);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function preview(id) {
  if (!state.previews.has(id)) state.previews.set(id, json(`/api/examples/${id}`).catch(() => null));
  return state.previews.get(id);
}

// One top example: its image drawn from the raw 28x28 grey levels (or its text), source and score.
function exampleView(ex) {
  const box = el('div', { class: 'ex' + (ex.flagged ? ' flagged' : ''), 'data-example': ex.id });
  const holder = el('div');
  box.append(holder, el('div', { text: `#${ex.id}` }), el('div', { class: 'src', text: ex.sourceName ?? '' }), el('div', { class: 'score', text: ex.score.toExponential(2) }));
  preview(ex.id).then(p => {
    if (!p) return;
    if (p.pixels) {
      const c = el('canvas', { width: p.cols, height: p.rows, title: p.label ?? '' });
      const ctx = c.getContext('2d');
      const img = ctx.createImageData(p.cols, p.rows);
      const px = Uint8Array.from(atob(p.pixels), ch => ch.charCodeAt(0));
      for (let i = 0; i < px.length; i++) { img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = px[i]; img.data[4 * i + 3] = 255; }
      ctx.putImageData(img, 0, 0);
      holder.append(c);
      if (p.label) box.title = p.label;
    } else if (p.text) {
      holder.append(el('div', { class: 'text', text: p.text }));
    }
  });
  return box;
}

function attributionView(a) {
  const top = a.sources.slice(0, 3).map(s => `${s.name} ${s.score.toFixed(3)}`).join(' · ');
  const flagged = a.examples.some(e => e.flagged);
  const row = el('div', { class: 'attr' + (flagged ? ' flagged' : ''), 'data-query': a.queryId });
  const meta = el('div', { class: 'meta' }, el('b', { text: a.queryId }), el('span', { text: a.model }),
    el('span', { text: `${(a.latencyUs / 1000).toFixed(2)} ms · p${a.partition}@${a.offset}` }));
  const examples = el('div', { class: 'examples' }, ...a.examples.slice(0, 5).map(exampleView));
  row.append(meta, el('div', {}, examples, el('div', { class: 'topsrc', text: 'top sources: ' + top })));
  return row;
}

async function pollStream() {
  const r = await json(`/api/attributions?after=${state.after}&limit=${SHOWN}`);
  const stream = $('stream');
  // A response may arrive after a newer one: show each event once.
  for (const a of r.items.filter(a => a.seq > state.after)) stream.prepend(attributionView(a));
  state.after = Math.max(state.after, r.latest);
  while (stream.children.length > SHOWN) stream.lastChild.remove();
  $('stream-count').textContent = `${r.latest} received`;
}

function barChart(svg, rows) {
  svg.innerHTML = '';
  const w = svg.clientWidth || 400, left = 210, bh = 22;
  svg.style.height = `${rows.length * bh + 4}px`;
  const max = Math.max(1e-9, ...rows.map(r => r.positiveMass));
  rows.forEach((r, i) => {
    const y = 2 + i * bh;
    const bw = (w - left - 100) * r.positiveMass / max;
    const ns = 'http://www.w3.org/2000/svg';
    const label = document.createElementNS(ns, 'text');
    label.setAttribute('x', left - 6); label.setAttribute('y', y + bh * 0.7); label.setAttribute('text-anchor', 'end'); label.setAttribute('font-size', '11');
    label.setAttribute('fill', r.flagged ? '#dc2626' : '#1d2330'); label.textContent = r.sourceName.length > 30 ? r.sourceName.slice(0, 29) + '…' : r.sourceName;
    const bar = document.createElementNS(ns, 'rect');
    bar.setAttribute('x', left); bar.setAttribute('y', y + 2); bar.setAttribute('width', Math.max(1, bw)); bar.setAttribute('height', bh - 4);
    bar.setAttribute('fill', r.flagged ? '#dc2626' : '#2563eb'); bar.setAttribute('class', 'ledger-bar'); bar.setAttribute('data-source', r.source);
    const value = document.createElementNS(ns, 'text');
    value.setAttribute('x', left + bw + 4); value.setAttribute('y', y + bh * 0.7); value.setAttribute('font-size', '11'); value.setAttribute('fill', '#6b7280');
    value.textContent = `${r.positiveMass.toFixed(2)} (${r.queries} q)`;
    svg.append(label, bar, value);
  });
}

function lineChart(svg, cells) {
  svg.innerHTML = '';
  const w = svg.clientWidth || 400, h = svg.clientHeight || 160, pad = 8;
  const starts = [...new Set(cells.map(c => c.start))].sort().slice(-30);
  const sources = [...new Set(cells.map(c => c.source))].sort((a, b) => a - b);
  const mass = new Map();
  for (const c of cells) if (starts.includes(c.start)) { const k = c.source + '|' + c.start; mass.set(k, (mass.get(k) ?? 0) + c.positiveMass); }
  const max = Math.max(1e-9, ...mass.values());
  const ns = 'http://www.w3.org/2000/svg';
  sources.forEach((s, si) => {
    const pts = starts.map((t, i) => {
      const x = pad + (starts.length === 1 ? (w - 2 * pad) / 2 : i * (w - 2 * pad) / (starts.length - 1));
      const y = h - pad - (h - 2 * pad) * (mass.get(s + '|' + t) ?? 0) / max;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' ')); line.setAttribute('fill', 'none'); line.setAttribute('stroke-width', '1.5');
    const flagged = cells.some(c => c.source === s && c.flagged);
    line.setAttribute('stroke', flagged ? '#dc2626' : palette[si % palette.length]);
    svg.append(line);
    pts.forEach(p => {
      const [x, y] = p.split(',');
      const dot = document.createElementNS(ns, 'circle');
      dot.setAttribute('cx', x); dot.setAttribute('cy', y); dot.setAttribute('r', '2.5'); dot.setAttribute('fill', line.getAttribute('stroke'));
      svg.append(dot);
    });
  });
}

async function pollLedger() {
  const cells = await json(`/api/ledger?window=${$('ledger-window').value}`);
  if (cells.length === 0) { $('ledger-bars').innerHTML = ''; $('ledger-lines').innerHTML = ''; return; }
  const latest = cells.reduce((m, c) => c.start > m ? c.start : m, cells[0].start);
  const bySource = new Map();
  for (const c of cells.filter(c => c.start === latest)) {
    const b = bySource.get(c.source) ?? { ...c, positiveMass: 0, queries: 0 };
    b.positiveMass += c.positiveMass; b.queries += c.queries; bySource.set(c.source, b);
  }
  barChart($('ledger-bars'), [...bySource.values()].sort((a, b) => b.positiveMass - a.positiveMass));
  lineChart($('ledger-lines'), cells);
}

async function pollAlerts() {
  const r = await json(`/api/alerts?after=${state.alertsAfter}`);
  $('alert-count').textContent = `${r.total} raised`;
  for (const a of r.items.filter(a => a.seq > state.alertsAfter)) {
    state.alertsAfter = a.seq;
    const e = a.evidence;
    const why = a.rule === 'example-lead'
      ? `its most specific training example is flagged (lead ${a.score.toFixed(2)} ≥ ${a.threshold})`
      : a.rule === 'calibrated'
        ? `calibrated score ${a.score.toFixed(3)} > ${a.threshold.toFixed(3)}` + (e && e.spanLength > 0 ? `; span "${e.matchedSpan}" (${e.spanLength} tokens, ${e.spanCount}× in training) in document ${e.documentIds[0]} (source ${e.documentSourceIds[0]})` : '')
          + (e ? `; flagged share of influence ${(100 * e.attributionShare).toFixed(0)} %` : '')
        : `flagged sources carry ${(100 * a.score).toFixed(0)} % of the positive source mass (threshold ${(100 * a.threshold).toFixed(0)} %)`;
    const card = el('div', { class: 'alert', 'data-alert': a.queryId },
      el('b', { text: a.queryId }), el('div', { class: 'why', text: `${a.rule}: ${why}` }),
      el('div', { class: 'why', text: 'flagged: ' + a.flaggedIds.join(', ') }));
    const evidence = el('div', { class: 'examples' });
    card.append(evidence);
    $('alerts').prepend(card);
    json(`/api/attributions/${encodeURIComponent(a.queryId)}`).then(q => evidence.append(...q.examples.slice(0, 4).map(exampleView))).catch(() => {});
  }
}

async function pollHealth() {
  const r = await json('/api/health');
  const h = $('health');
  h.innerHTML = '';
  for (const c of r.checks) h.append(el('span', { class: 'badge ' + c.status, title: c.description ?? '', text: `${c.name}: ${c.status}` }));
  const lag = r.feed.lag.reduce((s, p) => s + p.lag, 0);
  h.append(el('span', { class: 'badge', text: `feed ${r.feed.events} read · lag ${lag} · store ${r.store.rows} rows` }));
}

async function runSql() {
  const out = $('sql-result');
  out.innerHTML = '';
  try {
    const r = await json('/api/sql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: $('sql').value, maxRows: 200 }) });
    const table = el('table', {}, el('tr', {}, ...r.columns.map(c => el('th', { text: c }))));
    for (const row of r.rows) table.append(el('tr', {}, ...row.map(v => el('td', { text: v === null ? 'null' : String(v) }))));
    out.append(table);
  } catch (e) {
    out.append(el('div', { class: 'error', text: e.message }));
  }
}

async function tick() {
  await Promise.allSettled([pollStream(), pollLedger(), pollAlerts(), pollHealth()]);
  document.body.dataset.ticks = String(Number(document.body.dataset.ticks ?? 0) + 1);
}

// One poll at a time: the next starts a second after the previous one finished (a slow server never gets them stacked).
async function loop() {
  await tick();
  setTimeout(loop, 1000);
}

$('sql-run').addEventListener('click', runSql);
$('ledger-window').addEventListener('change', pollLedger);
loop();
