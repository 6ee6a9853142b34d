// The Outpost dashboard: hash-routed pages over the gateway's API (docs/dashboard.md).
import {
  api, on, emit, session, loadSession, login, logout, canWrite, allDevices, stream, openStream,
} from './api.js';

// ---------------------------------------------------------------------------------- helpers
const $ = (sel, root = document) => root.querySelector(sel);

// el('div.class', {attr: v, onclick: fn}, ...children): DOM without innerHTML (the CSP forbids
// inline styles and scripts; text is always text).
function el(tag, attrs = {}, ...kids) {
  const [name, ...classes] = tag.split('.');
  const e = document.createElement(name);
  if (classes.length) e.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) e.append(k);
  return e;
}

// Replaces `node`'s children with `kids`, leaving out null, undefined and false.
function fill(node, ...kids) {
  node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
}

function ago(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : '—');

function fmtValue(v) {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(2);
  return v === null || v === undefined ? '—' : String(v);
}

function metricsText(m, max = 3) {
  if (!m) return '';
  return Object.entries(m)
    .slice(0, max)
    .map(([k, v]) => `${k} ${fmtValue(v)}`)
    .join(' · ');
}

function badge(status) {
  return el(`span.badge.s-${status}`, { text: status.replace('_', ' ') });
}

function errorBox(err) {
  return el('p.error', { role: 'alert', text: err.message || String(err) });
}

// ------------------------------------------------------------------------------------ theme
const kThemeKey = 'outpost.theme';
const kThemes = ['auto', 'light', 'dark'];

function applyTheme(t) {
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
  const b = $('#theme');
  if (b) b.textContent = `Theme: ${t}`;
}

function currentTheme() {
  const t = localStorage.getItem(kThemeKey);
  return kThemes.includes(t) ? t : 'auto';
}

// ------------------------------------------------------------------------------------ state
// Devices by id, kept live from the stream; pages read it.
const state = {
  devices: new Map(),
  devicesLoaded: false,
  health: null,
  page: null, // {name, cleanup()}
};

async function refreshDevices() {
  performance.mark('outpost:devices-requested');
  const list = await allDevices();
  performance.mark('outpost:devices-fetched');
  state.devices = new Map(list.map((d) => [d.id, d]));
  state.devicesLoaded = true;
  emit('devices', null);
}

// One load of the devices at a time (the start and the devices page both ask for it).
let devicesLoading = null;
function ensureDevices() {
  devicesLoading ||= refreshDevices().finally(() => { devicesLoading = null; });
  return devicesLoading;
}

on('device', (d) => {
  const added = !state.devices.has(d.id);
  state.devices.set(d.id, d);
  emit('devices', { id: d.id, added, status: true });
});
on('reading', (r) => {
  const d = state.devices.get(r.device_id);
  const added = !d;
  if (!d) {
    state.devices.set(r.device_id, {
      id: r.device_id, status: 'online', reason: 'reading', last_seen_ms: r.received_ms,
      last_reading: r.metrics, counters: { readings: 1 },
    });
  } else {
    d.last_reading = { ...(d.last_reading || {}), ...r.metrics };
    d.last_seen_ms = r.received_ms;
    if (d.counters) d.counters.readings = (d.counters.readings || 0) + 1;
  }
  emit('devices', { id: r.device_id, added, status: false });
});
on('health', (h) => {
  state.health = h;
});
on('reset', () => {
  // The gateway could not replay what we missed: refetch what the pages show.
  refreshDevices().catch(() => {});
  route();
});

// ---------------------------------------------------------------------------- devices page
const kRowHeight = 48;
const kIdTail = 8;  // at most this many characters of a long id stay visible after its cut
const kStatusOrder = { online: 0, sleeping: 1, offline: 2, never_seen: 3 };

// The devices a filter and sort select, as an array (pure; the benchmark times it).
export function filterDevices(devices, { text = '', status = '', sort = 'id' } = {}) {
  const q = text.trim().toLowerCase();
  const out = [];
  for (const d of devices) {
    if (status && d.status !== status) continue;
    if (q && !d.id.toLowerCase().includes(q)) continue;
    out.push(d);
  }
  if (sort === 'id') out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  else if (sort === 'last_seen') out.sort((a, b) => (b.last_seen_ms || 0) - (a.last_seen_ms || 0));
  else if (sort === 'status') {
    out.sort((a, b) => kStatusOrder[a.status] - kStatusOrder[b.status] || (a.id < b.id ? -1 : 1));
  }
  return out;
}

function devicesPage(root) {
  const saved = JSON.parse(sessionStorage.getItem('outpost.devices') || '{}');
  const f = { text: saved.text || '', status: saved.status || '', sort: saved.sort || 'id' };
  let rows = [];
  const count = el('span.count', { 'aria-live': 'polite' });
  const text = el('input', {
    type: 'search', placeholder: 'Filter by id', 'aria-label': 'Filter devices by id', value: f.text,
  });
  const status = el('select', { 'aria-label': 'Status' },
    el('option', { value: '', text: 'All statuses' }),
    ...Object.keys(kStatusOrder).map((s) => el('option', { value: s, text: s.replace('_', ' ') })));
  status.value = f.status;
  const sort = el('select', { 'aria-label': 'Sort by' },
    el('option', { value: 'id', text: 'Sort: id' }),
    el('option', { value: 'status', text: 'Sort: status' }),
    el('option', { value: 'last_seen', text: 'Sort: last seen' }));
  sort.value = f.sort;
  const viewport = el('div.vlist', { role: 'list', tabindex: '0', 'aria-label': 'Devices' });
  const spacer = el('div.vspacer');
  const win = el('div.vwindow');
  spacer.append(win);
  viewport.append(spacer);
  root.append(
    el('div.toolbar', {}, el('h1', { text: 'Devices' }), count),
    el('div.filters', {}, text, status, sort),
    viewport,
  );

  function recompute() {
    rows = filterDevices(state.devices.values(), f);
    count.textContent = state.devicesLoaded
      ? `${rows.length} of ${state.devices.size}`
      : 'loading…';
    spacer.style.height = `${rows.length * kRowHeight}px`;
    draw();
    if (state.devicesLoaded && !performance.getEntriesByName('outpost:devices-listed').length) {
      performance.mark('outpost:devices-listed');
    }
  }

  // A long id is cut in its middle, not at its end: ids of one fleet differ in their last
  // characters (greenhouse-north-017, -018), which stay visible on a phone. The whole id is
  // the text (for search, copy and screen readers) and the tooltip.
  function idLabel(id) {
    if (id.length <= kIdTail) return el('span.id', { text: id, title: id });
    // The tail starts at the last separator within its reach, else kIdTail from the end.
    const sep = Math.max(...['-', '_', '.', ':'].map((c) => id.lastIndexOf(c)));
    const at = sep > 0 && sep >= id.length - kIdTail ? sep : id.length - kIdTail;
    return el('span.id.cut', { title: id },
      el('span.head', { text: id.slice(0, at) }),
      el('span.tail', { text: id.slice(at) }));
  }

  function row(d, now) {
    return el('a.vrow', { role: 'listitem', href: `#/device/${encodeURIComponent(d.id)}`, 'data-id': d.id },
      badge(d.status),
      idLabel(d.id),
      el('span.seen', { text: ago(d.last_seen_ms, now) }),
      el('span.metrics', { text: metricsText(d.last_reading) }));
  }

  function draw() {
    const top = viewport.scrollTop;
    const h = viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / kRowHeight) - 5);
    const last = Math.min(rows.length, Math.ceil((top + h) / kRowHeight) + 5);
    const now = Date.now();
    win.style.transform = `translateY(${first * kRowHeight}px)`;
    fill(win, ...rows.slice(first, last).map((d) => row(d, now)));
  }

  let pending = 0;
  let resort = false;
  const schedule = (full) => {
    resort ||= full;
    if (pending) return;
    pending = requestAnimationFrame(() => {
      pending = 0;
      if (resort) recompute();
      else draw();
      resort = false;
    });
  };
  const persist = () => sessionStorage.setItem('outpost.devices', JSON.stringify(f));
  text.addEventListener('input', () => { f.text = text.value; persist(); schedule(true); });
  status.addEventListener('change', () => { f.status = status.value; persist(); schedule(true); });
  sort.addEventListener('change', () => { f.sort = sort.value; persist(); schedule(true); });
  viewport.addEventListener('scroll', () => schedule(false), { passive: true });
  // A reading changes what a row shows; a new device or a status change may move rows.
  const off = on('devices', (c) => schedule(!c || c.added || (c.status && !!f.status) || f.sort !== 'id'));
  const tick = setInterval(() => schedule(false), 5000);
  addEventListener('resize', () => schedule(false));
  recompute();
  if (!state.devicesLoaded) ensureDevices().catch((e) => { if (e.status !== 401) root.append(errorBox(e)); });
  return () => { off(); clearInterval(tick); cancelAnimationFrame(pending); };
}

// ----------------------------------------------------------------------------- device page
const kRanges = [
  ['1 h', 3600e3], ['6 h', 6 * 3600e3], ['24 h', 86400e3], ['7 d', 7 * 86400e3], ['30 d', 30 * 86400e3],
];
const kSeedCommands = ['get_status', 'led', 'setSensorInterval', 'reboot', 'sync_cloud'];
const kFinalStates = new Set(['succeeded', 'failed', 'rejected', 'expired', 'canceled']);

let chartModule = null;
const loadCharts = () => (chartModule ||= import('./chart.js'));

function devicePage(root, id) {
  const cleanups = [];
  const head = el('div.toolbar');
  const lastBox = el('section.card', { 'aria-label': 'Last reading' });
  const controls = el('div.ranges', { role: 'group', 'aria-label': 'Time range' });
  const charts = el('div.charts');
  const alertsBox = el('section.card', { 'aria-label': 'Alerts' });
  const commandsBox = el('section.card', { 'aria-label': 'Commands' });
  root.append(
    el('p.back', {}, el('a', { href: '#/devices', text: '← Devices' })),
    head, lastBox,
    el('section.card', {}, el('h2', { text: 'History' }), controls, charts),
    commandsBox, alertsBox,
  );
  // The shown range: live (to = now, follows the stream) or a fixed zoom.
  const view = { span: 3600e3, from: 0, to: 0, live: true };
  const live = new Map(); // metric -> chart
  window.__outpost.charts = live;

  function renderHead() {
    const d = state.devices.get(id);
    fill(head,
      el('h1', { text: id }),
      d ? badge(d.status) : null,
      el('span.muted', { text: d ? `last seen ${ago(d.last_seen_ms)} · ${d.reason}` : '' }));
    const m = (d && d.last_reading) || {};
    fill(lastBox,
      el('h2', { text: 'Last reading' }),
      el('dl.kv', {}, ...Object.entries(m).map(([k, v]) => [el('dt', { text: k }), el('dd', { 'data-metric': k, text: fmtValue(v) })])),
      d ? el('p.muted', { text: `firmware ${d.firmware || '—'} · boot ${d.boot ?? '—'} · ${d.counters ? d.counters.readings : 0} readings, ${d.counters ? d.counters.seq_gaps : 0} gaps` }) : null);
  }

  function renderRanges() {
    fill(controls,
      ...kRanges.map(([label, span]) => el('button', {
        type: 'button', 'aria-pressed': String(view.live && view.span === span), text: label,
        onclick: () => { Object.assign(view, { span, live: true }); loadHistory(); },
      })),
      view.live ? null : el('button', {
        type: 'button', text: 'Reset zoom',
        onclick: () => { view.live = true; loadHistory(); },
      }),
      el('span.muted', {
        text: view.live ? 'live' : `${fmtTime(view.from)} – ${fmtTime(view.to)}`,
      }));
  }

  let loadSeq = 0;
  async function loadHistory() {
    const seq = ++loadSeq;
    renderRanges();
    const d = state.devices.get(id);
    const metrics = Object.entries((d && d.last_reading) || {})
      .filter(([, v]) => typeof v === 'number' || typeof v === 'boolean')
      .map(([k]) => k);
    if (view.live) {
      view.to = Date.now();
      view.from = view.to - view.span;
    }
    const { makeChart, seriesData } = await loadCharts();
    const width = Math.max(240, Math.floor(charts.clientWidth || root.clientWidth || 320));
    const results = await Promise.all(metrics.map((m) => api(
      `/api/v1/series?device=${encodeURIComponent(id)}&metric=${encodeURIComponent(m)}` +
      `&from=${Math.floor(view.from)}&to=${Math.ceil(view.to)}&points=${width}`,
    ).catch((e) => e)));
    if (seq !== loadSeq) return;
    for (const c of live.values()) c.destroy();
    live.clear();
    fill(charts);
    if (!metrics.length) charts.append(el('p.muted', { text: 'No readings yet.' }));
    metrics.forEach((m, i) => {
      const box = el('div.chart', { 'data-metric': m });
      charts.append(box);
      const r = results[i];
      if (r instanceof Error) return box.append(el('h3', { text: m }), errorBox(r));
      const c = makeChart(box, {
        title: m, width, data: seriesData(r), xRange: [view.from, view.to],
        onZoom: (from, to) => { Object.assign(view, { from, to, live: false }); loadHistory(); },
      });
      c.maxPoints = width * 2;
      live.set(m, c);
    });
  }

  // Alerts of this device.
  async function loadAlerts() {
    try {
      const r = await api(`/api/v1/alerts?device=${encodeURIComponent(id)}&limit=20`);
      fill(alertsBox, el('h2', { text: 'Alerts' }),
        r.alerts.length ? alertTable(r.alerts, loadAlerts) : el('p.muted', { text: 'No alerts.' }));
    } catch (e) {
      fill(alertsBox, el('h2', { text: 'Alerts' }), errorBox(e));
    }
  }

  // Commands (docs/api.md#commands): send, history with states and replies, cancel.
  const commands = new Map();
  let commandsAvailable = true;
  // Answers and stream events race (a POST's answer can arrive after the stream told of later
  // states): keep whichever copy has seen more transitions.
  function keep(c) {
    const old = commands.get(c.id);
    if (!old || (c.history || []).length >= (old.history || []).length) commands.set(c.id, c);
  }
  function renderCommands(note) {
    const d = state.devices.get(id);
    const form = el('form.cmd', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        const fd = new FormData(form);
        const body = { command: fd.get('command') };
        const params = String(fd.get('params') || '').trim();
        try {
          if (params) body.params = JSON.parse(params);
          if (fd.get('ttl_s')) body.ttl_s = Number(fd.get('ttl_s'));
          const c = await api(`/api/v1/devices/${encodeURIComponent(id)}/commands`, {
            method: 'POST', body, headers: { 'Idempotency-Key': crypto.randomUUID() },
          });
          keep(c);
          renderCommands();
        } catch (e) {
          renderCommands(e.message);
        }
      },
    },
    el('label', {}, 'Command ', el('input', { name: 'command', list: 'cmd-names', required: true, value: 'get_status', autocomplete: 'off' })),
    el('datalist', { id: 'cmd-names' }, ...kSeedCommands.map((c) => el('option', { value: c }))),
    el('label', {}, 'Params (JSON) ', el('input', { name: 'params', placeholder: '{"interval": 30}' })),
    el('label', {}, 'TTL s ', el('input', { name: 'ttl_s', type: 'number', min: '1', placeholder: '300' })),
    el('button', { type: 'submit', disabled: !canWrite() || !commandsAvailable, text: 'Send' }));
    const list = [...commands.values()].sort((a, b) => b.created_ms - a.created_ms);
    fill(commandsBox,
      el('h2', { text: 'Commands' }),
      commandsAvailable ? form : el('p.muted', { text: 'This gateway does not relay commands yet.' }),
      note ? el('p.error', { role: 'alert', text: note }) : null,
      !canWrite() ? el('p.muted', { text: 'Viewers cannot send commands.' }) : null,
      list.length ? el('ul.commands', {}, ...list.map((c) => el('li', { 'data-command': c.id },
        el('span.cmd-name', { text: c.command }),
        el(`span.state.c-${c.state}`, { text: c.state }),
        el('span.muted', { text: ` ${fmtTime(c.updated_ms)} by ${c.user || '—'}` }),
        c.transport === 'seed' && c.state === 'sent'
          ? el('span.muted', { text: ' · seed device: sends no reply, so this ends at sent' }) : null,
        c.reply ? el('code.reply', { text: JSON.stringify(c.reply) }) : null,
        !kFinalStates.has(c.state) && canWrite() ? el('button', {
          type: 'button', text: 'Cancel',
          onclick: async () => {
            try {
              const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/commands/${encodeURIComponent(c.id)}/cancel`, { method: 'POST' });
              keep(r);
              renderCommands();
            } catch (e) { renderCommands(e.message); }
          },
        }) : null,
        el('details', {}, el('summary', { text: 'history' }),
          el('ol', {}, ...(c.history || []).map((h) => el('li', { text: `${h.state} ${fmtTime(h.at_ms)}${h.user ? ` by ${h.user}` : ''}` }))))))) : null,
      d && d.status !== 'online' && commandsAvailable
        ? el('p.muted', { text: `The device is ${d.status}: commands wait in the gateway's queue until it is back.` }) : null);
  }
  async function loadCommands() {
    try {
      const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/commands?limit=20`);
      for (const c of r.commands) keep(c);
    } catch (e) {
      if (e.status === 404 && e.code === 'not_found') commandsAvailable = false;
    }
    renderCommands();
  }

  cleanups.push(on('reading', (r) => {
    if (r.device_id !== id) return;
    for (const [k, v] of Object.entries(r.metrics)) {
      const dd = lastBox.querySelector(`dd[data-metric="${CSS.escape(k)}"]`);
      if (dd) dd.textContent = fmtValue(v);
      const c = live.get(k);
      if (c && view.live && chartModule) {
        chartModule.then((m) => m.appendPoint(c, r.ts_ms, typeof v === 'boolean' ? Number(v) : v, c.maxPoints));
      }
    }
    if (!lastBox.querySelector('dd')) renderHead();
  }));
  cleanups.push(on('device', (d) => { if (d.id === id) renderHead(); }));
  cleanups.push(on('alert', (a) => { if (a.device_id === id) loadAlerts(); }));
  cleanups.push(on('command', (c) => {
    if (c.device !== id) return;
    keep(c);
    renderCommands();
  }));
  const tick = setInterval(renderHead, 5000);
  cleanups.push(() => clearInterval(tick));
  cleanups.push(() => { for (const c of live.values()) c.destroy(); });

  (async () => {
    if (!state.devices.has(id)) {
      try {
        state.devices.set(id, await api(`/api/v1/devices/${encodeURIComponent(id)}`));
      } catch (e) {
        root.append(errorBox(e));
        return;
      }
    }
    renderHead();
    renderCommands();
    await Promise.all([loadHistory(), loadAlerts(), loadCommands()]);
  })().catch((e) => root.append(errorBox(e)));
  return () => cleanups.forEach((f) => f());
}

// ----------------------------------------------------------------------------- alerts page
function alertTable(alerts, reload, selected) {
  return el('ul.alerts', {}, ...alerts.map((a) => el('li', { 'data-alert': a.id, class: `sev-${a.severity}` },
    selected && !a.ack ? el('input', {
      type: 'checkbox', 'aria-label': `Select ${a.id}`, checked: selected.has(a.id),
      onchange: (e) => (e.target.checked ? selected.add(a.id) : selected.delete(a.id)),
    }) : null,
    el('span.state', { text: a.state }),
    el('span.sev', { text: a.severity }),
    el('a', { href: `#/device/${encodeURIComponent(a.device_id)}`, text: a.device_id }),
    el('span.msg', { text: a.message }),
    el('span.muted', { text: fmtTime(a.raised_ms) }),
    a.ack
      ? el('span.acked', { text: `acked by ${a.ack.user} ${ago(a.ack.ms)}${a.ack.comment ? `: ${a.ack.comment}` : ''}` })
      : canWrite() ? el('button', {
        type: 'button', text: 'Ack',
        onclick: async (e) => {
          e.target.disabled = true;
          try {
            await api(`/api/v1/alerts/${encodeURIComponent(a.id)}/ack`, { method: 'POST', body: {} });
          } catch (err) {
            e.target.replaceWith(errorBox(err));
            return;
          }
          reload();
        },
      }) : null)));
}

function alertsPage(root) {
  const f = { state: 'active', acked: 'false' };
  const selected = new Set();
  const list = el('div');
  const comment = el('input', { placeholder: 'Comment (optional)', 'aria-label': 'Comment', maxlength: '500' });
  const note = el('p', { 'aria-live': 'polite' });
  const stateSel = el('select', { 'aria-label': 'State' }, ...['active', 'cleared', 'all'].map((s) => el('option', { value: s, text: s })));
  const ackSel = el('select', { 'aria-label': 'Acknowledged' },
    el('option', { value: 'false', text: 'unacknowledged' }), el('option', { value: 'true', text: 'acknowledged' }),
    el('option', { value: '', text: 'acked or not' }));
  stateSel.value = f.state;
  ackSel.value = f.acked;
  const bulk = el('button', {
    type: 'button', text: 'Acknowledge selected', disabled: !canWrite(),
    onclick: async () => {
      if (!selected.size) { note.textContent = 'Select alerts first.'; return; }
      try {
        const r = await api('/api/v1/alerts/ack', { method: 'POST', body: { ids: [...selected].slice(0, 100), comment: comment.value } });
        note.textContent = `Acknowledged ${r.acked} of ${r.results.length}.`;
        selected.clear();
      } catch (e) {
        note.textContent = e.message;
      }
      load();
    },
  });
  root.append(el('div.toolbar', {}, el('h1', { text: 'Alerts' })),
    el('div.filters', {}, stateSel, ackSel), el('div.filters', {}, comment, bulk), note, list);
  async function load() {
    const q = new URLSearchParams({ state: f.state, limit: '200' });
    if (f.acked) q.set('acked', f.acked);
    try {
      const r = await api(`/api/v1/alerts?${q}`);
      fill(list, r.alerts.length ? alertTable(r.alerts, load, selected) : el('p.muted', { text: 'No alerts.' }));
    } catch (e) {
      fill(list, errorBox(e));
    }
  }
  stateSel.addEventListener('change', () => { f.state = stateSel.value; load(); });
  ackSel.addEventListener('change', () => { f.acked = ackSel.value; load(); });
  let t = 0;
  const off = on('alert', () => { clearTimeout(t); t = setTimeout(load, 200); });
  load();
  return () => { off(); clearTimeout(t); };
}

// ----------------------------------------------------------------------------- health page
function healthPage(root) {
  const box = el('div.grid');
  root.append(el('div.toolbar', {}, el('h1', { text: 'Gateway health' })), box);
  const fmtBytes = (b) => (b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(1)} GiB` : b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${Math.round((b || 0) / 1024)} KiB`);
  function render(h) {
    const g = (path) => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), h);
    const rate = typeof g('ingest.rate_per_s') === 'number' ? g('ingest.rate_per_s').toFixed(1) : '—';
    const uplink = g('cloud.enabled') === false ? 'off'
      : g('cloud.last_error') ? `error: ${g('cloud.last_error')}` : g('cloud.enabled') ? 'ok' : '—';
    const card = (title, rows) => el('section.card', {}, el('h2', { text: title }),
      el('dl.kv', {}, ...rows.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: v === undefined || v === null ? '—' : String(v) })])));
    fill(box,
      card('Ingest', [['stored', g('ingest.stored')], ['readings /s', rate], ['rejected', g('ingest.rejected')], ['duplicates', g('ingest.duplicates')]]),
      card('Devices', [['known', h.devices_count], ['online', g('devices.online')], ['offline', g('devices.offline')], ['alerts active', g('alerts.active')]]),
      card('Cloud backlog', [['readings', g('cloud.backlog.readings')], ['bytes', fmtBytes(g('cloud.backlog.bytes'))], ['oldest', `${fmtValue(g('cloud.backlog.oldest_age_s'))} s`], ['uplink', uplink]]),
      card('Store', [['database', fmtBytes(g('store.db_bytes'))], ['disk free', fmtBytes(g('store.disk_free_bytes'))], ['readings kept', h.local_db_records], ['state', g('store.state')]]),
      card('System', [['CPU', typeof h.cpu_usage === 'number' ? `${h.cpu_usage.toFixed(1)} %` : '—'], ['RSS', fmtBytes(h.rss_bytes)], ['broker', g('mqtt.connected') ? 'connected' : 'disconnected'], ['stream clients', g('stream.clients')]]));
  }
  api('/api/v1/health').then(render).catch((e) => fill(box, errorBox(e)));
  return on('health', render);
}

// ------------------------------------------------------------------------------ login page
let afterLogin = '#/devices';
function loginPage(root) {
  const err = el('p.error', { role: 'alert' });
  const form = el('form.login', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const fd = new FormData(form);
      err.textContent = '';
      try {
        await login(String(fd.get('user')), String(fd.get('password')));
        location.hash = afterLogin;
        openStream();
      } catch (e) {
        err.textContent = e.code === 'bad_credentials' ? 'Wrong user or password.'
          : e.code === 'too_many_attempts' ? 'Too many attempts; try again later.' : e.message;
      }
    },
  },
  el('h1', { text: 'Sign in' }),
  el('label', {}, 'User', el('input', { name: 'user', autocomplete: 'username', required: true })),
  el('label', {}, 'Password', el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
  el('button', { type: 'submit', text: 'Sign in' }), err);
  root.append(form);
  $('input', form).focus();
}

// ---------------------------------------------------------------------------------- router
function route() {
  const main = $('#view');
  if (state.page) state.page();
  state.page = null;
  fill(main);
  const hash = location.hash || '#/devices';
  const [, name, arg] = hash.match(/^#\/([a-z]+)\/?(.*)$/) || [null, 'devices', ''];
  for (const a of document.querySelectorAll('nav a')) {
    a.toggleAttribute('aria-current', a.getAttribute('href') === `#/${name}`);
  }
  const pages = { devices: devicesPage, alerts: alertsPage, health: healthPage, login: loginPage };
  if (name === 'device' && arg) state.page = devicePage(main, decodeURIComponent(arg));
  else state.page = (pages[name] || devicesPage)(main) || null;
  document.title = `${name === 'device' ? decodeURIComponent(arg) : name} · Outpost`;
}

function renderUser() {
  const box = $('#user');
  fill(box);
  if (!session.auth) return;
  if (session.user) {
    box.append(el('span', { text: `${session.user} (${session.role})` }),
      el('button', { type: 'button', text: 'Sign out', onclick: async () => { await logout().catch(() => {}); location.hash = '#/login'; } }));
  }
}

on('unauthorized', () => {
  if (!location.hash.startsWith('#/login')) afterLogin = location.hash || '#/devices';
  Object.assign(session, { user: null, role: null, csrf: '', auth: true });
  renderUser();
  if (!location.hash.startsWith('#/login')) location.hash = '#/login';
});
on('session', renderUser);
on('stream', (up) => {
  const s = $('#live');
  s.textContent = up ? 'live' : 'reconnecting…';
  s.className = up ? 'live up' : 'live';
});

async function start() {
  applyTheme(currentTheme());
  $('#theme').addEventListener('click', () => {
    const t = kThemes[(kThemes.indexOf(currentTheme()) + 1) % kThemes.length];
    localStorage.setItem(kThemeKey, t);
    applyTheme(t);
    route(); // charts take their colours when made
  });
  addEventListener('hashchange', route);
  // The devices load beside the session: the first view waits for one round trip, not two.
  if (!location.hash || location.hash.startsWith('#/devices')) ensureDevices().catch(() => {});
  await loadSession().catch(() => {});
  route();
  if (session.user || !session.auth) openStream();
}

// For the browser tests and the benchmark: the app's state and pure pieces.
window.__outpost = { state, stream, filterDevices, loadCharts, session };

start();
