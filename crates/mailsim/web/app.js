// The web page of a live mailsim world (crates/mailsim/src/api/web.rs). Plain JavaScript, no
// build step, no dependency: it reads the JSON API (/api/v1/...) and renders one view at a time.
// Listings ask the API for one page (start/limit), never the whole world, so a world of 10,000
// messages renders 50 rows. /api/v1/events says when the world changed; the view shown then
// re-reads its page.
'use strict';

const PAGE = 50;
const main = document.getElementById('main');
const state = {
  messages: { q: '', where: '', start: 0 },
  trace: { sender: '', recipient: '', status: '', message_id: '', start: 0 },
  openTrace: new Set(),
  version: null,
};
let refresh = null;   // the current view's re-read, called on `change` events
let busy = false;
let again = false;

// h('tag', {attr: value, onclick: fn}, child...): an element; strings become text (never HTML).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, opts) {
  const r = await fetch(path, opts);
  const type = r.headers.get('content-type') || '';
  const body = type.includes('json') ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.detail) || `${r.status} ${r.statusText}`);
  return body;
}

function post(path, body) {
  return api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body || {}) });
}

function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) p.set(k, v);
  return p.toString();
}

function time(t) {
  if (typeof t === 'number') return new Date(t).toISOString().replace('.000Z', 'Z');
  return t || '';
}

function show(...nodes) {
  main.replaceChildren(...nodes);
  main.setAttribute('aria-busy', 'false');
}

function table(head, rows, caption) {
  return h('table', {},
    caption ? h('caption', { class: 'note' }, caption) : null,
    h('thead', {}, h('tr', {}, head.map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows));
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(p => p).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function statusCell(s) {
  return h('td', { class: `status-${s}` }, s);
}

// Keeps focus on the same control (by data-key) across a re-render of a listing.
function keepFocus(render) {
  const key = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.key;
  render();
  if (key) {
    const el = main.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (el) el.focus();
  }
}

function pager(page, st, limit, go) {
  const first = page.total ? page.start + 1 : 0;
  const last = page.start + page.count;
  return h('div', { class: 'pager' },
    h('button', { type: 'button', 'data-key': 'newer', disabled: page.start === 0, onclick: () => { st.start = Math.max(0, st.start - limit); go(); } }, '← Newer'),
    h('span', { role: 'status' }, `${first}–${last} of ${page.total}`),
    h('button', { type: 'button', 'data-key': 'older', disabled: last >= page.total, onclick: () => { st.start += limit; go(); } }, 'Older →'));
}

// ---- messages ---------------------------------------------------------------------------------

let worldCache = null;
async function world() {
  if (!worldCache) worldCache = await api('/api/v1/world');
  return worldCache;
}

async function messagesView() {
  const st = state.messages;
  const w = await world().catch(() => null);
  const places = w ? [
    ...(w.tenant.mailboxes || []),
    ...w.hosts.filter(x => x.role === 'peer').map(x => x.name),
  ] : [];
  const list = h('div', { id: 'message-list' });
  const search = h('input', { type: 'search', name: 'q', value: st.q, 'aria-label': 'Search envelope, From, To, Subject', placeholder: 'search' });
  const where = h('select', { name: 'where', 'aria-label': 'Where' },
    h('option', { value: '' }, 'everywhere'),
    h('option', { value: 'mailbox' }, 'tenant mailboxes'),
    h('option', { value: 'peer' }, 'scripted peers'),
    places.map(p => h('option', { value: p }, p)));
  where.value = st.where;
  const form = h('form', { class: 'filters', role: 'search', onsubmit: e => { e.preventDefault(); st.q = search.value; st.where = where.value; st.start = 0; load(); } },
    h('label', {}, 'Search', search), h('label', {}, 'Where', where), h('button', { type: 'submit' }, 'Filter'));
  show(h('h2', {}, 'Messages'), form, list);

  async function load() {
    const page = await api(`/api/v1/messages?${qs({ q: st.q, where: st.where, start: st.start, limit: PAGE })}`);
    if (page.count === 0 && st.start > 0 && page.total > 0) { st.start = Math.max(0, page.total - PAGE); return load(); }
    keepFocus(() => list.replaceChildren(
      table(['Time', 'Where', 'MAIL FROM', 'RCPT TO', 'Subject', 'Size'], page.messages.map(m => h('tr', { 'data-id': m.id },
        h('td', {}, time(m.time)),
        h('td', {}, `${m.where}${m.kind === 'peer' ? ' (peer)' : ''}`),
        h('td', {}, m.mail_from || '<>'),
        h('td', {}, m.rcpt_to.join(', ')),
        h('td', {}, h('a', { href: `#/message/${encodeURIComponent(m.id)}`, 'data-key': m.id }, m.subject || '(no subject)')),
        h('td', { class: 'num' }, m.size))), page.total ? null : 'No message yet: send one and it appears here.'),
      pager(page, st, PAGE, load)));
  }
  refresh = load;
  await load();
}

function endpoint(e) {
  if (!e) return '';
  const extra = [e.host, e.address ? `[${e.address}]` : null].filter(Boolean).join(' ');
  return extra ? `${e.name} (${extra})` : e.name;
}

function hopsTable(hops) {
  if (!hops || !hops.length) return h('p', { class: 'note' }, 'No Received header.');
  return table(['Hop', 'Delay', 'From', 'By', 'With', 'TLS', 'Time'], hops.map(x => h('tr', { class: 'hop' },
    h('td', { class: 'num' }, x.hop),
    h('td', { class: 'num' }, x.delay || ''),
    h('td', { class: 'wrap' }, endpoint(x.from)),
    h('td', { class: 'wrap' }, endpoint(x.by)),
    h('td', {}, x.with || ''),
    h('td', {}, x.tls ? [x.tls.version, x.tls.cipher].filter(Boolean).join(' ') || 'yes' : ''),
    h('td', {}, x.time || x.date || ''))), 'The Received chain, oldest hop first, with the delay since the hop before');
}

async function messageView(id) {
  const m = await api(`/api/v1/messages/${encodeURIComponent(id)}`);
  const s = m.summary || {};
  const raw = h('pre', { class: 'raw', tabindex: '0', 'aria-label': 'Raw source' }, 'Loading…');
  const trace = s.message_id ? h('a', { href: `#/trace?message_id=${encodeURIComponent(s.message_id)}` }, s.message_id) : '';
  const parts = [
    h('p', {}, h('a', { href: '#/messages' }, '← Messages')),
    h('h2', {}, s.subject || '(no subject)'),
    h('h3', {}, 'Envelope'),
    facts([
      ['Where', `${s.where || ''}${s.kind === 'peer' ? ' (scripted peer)' : ''}`],
      ['MAIL FROM', s.mail_from || '<>'],
      ['RCPT TO', (s.rcpt_to || []).join(', ')],
      ['From', s.from || ''],
      ['To', (s.to || []).join(', ')],
      ['Message-ID', trace],
      ['Client IP', s.client_ip || ''],
      ['Time', time(s.time)],
      ['Size', `${s.size} octets`],
    ]),
    h('h3', {}, 'TLS'),
    s.tls ? facts([
      ['Version', s.tls.version],
      ['Cipher', s.tls.cipher],
      ['SNI', s.tls.sni || '—'],
      ['Client certificate', s.tls.client_cert_subject || 'none'],
      s.tls.client_cert_trust ? ['Certificate trust', s.tls.client_cert_trust] : null,
    ]) : h('p', { class: 'note' }, 'Not over TLS.'),
  ];
  if (m.ndr) {
    parts.push(h('h3', { id: 'ndr' }, 'Non-delivery report'),
      table(['Recipient', 'Action', 'Status', 'Diagnostic'], m.ndr.recipients.map(r => h('tr', { class: 'ndr' },
        h('td', {}, r.final_recipient), h('td', {}, r.action), h('td', { class: 'status-Failed' }, r.status), h('td', { class: 'wrap' }, r.diagnostic || '')))));
  }
  parts.push(h('h3', { id: 'hops' }, 'Hops'), hopsTable(m.hops),
    h('h3', {}, 'Headers'),
    table(['Name', 'Value'], (m.headers || []).map(x => h('tr', {}, h('th', { scope: 'row' }, x.name), h('td', { class: 'wrap' }, x.value)))),
    h('h3', {}, 'Raw source ', h('a', { href: `/api/v1/messages/${encodeURIComponent(id)}/raw`, download: 'message.eml' }, '(download)')), raw);
  show(...parts);
  refresh = null;
  api(`/api/v1/messages/${encodeURIComponent(id)}/raw`).then(t => { raw.textContent = t; }, e => { raw.textContent = e.message; });
  main.focus();
}

// ---- trace ------------------------------------------------------------------------------------

async function traceView(params) {
  const st = state.trace;
  if (params.has('message_id')) { st.message_id = params.get('message_id'); st.start = 0; }
  const input = (name, label) => h('label', {}, label, h('input', { name, value: st[name], type: 'search' }));
  const status = h('select', { name: 'status' }, ['', 'Delivered', 'Pending', 'Failed', 'GettingStatus', 'Quarantined'].map(s => h('option', { value: s }, s || 'any')));
  status.value = st.status;
  const form = h('form', { class: 'filters', role: 'search', onsubmit: e => {
    e.preventDefault();
    for (const k of ['sender', 'recipient', 'message_id']) st[k] = form.elements[k].value.trim();
    st.status = status.value; st.start = 0; load();
  } }, input('sender', 'Sender'), input('recipient', 'Recipient'), h('label', {}, 'Status', status), input('message_id', 'Message-ID'), h('button', { type: 'submit' }, 'Filter'));
  const list = h('div', { id: 'trace-list' });
  show(h('h2', {}, 'Message trace'), form, list);

  async function load() {
    const page = await api(`/api/v1/trace?${qs({ sender: st.sender, recipient: st.recipient, status: st.status, message_id: st.message_id, start: st.start, limit: PAGE })}`);
    const rows = [];
    for (const r of page.rows) {
      const key = `${r.message_id}\n${r.recipient}`;
      const open = state.openTrace.has(key);
      rows.push(h('tr', { class: 'row' },
        h('td', {}, time(r.received)), h('td', {}, r.sender || '<>'), h('td', {}, r.recipient), statusCell(r.status),
        h('td', {}, r.from_ip), h('td', {}, r.to_ip), h('td', { class: 'wrap' }, r.message_id),
        h('td', {}, h('button', { type: 'button', 'aria-expanded': String(open), 'data-key': `ev:${key}`, onclick: () => {
          if (open) state.openTrace.delete(key); else state.openTrace.add(key);
          load();
        } }, `${r.events} events`))));
      if (open) rows.push(h('tr', { class: 'events' }, h('td', { colspan: '8' }, await eventsOf(r))));
    }
    keepFocus(() => list.replaceChildren(
      table(['Received', 'Sender', 'Recipient', 'Status', 'From IP', 'To IP', 'Message-ID', 'Events'], rows, page.total ? null : 'No trace row matches.'),
      pager(page, st, PAGE, load)));
  }
  refresh = load;
  await load();
}

async function eventsOf(row) {
  try {
    const t = await api(`/api/v1/trace/${encodeURIComponent(row.message_id)}`);
    const mine = t.rows.find(x => x.row.recipient === row.recipient) || t.rows[0];
    return table(['Time', 'Event', 'Connector', 'To', 'Detail'], mine.events.map(e => h('tr', {},
      h('td', {}, time(e.at)), h('td', {}, e.event), h('td', {}, e.connector || ''), h('td', {}, e.to_ip || ''), h('td', { class: 'wrap' }, e.detail))));
  } catch (e) {
    return h('p', { class: 'error' }, e.message);
  }
}

// ---- queue ------------------------------------------------------------------------------------

async function queueView() {
  const out = h('p', { role: 'status', id: 'queue-status', class: 'note' });
  const custom = h('input', { name: 'by', value: '1h', size: '6', 'aria-label': 'Advance by (90s, 5m, 25h, 1h30m, 2d)' });
  const list = h('div', { id: 'queue-list' });
  async function act(label, call) {
    out.textContent = `${label}…`;
    try {
      const r = await call();
      out.textContent = `${label}: done${r.retried !== undefined ? `, ${r.retried} retried` : ''}; ${r.queued} queued${r.time ? `; simulated time ${r.time}` : ''}.`;
    } catch (e) {
      out.textContent = `${label}: ${e.message}`;
      out.className = 'error';
      return;
    }
    out.className = 'note';
    await load();
  }
  const advance = by => act(`Advance ${by}`, () => post('/api/v1/clock/advance', { by }));
  const actions = h('div', { class: 'actions' },
    h('button', { type: 'button', id: 'retry-now', onclick: () => act('Retry now', () => post('/api/v1/queue/retry', {})) }, 'Retry now'),
    h('button', { type: 'button', onclick: () => advance('5m') }, 'Advance 5 m'),
    h('button', { type: 'button', onclick: () => advance('1h') }, 'Advance 1 h'),
    h('button', { type: 'button', id: 'advance-25h', onclick: () => advance('25h') }, 'Advance 25 h'),
    h('form', { class: 'actions', onsubmit: e => { e.preventDefault(); advance(custom.value.trim()); } },
      h('label', {}, 'Advance by', custom), h('button', { type: 'submit' }, 'Advance')));
  show(h('h2', {}, 'Queue'), actions, out, list);

  async function load() {
    const q = await api('/api/v1/queue?limit=200');
    const shown = q.entries;
    keepFocus(() => list.replaceChildren(
      h('p', { class: 'note' }, `${q.count} deferred ${q.count === 1 ? 'entry' : 'entries'} at ${q.time}${q.count > shown.length ? ` (first ${shown.length} shown)` : ''}.`),
      table(['Message-ID', 'Sender', 'Recipients', 'Next hop', 'Attempts', 'Next attempt', 'Last error'], shown.map(e => h('tr', {},
        h('td', { class: 'wrap' }, h('a', { href: `#/trace?message_id=${encodeURIComponent(e.message_id)}` }, e.message_id)),
        h('td', {}, e.sender || '<>'), h('td', {}, e.recipients.join(', ')), h('td', {}, e.hop),
        h('td', { class: 'num' }, e.attempts), h('td', {}, e.next_attempt), h('td', { class: 'wrap' }, e.last_error || ''))))));
  }
  refresh = load;
  await load();
}

// ---- world ------------------------------------------------------------------------------------

async function worldView() {
  worldCache = null;
  const w = await world();
  const t = w.tenant;
  const list = xs => (xs && xs.length ? xs.join(', ') : '—');
  const img = h('img', { src: `/api/v1/graph.svg?v=${state.version ? state.version.trace : 0}`, alt: 'Mail-flow picture: hosts, the tenant, connectors, DNS MX records and message paths (also as DOT at /api/v1/graph.dot)' });
  show(
    h('h2', {}, 'World'),
    facts([
      ['Mode', w.mode], w.scenario ? ['Scenario', w.scenario] : null, ['Tenant source', t.source],
      ['Tenant endpoint', w.tenant_endpoint], ['Server name', t.server_name || ''], ['DNS server', w.dns || '—'], ['Simulated time', w.time],
    ]),
    h('h3', {}, 'Address plan'),
    table(['Host', 'Role', 'Declared address', 'Loopback', 'Port'], w.hosts.map(x => h('tr', {},
      h('td', {}, x.name), h('td', {}, x.role), h('td', {}, x.declared), h('td', {}, x.loopback), h('td', { class: 'num' }, x.port)))),
    h('div', { class: 'cols' },
      h('section', {}, h('h3', {}, 'Accepted domains'), table(['Domain', 'Type'], t.accepted_domains.map(d => h('tr', {}, h('td', {}, d.name), h('td', {}, d.type))))),
      h('section', {}, h('h3', {}, 'Mailboxes'), h('ul', {}, (t.mailboxes || []).map(m => h('li', {}, h('a', { href: '#/messages', onclick: () => { state.messages.where = m; state.messages.start = 0; } }, m)))))),
    h('h3', {}, 'Inbound connectors'),
    table(['Name', 'Enabled', 'Type', 'Sender IPs', 'Sender domains', 'TLS certificate name', 'Require TLS'], t.inbound_connectors.map(c => h('tr', {},
      h('td', {}, c.name), h('td', {}, c.enabled ? 'yes' : 'no'), h('td', {}, c.type || ''), h('td', {}, list(c.sender_ip_addresses)),
      h('td', {}, list(c.sender_domains)), h('td', {}, c.tls_sender_certificate_name || '—'), h('td', {}, c.require_tls ? 'yes' : 'no'))), t.inbound_connectors.length ? null : 'No inbound connector.'),
    h('h3', {}, 'Outbound connectors'),
    table(['Name', 'Enabled', 'Recipient domains', 'Route', 'TLS'], t.outbound_connectors.map(c => h('tr', {},
      h('td', {}, c.name), h('td', {}, c.enabled ? 'yes' : 'no'),
      h('td', {}, c.all_accepted_domains ? 'all accepted domains' : list(c.recipient_domains)),
      h('td', {}, c.use_mx_record ? 'MX' : `smart hosts ${list(c.smart_hosts)}`),
      h('td', {}, `${c.tls_settings || ''}${c.tls_domain ? ` (${c.tls_domain})` : ''}`))), t.outbound_connectors.length ? null : 'No outbound connector: mail leaves by MX.'),
    h('h3', {}, 'Mail flow'),
    h('div', { class: 'graph' }, img),
    h('p', {}, h('a', { href: '/api/v1/graph.svg', target: '_blank' }, 'Open the picture'), ' · ', h('a', { href: '/api/v1/graph.dot' }, 'DOT')));
  refresh = async () => { img.src = `/api/v1/graph.svg?v=${state.version ? state.version.trace : 0}`; };
}

// ---- routing and live updates -----------------------------------------------------------------

async function route() {
  const hash = location.hash || '#/messages';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  const view = parts[0] === 'message' ? 'messages' : (parts[0] || 'messages');
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  main.setAttribute('aria-busy', 'true');
  refresh = null;
  try {
    if (parts[0] === 'message' && parts[1]) await messageView(decodeURIComponent(parts.slice(1).join('/')));
    else if (view === 'trace') await traceView(params);
    else if (view === 'queue') await queueView();
    else if (view === 'world') await worldView();
    else await messagesView();
  } catch (e) {
    show(h('h2', {}, 'Error'), h('p', { class: 'error', role: 'alert' }, e.message));
  }
  document.body.dataset.view = view;
  document.body.dataset.ready = 'true';
  // When the first view became usable, in ms since navigation began (read by the speed benchmark).
  if (window.mailsimReadyMs === undefined) window.mailsimReadyMs = performance.now();
}

async function changed() {
  if (!refresh) return;
  if (busy) { again = true; return; }
  busy = true;
  try { await refresh(); } catch (e) { /* the next change retries */ }
  busy = false;
  if (again) { again = false; changed(); }
}

// The simulated clock runs with real time between advances: shown ticking, from the last offset.
let clockOffset = 0;
function tick() {
  document.getElementById('clock').textContent = `simulated time ${new Date(Date.now() + clockOffset).toISOString().slice(0, 19)}Z`;
}
setInterval(tick, 1000);

function live() {
  const badge = document.getElementById('live');
  const es = new EventSource('/api/v1/events');
  // Leaving the page closes the stream at once: a browser holds few connections per server, and
  // a page kept for "back" must not keep one.
  window.addEventListener('pagehide', () => es.close());
  es.addEventListener('open', () => { badge.textContent = 'live'; badge.className = ''; });
  es.addEventListener('error', () => { badge.textContent = 'reconnecting…'; badge.className = 'down'; });
  es.addEventListener('change', e => {
    const first = state.version === null;
    state.version = JSON.parse(e.data);
    clockOffset = Date.parse(state.version.time) - Date.now();
    tick();
    if (!first) changed();
  });
}

window.addEventListener('hashchange', route);
route();
live();
