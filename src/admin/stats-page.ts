// The stats page: GET / on the admin listener, in the spirit of HAProxy's stats page. One self-contained
// HTML page (inline CSS and script, no external assets, no framework) that polls GET /stats.json every
// second and draws one table per service: each server's state (a colour per state: up green, down red,
// drain amber, maint grey), weights, connections, and a totals row; above them, connections by outcome
// with rates per second, computed client-side from two successive polls, and the pending counts.
// The script renders every value with textContent, never innerHTML, so a server name cannot inject markup;
// the Content-Security-Policy admits only this page's own style and script (by hash) and fetches to self.
import { createHash } from 'node:crypto'
import type http from 'node:http'
import type { AdminSource } from './server'

const STYLE = `
body { font: 13px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; background: #f7f7f7 }
h1 { font-size: 18px; margin: 0 0 .2em } h2 { font-size: 14px; margin: 1.2em 0 .3em }
#status { color: #555 } #status.stale { color: #b00; font-weight: bold }
table { border-collapse: collapse; background: #fff; min-width: 40em; margin-bottom: .5em }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; white-space: nowrap }
th { background: #445; color: #fff; font-weight: 600 } td.name, th.name { text-align: left }
tr.state-up td { background: #c8f0c8 } tr.state-down td { background: #f4b8b8 }
tr.state-drain td { background: #f8dc98 } tr.state-maint td { background: #d8d8d8; color: #555 }
tr.total td { background: #e8e8f0; font-weight: 600 }
td.state { text-transform: uppercase; font-weight: 600; text-align: center }
.legend span { display: inline-block; padding: 0 8px; margin-right: 4px; border: 1px solid #ccc }
.legend .state-up { background: #c8f0c8 } .legend .state-down { background: #f4b8b8 }
.legend .state-drain { background: #f8dc98 } .legend .state-maint { background: #d8d8d8 }
`

// Plain ES2017 without template literals (this file holds it in one). Polls with setTimeout after each
// answer, so a slow switch never has two polls in flight.
const SCRIPT = `
'use strict';
var prev = null;
function el (tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row (cells, cls, cellTag) {
  var tr = el('tr', null, cls);
  cells.forEach(function (c, i) { tr.appendChild(el(cellTag || 'td', c, i === 0 ? 'name' : '')); });
  return tr;
}
function stateOf (s) { return s.state || (s.up ? 'up' : 'down'); }
function rate (now, name) {
  if (!prev || now.time <= prev.time) return '';
  var before = prev.outcomes[name] || 0;
  return ((now.outcomes[name] - before) * 1000 / (now.time - prev.time)).toFixed(1);
}
function outcomesTable (now) {
  var t = el('table', null, 'outcomes');
  t.appendChild(row(['outcome', 'connections', 'per second'], '', 'th'));
  var names = Object.keys(now.outcomes).sort(), total = 0, totalBefore = 0;
  names.forEach(function (n) {
    total += now.outcomes[n];
    if (prev) totalBefore += prev.outcomes[n] || 0;
    t.appendChild(row([n, now.outcomes[n], rate(now, n)]));
  });
  var r = prev && now.time > prev.time ? ((total - totalBefore) * 1000 / (now.time - prev.time)).toFixed(1) : '';
  var tr = row(['total', total, r], 'total');
  tr.id = 'conn-rate';
  t.appendChild(tr);
  return t;
}
function serviceTable (name, servers) {
  var t = el('table', null, 'service');
  t.dataset.service = name;
  t.appendChild(row(['server', 'state', 'method', 'weight', 'config weight', 'active', 'inactive', 'overloaded', 'fallback'], '', 'th'));
  var up = 0, weight = 0, active = 0, inactive = 0;
  servers.forEach(function (s) {
    var st = stateOf(s);
    var tr = row([s.id, st, s.method, s.weight, s.configWeight, s.active, s.inactive, s.overloaded ? 'yes' : '', s.fallback ? 'yes' : ''], 'server state-' + st);
    tr.dataset.server = s.id;
    tr.children[1].className = 'state';
    t.appendChild(tr);
    if (st === 'up') up++;
    weight += s.weight; active += s.active; inactive += s.inactive;
  });
  t.appendChild(row(['total', up + '/' + servers.length + ' up', '', weight, '', active, inactive, '', ''], 'total'));
  return t;
}
function render (now) {
  var byService = new Map();
  now.servers.forEach(function (s) {
    if (!byService.has(s.service)) byService.set(s.service, []);
    byService.get(s.service).push(s);
  });
  var out = [el('h2', 'Connections'), outcomesTable(now), el('h2', 'Pending')];
  var p = el('table', null, 'pending');
  p.appendChild(row(['heads arriving', 'answers draining', 'shed'], '', 'th'));
  p.appendChild(row([now.pending.head, now.pending.drain, now.pending.shed]));
  out.push(p);
  byService.forEach(function (servers, name) { out.push(el('h2', 'Service ' + name), serviceTable(name, servers)); });
  document.getElementById('stats').replaceChildren(...out);
  var status = document.getElementById('status');
  status.textContent = 'updated ' + new Date(now.time).toLocaleTimeString();
  status.className = '';
}
function poll () {
  fetch('stats.json', { cache: 'no-store' })
    .then(function (res) { if (!res.ok) throw new Error('HTTP ' + res.status); return res.json(); })
    .then(function (now) { render(now); prev = now; },
      function (err) {
        var status = document.getElementById('status');
        status.textContent = 'stale: ' + err.message;
        status.className = 'stale';
      })
    .then(function () { setTimeout(poll, 1000); });
}
poll();
`

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`

/** The page's Content-Security-Policy: nothing but its own inline style and script, and fetches to itself. */
export const STATS_PAGE_CSP = [
  "default-src 'none'", `style-src ${hash(STYLE)}`, `script-src ${hash(SCRIPT)}`, "connect-src 'self'",
  "img-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ')

export const STATS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Baton stats</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Baton stats</h1>
<p><span id="status">loading…</span> · refreshes every second ·
<span class="legend"><span class="state-up">up</span><span class="state-down">down</span><span class="state-drain">drain</span><span class="state-maint">maint</span></span></p>
<div id="stats"></div>
<script>${SCRIPT}</script>
</body>
</html>
`

/** What /stats.json answers: a snapshot the page diffs against the previous one for rates. */
export function statsSnapshot (src: AdminSource): object {
  return { servers: src.servers(), outcomes: Object.fromEntries(src.outcomes()), pending: src.pending(), time: Date.now() }
}

/**
 * Answers GET or HEAD / (the page) and /stats.json; returns false for any other path, which the caller
 * then handles. Runs per admin request, never on the data path.
 */
export function serveStats (path: string, res: http.ServerResponse, src: AdminSource): boolean {
  if (path === '/') {
    send(res, 'text/html; charset=utf-8', STATS_PAGE_HTML, { 'content-security-policy': STATS_PAGE_CSP, 'x-frame-options': 'DENY' })
    return true
  }
  if (path === '/stats.json') {
    send(res, 'application/json', JSON.stringify(statsSnapshot(src)) + '\n', {})
    return true
  }
  return false
}

function send (res: http.ServerResponse, type: string, body: string, headers: http.OutgoingHttpHeaders): void {
  res.writeHead(200, {
    ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer',
  })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}
