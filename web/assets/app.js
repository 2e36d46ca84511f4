/* mxresolved dashboard.
 *
 * Polls the JSON API (web/README.md): /api/v1/stats, the top lists, the query
 * log and the selected client every second, the time series every 5 s, and
 * nothing while the tab is hidden.  Every value from the server reaches the
 * page through textContent; no HTML is built from data.  One Chart.js
 * instance per canvas, updated in place without animation. */
'use strict';

(function () {
  const API = '/api/v1';
  const FAST_MS = 1000;
  const SLOW_MS = 5000;
  const TOKEN_KEY = 'mxresolved.token';
  const RANGE_SECONDS = { hour: 3600, day: 86400 };
  const RANGE_STEP = { hour: 5, day: 120 };

  const state = {
    range: 'hour',
    client: null,
    logPaused: false,
    logSeq: 0,
    clientSeq: 0,
    tsSeq: 0,
    errors: new Map(),
    lastOk: 0,
    fastTimer: 0,
    slowTimer: 0,
    fastBusy: false,
    slowBusy: false,
  };

  const $ = (id) => document.getElementById(id);

  /* ---- formatting ------------------------------------------------------ */

  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

  function isNum(v) {
    return typeof v === 'number' && Number.isFinite(v);
  }

  function fmtInt(v) {
    return isNum(v) ? intFmt.format(v) : '—';
  }

  function fmtRate(v) {
    if (!isNum(v)) return '—';
    if (v === 0) return '0';
    if (v < 10) return v.toFixed(2);
    if (v < 100) return v.toFixed(1);
    return intFmt.format(v);
  }

  function fmtPct(ratio) {
    if (!isNum(ratio)) return '—';
    const p = ratio * 100;
    if (p > 99.9 && p < 100) return p.toFixed(2) + ' %';
    return p.toFixed(1) + ' %';
  }

  function fmtMs(ms) {
    if (!isNum(ms)) return '—';
    if (ms === 0) return '0';
    if (ms < 1) return (ms * 1000).toFixed(ms < 0.01 ? 1 : 0) + ' µs';
    if (ms < 10) return ms.toFixed(2) + ' ms';
    if (ms < 100) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return ms.toFixed(0) + ' ms';
    return (ms / 1000).toFixed(2) + ' s';
  }

  function fmtMsAxis(ms) {
    if (ms >= 1000) return +(ms / 1000).toPrecision(3) + ' s';
    if (ms >= 1) return +ms.toPrecision(3) + ' ms';
    return +(ms * 1000).toPrecision(3) + ' µs';
  }

  function fmtAxis(v) {
    return isNum(v) ? String(+v.toFixed(2)) : '';
  }

  function fmtBytes(b) {
    if (!isNum(b)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = b;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
  }

  function fmtUptime(s) {
    if (!isNum(s)) return '—';
    s = Math.floor(s);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (d > 0) return d + 'd ' + h + 'h ' + m + 'm';
    if (h > 0) return h + 'h ' + m + 'm ' + sec + 's';
    if (m > 0) return m + 'm ' + sec + 's';
    return sec + 's';
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  function fmtClock(ms, withSeconds) {
    if (!isNum(ms)) return '—';
    const d = new Date(ms);
    let s = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    if (withSeconds !== false) s += ':' + pad2(d.getSeconds());
    return s;
  }

  function fmtLogTime(ms) {
    if (!isNum(ms)) return '—';
    const d = new Date(ms);
    return fmtClock(ms) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }

  function fmtDateTime(ms) {
    if (!isNum(ms)) return '—';
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + fmtClock(ms);
  }

  function label(key) {
    return String(key).replace(/_/g, ' ');
  }

  /* ---- DOM helpers ----------------------------------------------------- */

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function td(text, cls, title) {
    const c = el('td', cls, text);
    if (title) c.title = title;
    return c;
  }

  function setText(id, text) {
    const e = $(id);
    if (e && e.textContent !== text) e.textContent = text;
  }

  function setClass(e, cls, on) {
    if (e) e.classList.toggle(cls, !!on);
  }

  function fillBody(tbody, rows, cols, emptyText) {
    const frag = document.createDocumentFragment();
    if (rows.length === 0) {
      const tr = el('tr');
      const c = td(emptyText, 'empty-row');
      c.colSpan = cols;
      tr.append(c);
      frag.append(tr);
    } else {
      for (const r of rows) frag.append(r);
    }
    tbody.replaceChildren(frag);
  }

  function bar(ratio) {
    const b = el('div', 'bar');
    const f = el('div', 'bar-fill');
    const r = isNum(ratio) ? Math.max(0, Math.min(1, ratio)) : 0;
    f.style.width = (r * 100).toFixed(2) + '%';
    setClass(b, 'is-warn', r >= 0.85 && r < 0.97);
    setClass(b, 'is-bad', r >= 0.97);
    b.append(f);
    return b;
  }

  function setBar(container, ratio) {
    const f = container.querySelector('.bar-fill');
    const r = isNum(ratio) ? Math.max(0, Math.min(1, ratio)) : 0;
    f.style.width = (r * 100).toFixed(2) + '%';
    setClass(container, 'is-warn', r >= 0.85 && r < 0.97);
    setClass(container, 'is-bad', r >= 0.97);
  }

  function clientLink(addr) {
    const a = el('a', 'client-link', addr);
    a.href = '#client=' + encodeURIComponent(addr);
    a.dataset.client = addr;
    a.title = 'show this client';
    return a;
  }

  /* ---- HTTP ------------------------------------------------------------ */

  class HttpError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  async function request(method, path, body) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 8000);
    const headers = { Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', signal: ctl.signal, credentials: 'same-origin' };
    if (method === 'POST') {
      headers['Content-Type'] = 'application/json';
      const token = $('admin-token').value.trim();
      if (token) headers.Authorization = 'Bearer ' + token;
      init.body = JSON.stringify(body || {});
    }
    try {
      let res;
      try {
        res = await fetch(path, init);
      } catch (e) {
        throw new HttpError(0, e.name === 'AbortError' ? 'timed out' : 'no connection to the server', null);
      }
      const text = await res.text();
      let data = null;
      if (text) {
        try {
          data = JSON.parse(text);
        } catch (e) {
          data = null;
        }
      }
      if (!res.ok) {
        const msg = data && typeof data.error === 'string' ? data.error : res.statusText || 'error';
        throw new HttpError(res.status, msg, data !== null ? data : text);
      }
      if (data === null) throw new HttpError(res.status, 'the reply is not JSON', text);
      return data;
    } finally {
      clearTimeout(timer);
    }
  }

  const getJSON = (path) => request('GET', path);

  function errText(e) {
    if (e instanceof HttpError) return e.status ? e.status + ' ' + e.message : e.message;
    return String(e && e.message ? e.message : e);
  }

  function noteError(what, e) {
    if (e) state.errors.set(what, errText(e));
    else state.errors.delete(what);
    const banner = $('banner');
    if (state.errors.size === 0) {
      banner.hidden = true;
      banner.textContent = '';
      return;
    }
    /* group the sources by message: "no connection" from every poll is one line */
    const byMsg = new Map();
    for (const [k, v] of state.errors) byMsg.set(v, (byMsg.get(v) || []).concat(k));
    const parts = [];
    for (const [msg, what] of byMsg) parts.push(msg + ' (' + what.join(', ') + ')');
    const since = state.lastOk ? '; last good update ' + fmtClock(state.lastOk) : '';
    banner.textContent = 'Request failed: ' + parts.join(' · ') + since + '; retrying.';
    banner.hidden = false;
  }

  /* ---- status ---------------------------------------------------------- */

  function setStatus(kind, text, title) {
    const s = $('status');
    s.className = 'status status-' + kind;
    if (s.textContent !== text) s.textContent = text;
    s.title = title || '';
  }

  /* ---- stats ----------------------------------------------------------- */

  function renderStats(s) {
    const c = s.counters || {};
    const r = s.rates || {};
    const lat = s.latency || {};
    const hit = lat.cache_hit || {};
    const rec = lat.recursion || {};

    setText('version', s.version ? 'v' + s.version : '—');
    setText('uptime', fmtUptime(s.uptime_seconds));
    setText('server-time', isNum(s.time) ? fmtDateTime(s.time * 1000) : '—');
    setText('last-update', fmtClock(Date.now()));

    setText('queries-total', fmtInt(c.queries));
    setText('qps', fmtRate(r.qps));
    setText('hit-ratio', fmtPct(s.hit_ratio));
    setText('hit-ratio-now', fmtPct(r.hit_ratio));
    setText('blocked-ps', fmtRate(r.blocked_ps));
    setText('blocked-total', fmtInt(c.blocked));
    setText('servfail-ps', fmtRate(r.servfail_ps));
    setText('resolution-failures', fmtInt(c.resolution_failures));
    setText('stale-ps', fmtRate(r.stale_ps));
    setText('stale-total', fmtInt(c.stale_served));
    setText('inflight', fmtInt(s.inflight));
    setText('client-timeouts', fmtInt(c.client_timeouts));
    setText('overload-total', fmtInt(c.overload));
    setClass($('servfail-ps'), 'is-bad', isNum(r.servfail_ps) && r.servfail_ps > 0);
    setClass($('stale-ps'), 'is-warn', isNum(r.stale_ps) && r.stale_ps > 0);

    renderLatency('lat-hit', hit);
    renderLatency('lat-rec', rec);

    renderCache(s.cache || {});
    renderFilters(Array.isArray(s.filters) ? s.filters : []);
    renderCounters(c);

    const unhealthy = (s.filters || []).filter((f) => !f.healthy).map((f) => f.name);
    if (unhealthy.length) {
      setStatus('warn', 'degraded', 'unhealthy filter sources: ' + unhealthy.join(', '));
    } else {
      setStatus('ok', 'running', 'answering; every filter source healthy');
    }
    state.lastServerTime = s.time;
  }

  /* p50/p95/p99 of one latency histogram; nothing answered yet: dashes */
  function renderLatency(prefix, h) {
    const none = !isNum(h.count) || h.count === 0;
    for (const q of ['p50', 'p95', 'p99']) setText(prefix + '-' + q, none ? '—' : fmtMs(h[q + '_ms']));
    setText(prefix + '-count', fmtInt(h.count));
  }

  function renderCache(cache) {
    const parts = Array.isArray(cache.partitions) ? cache.partitions : [];
    const rows = parts.map((p) => {
      const tr = el('tr');
      tr.dataset.partition = p.name;
      tr.append(td(p.name, 'name'));
      tr.append(td(fmtInt(p.entries), 'num'));
      tr.append(td(fmtBytes(p.bytes), 'num', fmtInt(p.bytes) + ' bytes'));
      tr.append(td(p.quota_bytes ? fmtBytes(p.quota_bytes) : 'none', 'num', p.quota_bytes ? fmtInt(p.quota_bytes) + ' bytes' : 'no quota'));
      const m = el('td', 'meter');
      const wrap = el('div', 'meter-cell');
      if (p.quota_bytes > 0) {
        const ratio = p.bytes / p.quota_bytes;
        wrap.append(bar(ratio), el('span', 'pct', (ratio * 100).toFixed(1) + '%'));
      } else {
        wrap.append(el('span', 'muted small', 'no quota'));
      }
      m.append(wrap);
      tr.append(m);
      return tr;
    });
    fillBody($('cache-table').tBodies[0], rows, 5, 'no partitions');

    const size = cache.map_size_bytes;
    const used = cache.map_used_bytes;
    const ratio = isNum(size) && size > 0 && isNum(used) ? used / size : null;
    setText('map-text', isNum(used) && isNum(size)
      ? fmtBytes(used) + ' of ' + fmtBytes(size) + (ratio !== null ? ' (' + (ratio * 100).toFixed(1) + '%)' : '')
      : '—');
    setBar($('map-bar'), ratio);

    const kv = $('cache-counters');
    const keys = ['puts', 'put_drops', 'evictions', 'damaged', 'write_errors'];
    const frag = document.createDocumentFragment();
    for (const k of keys) {
      const d = el('div');
      d.append(el('dt', null, label(k)), el('dd', null, fmtInt(cache[k])));
      frag.append(d);
    }
    kv.replaceChildren(frag);
  }

  function renderFilters(filters) {
    const rows = filters.map((f) => {
      const tr = el('tr');
      tr.dataset.source = f.name;
      tr.append(td(f.name, 'name'));
      tr.append(td(f.type));
      tr.append(td(f.healthy ? 'healthy' : 'unhealthy', 'health ' + (f.healthy ? 'health-ok' : 'health-bad')));
      for (const k of ['lookups', 'listed', 'errors', 'timeouts', 'blocked']) tr.append(td(fmtInt(f[k]), 'num'));
      return tr;
    });
    fillBody($('filters-table').tBodies[0], rows, 8, 'no filter sources configured');
    const bad = filters.filter((f) => !f.healthy).length;
    setText('filters-summary', filters.length === 0 ? '' :
      filters.length + (filters.length === 1 ? ' source' : ' sources') + (bad ? ', ' + bad + ' unhealthy' : ', all healthy'));
  }

  function renderCounters(c) {
    const frag = document.createDocumentFragment();
    for (const k of Object.keys(c)) {
      const d = el('div');
      d.dataset.counter = k;
      d.append(el('dt', null, label(k)), el('dd', null, fmtInt(c[k])));
      frag.append(d);
    }
    $('all-counters').replaceChildren(frag);
  }

  async function pollStats() {
    try {
      const s = await getJSON(API + '/stats');
      renderStats(s);
      state.lastOk = Date.now();
      noteError('stats', null);
    } catch (e) {
      noteError('stats', e);
      setStatus('bad', 'unreachable', errText(e));
    }
  }

  /* ---- top lists ------------------------------------------------------- */

  function countCell(count, error) {
    const c = td(fmtInt(count), 'num');
    if (isNum(error) && error > 0) {
      c.append(el('span', 'err', '±' + fmtInt(error)));
      c.title = 'at least ' + fmtInt(count - error);
    }
    return c;
  }

  function renderTopNames(tableId, entries) {
    const rows = entries.map((e, i) => {
      const tr = el('tr');
      tr.append(td(i + 1, 'rank'));
      const n = td(null, 'name');
      const a = el('span', 'linkish', e.name);
      a.dataset.filterName = e.name;
      a.title = 'show in the query log';
      n.append(a);
      tr.append(n, countCell(e.count, e.error));
      return tr;
    });
    fillBody($(tableId).tBodies[0], rows, 3, 'nothing yet');
  }

  function renderTopClients(entries) {
    const rows = entries.map((e, i) => {
      const tr = el('tr');
      tr.dataset.client = e.client;
      tr.append(td(i + 1, 'rank'));
      const c = td(null, 'name');
      c.append(clientLink(e.client));
      tr.append(c, countCell(e.queries, e.error));
      for (const k of ['cache_hits', 'blocked', 'nxdomain', 'servfail']) tr.append(td(fmtInt(e[k]), 'num'));
      return tr;
    });
    fillBody($('top-clients').tBodies[0], rows, 7, 'nothing yet');
  }

  async function pollTop(kind, render) {
    try {
      const r = await getJSON(API + '/top?kind=' + kind + '&limit=10');
      render(Array.isArray(r.entries) ? r.entries : []);
      noteError('top ' + kind, null);
    } catch (e) {
      noteError('top ' + kind, e);
    }
  }

  /* ---- query log ------------------------------------------------------- */

  function answerCell(e) {
    const c = el('td', 'flags');
    if (e.blocked) {
      c.append(el('span', 'badge badge-blocked', 'blocked'));
      if (e.source) c.append(el('span', 'badge', e.source));
    } else if (e.stale) {
      c.append(el('span', 'badge badge-stale', 'stale'));
    } else if (e.cached) {
      c.append(el('span', 'badge badge-cached', 'cache'));
    } else {
      c.append(el('span', 'badge badge-recursed', 'recursion'));
    }
    if (e.secure) c.append(el('span', 'badge badge-secure', 'secure'));
    if (e.transport && e.transport !== 'udp') c.append(el('span', 'badge', e.transport));
    return c;
  }

  function rcodeCell(rcode) {
    const rc = String(rcode || '');
    return td(rc, 'rcode rc-' + rc.replace(/[^A-Za-z0-9]/g, ''));
  }

  function logRow(e, withClient) {
    const tr = el('tr');
    tr.append(td(fmtLogTime(e.time_ms), 'time', fmtDateTime(e.time_ms)));
    if (withClient) {
      const c = td(null, 'client');
      c.append(clientLink(e.client));
      tr.append(c);
    }
    tr.append(td(e.name, 'name', e.name));
    tr.append(td(e.type, 'type'));
    tr.append(rcodeCell(e.rcode));
    tr.append(answerCell(e));
    tr.append(td(fmtMs(e.latency_ms), 'num'));
    return tr;
  }

  function querylogParams() {
    const p = new URLSearchParams();
    const name = $('querylog-filter').value.trim();
    const client = $('querylog-client').value.trim();
    if (client) p.set('client', client);
    if (name) p.set('name', name);
    const type = $('querylog-type').value;
    if (type) p.set('type', type);
    const rcode = $('querylog-rcode').value;
    if (rcode) p.set('rcode', rcode);
    const blocked = $('querylog-blocked').value;
    if (blocked) p.set('blocked', blocked);
    p.set('limit', $('querylog-limit').value || '100');
    return p;
  }

  async function pollQuerylog(force) {
    if (state.logPaused && !force) return;
    const seq = ++state.logSeq;
    const params = querylogParams();
    try {
      const r = await getJSON(API + '/querylog?' + params.toString());
      if (seq !== state.logSeq) return; /* a newer filter was sent meanwhile */
      const entries = Array.isArray(r.entries) ? r.entries : [];
      const tbody = $('querylog').tBodies[0];
      fillBody(tbody, entries.map((e) => logRow(e, true)), 7, 'no query matches');
      const matched = isNum(r.matched) ? r.matched : entries.length;
      setText('querylog-matched', fmtInt(matched) + ' matched');
      setText('querylog-shown', matched > entries.length ? 'newest ' + fmtInt(entries.length) + ' shown' : '');
      $('querylog').dataset.filter = params.toString();
      noteError('query log', null);
    } catch (e) {
      if (seq !== state.logSeq) return;
      noteError('query log', e);
      if (e instanceof HttpError && e.status === 400) {
        fillBody($('querylog').tBodies[0], [], 7, 'filter not accepted: ' + e.message);
        setText('querylog-matched', '0 matched');
        setText('querylog-shown', '');
      }
    }
  }

  let filterTimer = 0;
  function filterChanged() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => pollQuerylog(true), 200);
  }

  /* ---- per-client view -------------------------------------------------- */

  function openClient(addr, scroll) {
    addr = String(addr || '').trim();
    if (!addr) return;
    state.client = addr;
    state.clientSeq++;
    $('client-input').value = addr;
    setText('client-title', addr);
    $('client-view').hidden = false;
    $('client-hint').hidden = true;
    $('client-close').hidden = false;
    $('client-counters').replaceChildren();
    fillBody($('client-recent').tBodies[0], [], 6, 'loading…');
    setText('client-status', '');
    const want = '#client=' + encodeURIComponent(addr);
    if (location.hash !== want) history.replaceState(null, '', want);
    if (scroll) $('sec-client').scrollIntoView({ block: 'start' });
    pollClient();
  }

  function closeClient() {
    state.client = null;
    state.clientSeq++;
    $('client-view').hidden = true;
    $('client-hint').hidden = false;
    $('client-close').hidden = true;
    setText('client-title', '');
    noteError('client', null);
    if (location.hash.startsWith('#client=')) history.replaceState(null, '', location.pathname + location.search);
  }

  function minitile(k, v, title) {
    const d = el('div', 'minitile');
    d.append(el('div', 'k', k), el('div', 'v', v));
    if (title) d.title = title;
    return d;
  }

  async function pollClient() {
    const addr = state.client;
    if (!addr) return;
    const seq = ++state.clientSeq;
    try {
      const r = await getJSON(API + '/clients/' + encodeURIComponent(addr));
      if (seq !== state.clientSeq || addr !== state.client) return;
      const c = r.counters;
      const box = $('client-counters');
      if (c) {
        const ratio = c.queries > 0 ? c.cache_hits / c.queries : null;
        box.replaceChildren(
          minitile('queries', fmtInt(c.queries) + (c.error ? ' ±' + fmtInt(c.error) : ''), 'Space-Saving estimate'),
          minitile('cache hits', fmtInt(c.cache_hits)),
          minitile('hit ratio', fmtPct(ratio)),
          minitile('blocked', fmtInt(c.blocked)),
          minitile('NXDOMAIN', fmtInt(c.nxdomain)),
          minitile('SERVFAIL', fmtInt(c.servfail)));
        setText('client-status', 'Counters since start; this client is among the tracked busiest clients (queries is a Space-Saving estimate).');
      } else {
        box.replaceChildren();
        setText('client-status', 'No counters: not among the tracked clients. Its recent queries, if any, are below.');
      }
      const recent = Array.isArray(r.recent) ? r.recent : [];
      fillBody($('client-recent').tBodies[0], recent.map((e) => logRow(e, false)), 6, 'no recent queries from this client');
      noteError('client', null);
    } catch (e) {
      if (seq !== state.clientSeq) return;
      if (e instanceof HttpError && e.status === 400) {
        $('client-counters').replaceChildren();
        setText('client-status', 'Not an address: ' + e.message);
        fillBody($('client-recent').tBodies[0], [], 6, '—');
        noteError('client', null);
      } else {
        noteError('client', e);
      }
    }
  }

  function clientFromHash() {
    const h = location.hash;
    if (h.startsWith('#client=')) {
      let addr = h.slice('#client='.length);
      try {
        addr = decodeURIComponent(addr);
      } catch (e) {
        /* keep it raw */
      }
      if (addr && addr !== state.client) openClient(addr, true);
    }
  }

  /* ---- charts ---------------------------------------------------------- */

  const charts = {};
  let chartsReady = false;

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function alpha(color, a) {
    /* #rrggbb -> rgba(); other forms are returned as they are */
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
    if (!m) return color;
    return 'rgba(' + parseInt(m[1], 16) + ',' + parseInt(m[2], 16) + ',' + parseInt(m[3], 16) + ',' + a + ')';
  }

  function xTicks(scale) {
    const step = state.range === 'day' ? 3 * 3600 : 600;
    const out = [];
    if (!isNum(scale.min) || !isNum(scale.max)) return;
    for (let v = Math.ceil(scale.min / step) * step; v <= scale.max; v += step) out.push({ value: v });
    scale.ticks = out;
  }

  function logTicks(scale) {
    scale.ticks = scale.ticks.filter((t) => {
      const m = t.value / Math.pow(10, Math.floor(Math.log10(t.value) + 1e-9));
      return Math.abs(m - 1) < 1e-6 || Math.abs(m - 3) < 1e-6 || Math.abs(m - 10) < 1e-6;
    });
  }

  function makeChart(id, series, y) {
    const canvas = $(id);
    const existing = Chart.getChart(canvas);
    if (existing) return existing;
    const grid = cssVar('--grid', 'rgba(0,0,0,0.07)');
    const text = cssVar('--muted', '#67707c');
    const datasets = series.map((s) => ({
      label: s.label,
      key: s.key,
      fmt: s.fmt,
      data: [],
      borderColor: s.color,
      backgroundColor: s.fill ? alpha(s.color, 0.12) : s.color,
      fill: s.fill ? 'origin' : false,
      borderWidth: 1.5,
      pointRadius: 0,
      pointHoverRadius: 3,
      pointHitRadius: 4,
      tension: 0,
      spanGaps: false,
    }));
    const yScale = Object.assign({
      grid: { color: grid, drawBorder: false },
      ticks: { color: text, maxTicksLimit: 6 },
    }, y);
    return new Chart(canvas, {
      type: 'line',
      data: { datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        layout: { padding: { top: 2, right: 4 } },
        scales: {
          x: {
            type: 'linear',
            bounds: 'data',
            grid: { color: grid, drawBorder: false },
            ticks: {
              color: text,
              maxRotation: 0,
              autoSkip: true,
              autoSkipPadding: 14,
              callback: (v) => fmtClock(v * 1000, false),
            },
            afterBuildTicks: xTicks,
          },
          y: yScale,
        },
        plugins: {
          legend: {
            display: true,
            position: 'top',
            align: 'end',
            labels: { color: text, boxWidth: 12, boxHeight: 2, padding: 8, font: { size: 11 } },
          },
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? fmtDateTime(items[0].parsed.x * 1000) : ''),
              label: (item) => item.dataset.label + ': ' + (item.dataset.fmt ? item.dataset.fmt(item.parsed.y) : item.parsed.y),
            },
          },
        },
      },
    });
  }

  function initCharts() {
    if (typeof window.Chart !== 'function') {
      noteError('charts', new Error('Chart.js did not load'));
      return;
    }
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 11;
    const c1 = cssVar('--c1', '#2f6fb7');
    const c2 = cssVar('--c2', '#2b9a8b');
    const c3 = cssVar('--c3', '#d08a1a');
    const c4 = cssVar('--c4', '#c5383c');
    const c5 = cssVar('--c5', '#7b5cb8');
    const rate = (v) => fmtRate(v) + '/s';
    const pct = (v) => (isNum(v) ? v.toFixed(1) + ' %' : '—');
    const logY = {
      type: 'logarithmic',
      afterBuildTicks: logTicks,
      ticks: { color: cssVar('--muted', '#67707c'), callback: (v) => fmtMsAxis(v), autoSkip: true },
    };
    charts.qps = makeChart('chart-qps', [{ label: 'queries/s', key: 'qps', color: c1, fill: true, fmt: rate }],
      { beginAtZero: true, suggestedMax: 1, ticks: { color: cssVar('--muted'), maxTicksLimit: 6, callback: fmtAxis } });
    charts.hit = makeChart('chart-hit', [{ label: 'hit ratio', key: 'hit_ratio', color: c2, fill: true, fmt: pct }],
      { min: 0, max: 100, ticks: { color: cssVar('--muted'), stepSize: 25, callback: (v) => v + '%' } });
    charts.events = makeChart('chart-events', [
      { label: 'blocked/s', key: 'blocked_ps', color: c5, fmt: rate },
      { label: 'SERVFAIL/s', key: 'servfail_ps', color: c4, fmt: rate },
      { label: 'stale/s', key: 'stale_ps', color: c3, fmt: rate },
    ], { beginAtZero: true, suggestedMax: 1, ticks: { color: cssVar('--muted'), maxTicksLimit: 6, callback: fmtAxis } });
    charts.latHit = makeChart('chart-lat-hit', [
      { label: 'p50', key: 'hit_p50_ms', color: c2, fmt: fmtMs },
      { label: 'p95', key: 'hit_p95_ms', color: c1, fmt: fmtMs },
      { label: 'p99', key: 'hit_p99_ms', color: c5, fmt: fmtMs },
    ], logY);
    charts.latRec = makeChart('chart-lat-rec', [
      { label: 'p50', key: 'recursion_p50_ms', color: c2, fmt: fmtMs },
      { label: 'p95', key: 'recursion_p95_ms', color: c1, fmt: fmtMs },
      { label: 'p99', key: 'recursion_p99_ms', color: c5, fmt: fmtMs },
    ], Object.assign({}, logY, { ticks: Object.assign({}, logY.ticks) }));
    chartsReady = true;
  }

  /* The y value of point p for dataset key, or null for a gap. */
  function yOf(key, p) {
    const v = p[key];
    if (!isNum(v)) return null;
    if (key === 'hit_ratio') return p.qps > 0 || v > 0 ? v * 100 : null;
    if (key.endsWith('_ms')) return v > 0 ? v : null; /* 0: nothing answered in the step; log axis */
    return v;
  }

  function renderTimeseries(ts) {
    const points = Array.isArray(ts.points) ? ts.points.filter((p) => isNum(p.t)) : [];
    const range = ts.range === 'day' || ts.range === 'hour' ? ts.range : state.range;
    const step = isNum(ts.step_seconds) && ts.step_seconds > 0 ? ts.step_seconds : RANGE_STEP[range];
    /* points with a break marker where samples are missing, so that the
     * line stops instead of bridging a time the daemon was not running */
    const rows = [];
    for (let i = 0; i < points.length; i++) {
      if (i > 0 && points[i].t - points[i - 1].t > step * 1.5) rows.push({ t: points[i - 1].t + step, gap: true });
      rows.push(points[i]);
    }
    const last = points.length ? points[points.length - 1].t : (isNum(state.lastServerTime) ? state.lastServerTime : Date.now() / 1000);
    const min = last - RANGE_SECONDS[range];
    for (const chart of Object.values(charts)) {
      for (const ds of chart.data.datasets) {
        ds.data = rows.map((p) => ({ x: p.t, y: p.gap ? null : yOf(ds.key, p) }));
      }
      chart.options.scales.x.min = min;
      chart.options.scales.x.max = last;
      chart.update('none');
    }
    setText('ts-info', points.length
      ? fmtInt(points.length) + ' points, every ' + fmtUptime(step) + ', latest ' + fmtClock(last * 1000)
      : 'no samples yet');
  }

  async function pollTimeseries() {
    if (!chartsReady) return;
    const seq = ++state.tsSeq;
    const range = state.range;
    try {
      const ts = await getJSON(API + '/timeseries?range=' + range);
      if (seq !== state.tsSeq || range !== state.range) return;
      renderTimeseries(ts);
      noteError('timeseries', null);
    } catch (e) {
      if (seq !== state.tsSeq) return;
      noteError('timeseries', e);
    }
  }

  function setRange(range) {
    if (!RANGE_SECONDS[range]) return;
    state.range = range;
    for (const b of document.querySelectorAll('[data-range]')) b.setAttribute('aria-pressed', String(b.dataset.range === range));
    pollTimeseries();
  }

  /* ---- cache lookup ---------------------------------------------------- */

  async function cacheLookup(ev) {
    ev.preventDefault();
    const name = $('cache-lookup-name').value.trim();
    const type = $('cache-lookup-type').value.trim().toUpperCase();
    const out = $('cache-lookup-result');
    out.hidden = false;
    out.replaceChildren(el('span', 'muted', 'looking up…'));
    try {
      const r = await getJSON(API + '/cache?name=' + encodeURIComponent(name) + '&type=' + encodeURIComponent(type));
      const head = el('div');
      if (!r.found) {
        head.textContent = (r.name || name) + ' ' + (r.type || type) + ': not in the cache';
        out.replaceChildren(head);
        return;
      }
      const bits = [r.name + ' ' + r.type, 'partition ' + r.partition, r.state, 'TTL left ' + fmtInt(r.ttl_left) + ' s',
        r.rcode, 'DNSSEC ' + r.dnssec, fmtBytes(r.size)];
      head.textContent = bits.filter((b) => b !== undefined && b !== null).join(' · ');
      const pre = el('pre', null, (Array.isArray(r.records) ? r.records : []).join('\n') || '(no records)');
      out.replaceChildren(head, pre);
    } catch (e) {
      out.replaceChildren(el('span', 'health-bad', 'lookup failed: ' + errText(e)));
    }
  }

  /* ---- admin ----------------------------------------------------------- */

  function explainStatus(status) {
    switch (status) {
      case 401: return '401 Unauthorized — the bearer token is missing or wrong.';
      case 403: return '403 Forbidden — admin actions are disabled on this server (no web.token configured) or this address is not allowed.';
      case 409: return '409 Conflict — no editable list source of that kind is configured.';
      case 400: return '400 Bad request';
      case 0: return 'No answer from the server';
      default: return status + ' error';
    }
  }

  function showAdmin(kind, head, body) {
    const box = $('admin-result');
    box.hidden = false;
    box.className = 'admin-result is-' + kind;
    box.dataset.state = kind;
    $('admin-result-head').textContent = head;
    $('admin-result-body').textContent = body;
  }

  async function adminPost(path, body, buttonId) {
    const btn = $(buttonId);
    btn.disabled = true;
    showAdmin('pending', 'POST ' + path + ' …', JSON.stringify(body));
    try {
      const r = await request('POST', API + path, body);
      showAdmin('ok', 'OK — POST ' + path, JSON.stringify(r, null, 2));
      pollStats();
      return r;
    } catch (e) {
      const status = e instanceof HttpError ? e.status : 0;
      let detail = e.body && typeof e.body === 'object' ? JSON.stringify(e.body, null, 2) : (e.body || e.message);
      showAdmin('bad', explainStatus(status) + ' (POST ' + path + ')', String(detail));
      return null;
    } finally {
      btn.disabled = false;
    }
  }

  function initAdmin() {
    const tok = $('admin-token');
    try {
      tok.value = sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      tok.value = '';
    }
    tok.addEventListener('input', () => {
      try {
        if (tok.value) sessionStorage.setItem(TOKEN_KEY, tok.value);
        else sessionStorage.removeItem(TOKEN_KEY);
      } catch (e) {
        /* storage disabled: the field still works for this page */
      }
    });
    $('admin-token-clear').addEventListener('click', () => {
      tok.value = '';
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch (e) {
        /* nothing stored */
      }
    });
    $('token-form').addEventListener('submit', (ev) => ev.preventDefault());
    $('flush-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const name = $('flush-name').value.trim();
      const type = $('flush-type').value.trim().toUpperCase();
      const suffix = $('flush-mode-suffix').checked;
      const body = suffix ? { suffix: name } : type ? { name, type } : { name };
      adminPost('/cache/flush', body, 'flush-go');
    });
    $('block-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      adminPost('/lists/block', { name: $('block-name').value.trim() }, 'block-go');
    });
    $('allow-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      adminPost('/lists/allow', { name: $('allow-name').value.trim() }, 'allow-go');
    });
    $('reload-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      adminPost('/lists/reload', {}, 'reload-go');
    });
    $('flush-mode-suffix').addEventListener('change', () => { $('flush-type').disabled = true; });
    $('flush-mode-name').addEventListener('change', () => { $('flush-type').disabled = false; });
  }

  /* ---- polling --------------------------------------------------------- */

  async function fastTick() {
    clearTimeout(state.fastTimer);
    if (document.hidden) return; /* resumed by visibilitychange */
    if (state.fastBusy) return;
    state.fastBusy = true;
    const started = Date.now();
    try {
      await Promise.allSettled([
        pollStats(),
        pollTop('names', (e) => renderTopNames('top-names', e)),
        pollTop('blocked', (e) => renderTopNames('top-blocked', e)),
        pollTop('clients', renderTopClients),
        pollQuerylog(false),
        pollClient(),
      ]);
    } finally {
      state.fastBusy = false;
      state.fastTimer = setTimeout(fastTick, Math.max(100, FAST_MS - (Date.now() - started)));
    }
  }

  async function slowTick() {
    clearTimeout(state.slowTimer);
    if (document.hidden) return;
    if (state.slowBusy) return;
    state.slowBusy = true;
    try {
      await pollTimeseries();
    } finally {
      state.slowBusy = false;
      state.slowTimer = setTimeout(slowTick, SLOW_MS);
    }
  }

  function onVisibility() {
    setText('poll-state', document.hidden ? 'paused (tab hidden)' : 'on');
    if (!document.hidden) {
      fastTick();
      slowTick();
    }
  }

  /* ---- wiring ---------------------------------------------------------- */

  function init() {
    initCharts();
    initAdmin();

    for (const b of document.querySelectorAll('[data-range]')) b.addEventListener('click', () => setRange(b.dataset.range));

    $('querylog-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      pollQuerylog(true);
    });
    $('querylog-filter').addEventListener('input', filterChanged);
    $('querylog-client').addEventListener('input', filterChanged);
    for (const id of ['querylog-type', 'querylog-rcode', 'querylog-blocked', 'querylog-limit']) {
      $(id).addEventListener('change', () => pollQuerylog(true));
    }
    $('querylog-clear').addEventListener('click', () => {
      $('querylog-filter').value = '';
      $('querylog-client').value = '';
      $('querylog-type').value = '';
      $('querylog-rcode').value = '';
      $('querylog-blocked').value = '';
      pollQuerylog(true);
    });
    $('querylog-pause').addEventListener('click', () => {
      state.logPaused = !state.logPaused;
      $('querylog-pause').setAttribute('aria-pressed', String(state.logPaused));
      $('querylog-pause').textContent = state.logPaused ? 'Resume' : 'Pause';
      if (!state.logPaused) pollQuerylog(true);
    });

    /* names in the top lists filter the query log */
    $('sec-top').addEventListener('click', (ev) => {
      const t = ev.target.closest('[data-filter-name]');
      if (!t) return;
      $('querylog-filter').value = t.dataset.filterName;
      pollQuerylog(true);
      $('sec-querylog').scrollIntoView({ block: 'start' });
    });

    /* client links anywhere open the per-client view */
    document.addEventListener('click', (ev) => {
      const a = ev.target.closest('a[data-client]');
      if (!a) return;
      ev.preventDefault();
      openClient(a.dataset.client, true);
    });
    window.addEventListener('hashchange', clientFromHash);

    $('client-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      openClient($('client-input').value, false);
    });
    $('client-close').addEventListener('click', closeClient);

    $('cache-lookup-form').addEventListener('submit', cacheLookup);

    document.addEventListener('visibilitychange', onVisibility);
    clientFromHash();
    fastTick();
    slowTick();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
