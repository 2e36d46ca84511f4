// dashboard.test.mjs -- the dashboard in headless Chromium against a running daemon.
//
// usage: node tests/web/dashboard.test.mjs      (normally through tests/web/run)
//
// Environment:
//   DASHBOARD_URL   the dashboard, default http://127.0.0.1:18054/
//   DNS_ADDR, DNS_PORT   the daemon's DNS address (dig sends the test's own queries there)
//   WEB_TOKEN       web.token of the daemon (admin checks are skipped without it)
//   EDITABLE_BLOCK_LIST  the file of the editable block-list source (checked after "block")
//   WEB_ARTIFACTS   directory for dashboard.png, default tests/web/artifacts
//   CHROMIUM        the browser, default /usr/bin/chromium
//   SUITE_LABEL     label of the summary line, default "browser"
//
// Prints "ok   NAME" or "FAIL NAME" per check and "LABEL: N passed, N failed"
// last; exits non-zero on any failed check, page error or console error.
import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const URL_ = process.env.DASHBOARD_URL || 'http://127.0.0.1:18054/';
const DNS_ADDR = process.env.DNS_ADDR || '127.0.10.105';
const DNS_PORT = process.env.DNS_PORT || '5365';
const TOKEN = process.env.WEB_TOKEN || '';
const BLOCK_LIST = process.env.EDITABLE_BLOCK_LIST || '';
const ARTIFACTS = process.env.WEB_ARTIFACTS || path.join(HERE, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LABEL = process.env.SUITE_LABEL || 'browser';

let passed = 0;
let failed = 0;

function ok(name) {
  passed++;
  console.log('ok   ' + name);
}

function bad(name, detail) {
  failed++;
  console.log('FAIL ' + name);
  if (detail) console.log(String(detail).replace(/^/gm, '     '));
}

// check(name, async fn): passes unless fn throws.
async function check(name, fn) {
  try {
    await fn();
    ok(name);
    return true;
  } catch (e) {
    bad(name, e && e.message ? e.message : e);
    return false;
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll fn until it returns a truthy value or the time is up; returns the value or throws with what was last seen.
async function waitFor(what, fn, timeoutMs = 10000, everyMs = 250) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(everyMs);
  }
}

function dig(args) {
  return new Promise((resolve) => {
    execFile('dig', ['@' + DNS_ADDR, '-p', DNS_PORT, '+time=6', '+tries=1', '-b', '127.0.0.1', ...args],
      { timeout: 15000 }, (err, stdout, stderr) => resolve({ err, out: String(stdout) + String(stderr) }));
  });
}

const num = (s) => {
  const v = Number(String(s).replace(/[,\s]/g, ''));
  return Number.isFinite(v) ? v : NaN;
};

const rand = () => Math.random().toString(36).slice(2, 8);

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mxr-chromium-'));
  const pageErrors = [];
  const consoleErrors = [];
  // URLs whose error responses a check provokes on purpose (the page logs
  // "Failed to load resource" for them).
  const expectedErrorUrls = new Set();
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
      viewport: { width: 1600, height: 1000 },
    });
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const loc = m.location() || {};
      const u = loc.url || '';
      if (u.endsWith('/favicon.ico')) return; // the browser's own request, not the page's
      if ([...expectedErrorUrls].some((x) => u.startsWith(x))) return;
      consoleErrors.push(m.text() + (u ? ' (' + u + ')' : ''));
    });
    const apiRequests = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/v1/')) apiRequests.push(r.url());
    });

    // ---- loading ------------------------------------------------------------
    const loaded = await check('dashboard loads with status 200 and its CSP-safe scripts', async () => {
      const res = await page.goto(URL_, { waitUntil: 'load' });
      assert(res && res.status() === 200, 'status ' + (res && res.status()));
      const html = await res.text();
      assert(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), 'an inline <script> in the page');
      assert(!/\sstyle\s*=|<style[\s>]/i.test(html), 'an inline style in the page');
      assert(!/\son[a-z]+\s*=/i.test(html), 'an inline event handler in the page');
      const scripts = [...html.matchAll(/<script[^>]*\bsrc="([^"]+)"/gi)].map((m) => m[1]);
      assert(scripts.join(' ') === '/assets/chart.min.js /assets/app.js', 'scripts: ' + scripts.join(' '));
      await waitFor('Chart.js', () => page.evaluate(() => typeof window.Chart === 'function'), 5000);
    });
    if (!loaded) return;

    const readText = (sel) => page.locator(sel).first().textContent({ timeout: 5000 }).then((t) => (t || '').trim());

    await check('header: version, uptime and status', async () => {
      await waitFor('a version', async () => /^v\d/.test(await readText('#version')));
      await waitFor('an uptime', async () => /\d+s$|\d+m$/.test(await readText('#uptime')));
      const st = await readText('#status');
      assert(st === 'running' || st === 'degraded', 'status is ' + JSON.stringify(st));
    });

    // ---- tiles ---------------------------------------------------------------
    await check('queries total counts up over a few seconds', async () => {
      const first = await waitFor('a query total', async () => {
        const v = num(await readText('#queries-total'));
        return v > 0 ? v : 0;
      });
      await waitFor('a larger total than ' + first, async () => num(await readText('#queries-total')) > first, 8000);
    });

    await check('queries/s tile shows a positive rate', async () => {
      await waitFor('qps > 0', async () => num(await readText('#qps')) > 0, 8000);
    });

    await check('hit ratio tile shows a percentage', async () => {
      await waitFor('a % value', async () => /^\d+(\.\d+)? %$/.test(await readText('#hit-ratio')));
    });

    await check('latency tiles show p50/p95/p99 for cache hits and recursions', async () => {
      await waitFor('latency values', async () => {
        for (const id of ['lat-hit-p50', 'lat-hit-p95', 'lat-hit-p99', 'lat-rec-p50', 'lat-rec-p95', 'lat-rec-p99']) {
          if (!/(µs|ms| s)$/.test(await readText('#' + id))) return false;
        }
        return true;
      }, 8000);
    });

    await check('rate, in-flight and timeout tiles show numbers', async () => {
      for (const id of ['blocked-ps', 'servfail-ps', 'stale-ps', 'inflight', 'client-timeouts']) {
        const t = await readText('#' + id);
        assert(Number.isFinite(num(t)), `#${id} is ${JSON.stringify(t)}`);
      }
      await waitFor('blocked/s above 0 (background traffic has blocked names)',
        async () => num(await readText('#blocked-total')) > 0, 8000);
    });

    // ---- charts --------------------------------------------------------------
    const chartInfo = () => page.evaluate(() => {
      const out = {};
      for (const c of document.querySelectorAll('canvas[id^="chart-"]')) {
        const ch = window.Chart.getChart(c);
        if (!ch) {
          out[c.id] = null;
          continue;
        }
        const ds = ch.data.datasets;
        const d0 = ds[0] ? ds[0].data : [];
        const xs = d0.map((p) => p.x);
        out[c.id] = {
          datasets: ds.length,
          points: d0.length,
          lastX: xs.length ? Math.max(...xs) : null,
          nonNull: ds.map((d) => d.data.filter((p) => p.y !== null && p.y !== undefined).length),
          maxY: Math.max(0, ...d0.map((p) => (typeof p.y === 'number' ? p.y : 0))),
          xmin: ch.options.scales.x.min,
          xmax: ch.options.scales.x.max,
          yType: ch.options.scales.y.type || 'linear',
        };
      }
      return out;
    });

    await check('five line charts, one Chart.js instance each, with their datasets', async () => {
      const info = await chartInfo();
      const want = { 'chart-qps': 1, 'chart-hit': 1, 'chart-events': 3, 'chart-lat-hit': 3, 'chart-lat-rec': 3 };
      for (const [id, n] of Object.entries(want)) {
        assert(info[id], 'no chart on #' + id);
        assert(info[id].datasets === n, `#${id} has ${info[id].datasets} datasets, want ${n}`);
      }
      assert(info['chart-lat-hit'].yType === 'logarithmic', 'latency axis not logarithmic');
    });

    await check('queries/s chart gets new points with traffic in them', async () => {
      const first = await waitFor('points in the qps chart', async () => {
        const i = (await chartInfo())['chart-qps'];
        return i.points > 0 && i.maxY > 0 ? i : null;
      }, 15000);
      await waitFor('a newer last point than ' + first.lastX, async () => {
        const i = (await chartInfo())['chart-qps'];
        return i.lastX > first.lastX;
      }, 16000, 500);
    });

    await check('latency charts have percentile points', async () => {
      await waitFor('non-empty latency series', async () => {
        const i = await chartInfo();
        return i['chart-lat-hit'].nonNull.some((n) => n > 0) && i['chart-lat-rec'].nonNull.some((n) => n > 0);
      }, 12000);
    });

    await check('range switch: last day spans 24 h, last hour 1 h', async () => {
      await page.click('#range-day');
      await waitFor('a day-wide x axis', async () => {
        const i = (await chartInfo())['chart-qps'];
        return i.xmax - i.xmin === 86400;
      }, 8000);
      assert((await page.getAttribute('#range-day', 'aria-pressed')) === 'true', 'day button not pressed');
      assert(apiRequests.some((u) => u.includes('/api/v1/timeseries?range=day')), 'no range=day request');
      await page.click('#range-hour');
      await waitFor('an hour-wide x axis', async () => {
        const i = (await chartInfo())['chart-qps'];
        return i.xmax - i.xmin === 3600;
      }, 8000);
    });

    // ---- cache, filters, top lists -------------------------------------------
    await check('cache: partitions with entries, quota meters and LMDB map use', async () => {
      await waitFor('partition rows', async () => (await page.locator('#cache-table tbody tr[data-partition]').count()) > 0);
      const text = await readText('#map-text');
      assert(/ of .*\(\d+(\.\d+)?%\)/.test(text), 'map text ' + JSON.stringify(text));
    });

    await check('filter sources table lists the configured sources', async () => {
      await waitFor('the three sources', async () => {
        const names = await page.locator('#filters-table tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.source));
        return ['local-block', 'local-allow', 'zen'].every((n) => names.includes(n));
      });
      const row = page.locator('#filters-table tbody tr[data-source="local-block"] td');
      assert((await row.count()) === 8, 'a filter row has ' + (await row.count()) + ' cells');
      await waitFor('blocks counted for local-block', async () => num(await row.nth(7).textContent()) > 0, 8000);
    });

    await check('top tables: names, blocked names and clients', async () => {
      await waitFor('example.com among the top names', async () =>
        (await page.locator('#top-names tbody').textContent()).includes('example.com'));
      await waitFor('a blocked name', async () =>
        (await page.locator('#top-blocked tbody').textContent()).includes('ads.flood.insecure.com'));
      await waitFor('127.0.0.1 among the top clients, as a link', async () =>
        (await page.locator('#top-clients a[data-client="127.0.0.1"]').count()) === 1);
    });

    // ---- query log -----------------------------------------------------------
    const label = 'web' + rand() + rand();
    const uniq = label + '.flood.insecure.com';
    const logNames = () => page.locator('#querylog tbody tr td.name').allTextContents();

    await check('a query just sent shows up in the query log', async () => {
      const r = await dig(['A', uniq]);
      assert(/status: NOERROR/.test(r.out), 'dig: ' + r.out.slice(0, 400));
      await waitFor(uniq + ' in the log table', async () => (await logNames()).includes(uniq), 10000);
      const others = (await logNames()).filter((n) => !n.includes(label));
      assert(others.length > 0, 'no other names in the log to be hidden by the filter');
    });

    await check('the name filter asks the API and shows only matching rows with "N matched"', async () => {
      const part = label.slice(0, 10);
      const req = page.waitForRequest((r) => r.url().includes('/api/v1/querylog?') && r.url().includes('name=' + part), { timeout: 8000 });
      await page.fill('#querylog-filter', part);
      await req;
      await waitFor('only matching rows', async () => {
        const names = await logNames();
        return names.length >= 1 && names.every((n) => n.includes(part)) && names.includes(uniq);
      }, 8000);
      const m = await readText('#querylog-matched');
      assert(/^\d[\d,]* matched$/.test(m) && num(m.split(' ')[0]) >= 1, 'matched text ' + JSON.stringify(m));
      assert(num(m.split(' ')[0]) === (await logNames()).length, 'matched ' + m + ' but ' + (await logNames()).length + ' rows');
    });

    await check('type and blocked selects narrow the filter through the API', async () => {
      await page.selectOption('#querylog-type', 'AAAA');
      await waitFor('0 matched for AAAA', async () => (await readText('#querylog-matched')) === '0 matched', 8000);
      assert(apiRequests.some((u) => u.includes('type=AAAA')), 'no type=AAAA request');
      await page.selectOption('#querylog-type', 'A');
      await waitFor('the A query back', async () => (await logNames()).includes(uniq), 8000);
      await page.selectOption('#querylog-blocked', '1');
      await waitFor('nothing blocked under the unique label', async () => (await readText('#querylog-matched')) === '0 matched', 8000);
      await page.selectOption('#querylog-blocked', '0');
      await waitFor('the A query as not blocked', async () => (await logNames()).includes(uniq), 8000);
      await page.click('#querylog-clear');
      await waitFor('other names again after Clear', async () => (await logNames()).some((n) => !n.includes(label)), 8000);
    });

    // ---- per-client view -------------------------------------------------------
    await check('clicking 127.0.0.1 in the top clients opens its view with counters and recent queries', async () => {
      // A query of its own, sent just before: the view lists a client's last 100 queries, and the
      // background traffic from 127.0.0.1 (about 30 a second) pushes older ones out within seconds.
      const fresh = 'c' + rand() + '.flood.insecure.com';
      const r = await dig(['A', fresh]);
      assert(/status: NOERROR/.test(r.out), 'dig: ' + r.out.slice(0, 400));
      await page.click('#top-clients a[data-client="127.0.0.1"]');
      await waitFor('the client view', async () => (await page.isVisible('#client-view')) && (await readText('#client-title')) === '127.0.0.1');
      await waitFor('counters of 127.0.0.1', async () => (await page.locator('#client-counters .minitile').count()) >= 5, 8000);
      await waitFor('the query just sent among its recent queries', async () =>
        (await page.locator('#client-recent tbody td.name').allTextContents()).includes(fresh), 8000);
      assert(apiRequests.some((u) => u.endsWith('/api/v1/clients/127.0.0.1')), 'no /api/v1/clients/127.0.0.1 request');
    });

    await check('typing an address opens that client; a bad address is reported', async () => {
      await page.fill('#client-input', '127.0.10.231');
      await page.click('#client-go');
      await waitFor('127.0.10.231 recent queries', async () =>
        (await readText('#client-title')) === '127.0.10.231' &&
        (await page.locator('#client-recent tbody td.name').allTextContents()).length > 0, 8000);
      expectedErrorUrls.add(new URL('/api/v1/clients/', URL_).href);
      await page.fill('#client-input', 'not-an-address');
      await page.click('#client-go');
      await waitFor('"Not an address"', async () => (await readText('#client-status')).startsWith('Not an address'), 8000);
      await page.fill('#client-input', '127.0.0.1');
      await page.click('#client-go');
      await waitFor('127.0.0.1 again', async () => (await page.locator('#client-counters .minitile').count()) >= 5, 8000);
    });

    // ---- admin -----------------------------------------------------------------
    if (TOKEN) {
      const blockedLabel = 'blk' + rand();
      const blockedName = blockedLabel + '.flood.insecure.com';
      const resultText = async () => (await readText('#admin-result-head')) + '\n' + (await readText('#admin-result-body'));

      await check('admin: a wrong token gets a clear 401 message', async () => {
        expectedErrorUrls.add(new URL('/api/v1/lists/block', URL_).href);
        await page.fill('#admin-token', 'wrong-' + rand());
        await page.fill('#block-name', blockedName);
        await page.click('#block-go');
        await waitFor('a 401 message', async () => (await page.getAttribute('#admin-result', 'data-state')) === 'bad', 8000);
        const t = await resultText();
        assert(/401 Unauthorized/.test(t) && /token/.test(t), 'result: ' + t);
      });

      await check('admin: block with the token adds the name to the editable list', async () => {
        await page.fill('#admin-token', TOKEN);
        assert((await page.evaluate(() => sessionStorage.getItem('mxresolved.token'))) === TOKEN, 'token not in sessionStorage');
        await page.click('#block-go');
        await waitFor('an OK result', async () => (await page.getAttribute('#admin-result', 'data-state')) === 'ok', 8000);
        const t = await resultText();
        assert(t.includes('"added"') && t.includes(blockedName) && t.includes('local-block'), 'result: ' + t);
        if (BLOCK_LIST) assert(fs.readFileSync(BLOCK_LIST, 'utf8').includes(blockedName), 'not written to ' + BLOCK_LIST);
      });

      await check('admin: the blocked name is answered as blocked and logged so', async () => {
        // The list reload may finish after the POST's reply: ask fresh names
        // under the blocked one until one is answered as blocked.
        await page.fill('#querylog-filter', blockedLabel);
        await page.selectOption('#querylog-blocked', '1');
        await waitFor('a blocked row', async () => {
          const rows = page.locator('#querylog tbody tr');
          if ((await rows.count()) >= 1 && (await rows.first().textContent()).includes(blockedName) &&
            (await rows.first().locator('.badge-blocked').count()) === 1) return true;
          await dig(['A', 'q' + rand() + '.' + blockedName]);
          return false;
        }, 12000, 500);
        await page.click('#querylog-clear');
      });

      await check('admin: allow, reload and flush show their JSON results', async () => {
        await page.fill('#allow-name', 'ok' + rand() + '.flood.insecure.com');
        await page.click('#allow-go');
        await waitFor('allow OK', async () => (await page.getAttribute('#admin-result', 'data-state')) === 'ok' &&
          (await resultText()).includes('local-allow'), 8000);
        await page.click('#reload-go');
        await waitFor('reload OK', async () => (await page.getAttribute('#admin-result', 'data-state')) === 'ok' &&
          (await resultText()).includes('"reloaded": true'), 8000);
        await page.fill('#flush-name', uniq);
        await page.click('#flush-go');
        await waitFor('flush OK', async () => (await page.getAttribute('#admin-result', 'data-state')) === 'ok' &&
          /"flushed": \d+/.test(await resultText()), 8000);
      });
    }

    // ---- screenshot --------------------------------------------------------------
    await check('full-page screenshot saved', async () => {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, 'dashboard.png');
      await page.evaluate(() => window.scrollTo(0, 0));
      await sleep(300);
      await page.screenshot({ path: file, fullPage: true });
      assert(fs.statSync(file).size > 10000, 'screenshot too small');
      console.log('     ' + file);
    });

    await sleep(500);
  } catch (e) {
    bad('the test ran to its end', e && e.stack ? e.stack : e);
  } finally {
    if (pageErrors.length) bad('no JavaScript errors on the page', pageErrors.join('\n'));
    else ok('no JavaScript errors on the page');
    if (consoleErrors.length) bad('no console errors', consoleErrors.join('\n'));
    else ok('no console errors');
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

await main();
console.log('');
console.log(`${LABEL}: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
