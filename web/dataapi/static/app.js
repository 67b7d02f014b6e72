// The advertiser dashboard: plain JavaScript, no framework. Every value from the API is written
// with textContent (never as HTML). The token comes from #token=… or a form, and lives in
// sessionStorage for this tab only.
'use strict';

(function () {
  const TOKEN_KEY = 'forumads.dataapi.token';
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  const fmtInt = new Intl.NumberFormat('en-US');
  const state = { token: null, next: null, selected: null, selectedAd: null, view: 'hourly', series: null, title: '', poll: null };

  class Unauthorized extends Error {}

  function tokenFromHash() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return null;
    history.replaceState(null, '', location.pathname + location.search);
    try { return decodeURIComponent(m[1]); } catch (e) { return null; }
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = { Authorization: 'Bearer ' + state.token, Accept: 'application/json' };
    if (opts.body) headers['Content-Type'] = 'application/json';
    const resp = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (resp.status === 401) {
      signOut('The token was refused: enter a valid one.');
      throw new Unauthorized('unauthorized');
    }
    if (!resp.ok) {
      throw new Error(body && body.error ? body.error.message : 'HTTP ' + resp.status);
    }
    return body;
  }

  function showError(err) {
    if (err instanceof Unauthorized) return;
    $('app-error').textContent = String(err.message || err);
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    if (state.poll) clearTimeout(state.poll);
    $('app').hidden = true;
    $('signout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('token').focus();
  }

  function start(token) {
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('login').hidden = true;
    $('app').hidden = false;
    $('signout').hidden = false;
    $('app-error').textContent = '';
    $('campaigns').tBodies[0].replaceChildren();
    state.next = null;
    loadCampaigns(true).catch(showError);
  }

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function pct(x) { return (x * 100).toFixed(2) + '%'; }

  async function loadCampaigns(first) {
    let path = '/v1/dashboard/campaigns?limit=50';
    if (!first && state.next) path += '&cursor=' + encodeURIComponent(state.next);
    const page = await api(path);
    const tbody = $('campaigns').tBodies[0];
    for (const c of page.items) {
      const tr = document.createElement('tr');
      tr.dataset.id = String(c.id);
      cell(tr, c.name);
      cell(tr, c.status);
      cell(tr, c.bid, 'num');
      cell(tr, fmtInt.format(c.totals.impressions), 'num');
      cell(tr, fmtInt.format(c.totals.clicks), 'num');
      cell(tr, c.totals.spend, 'num');
      cell(tr, pct(c.totals.ctr), 'num');
      tr.addEventListener('click', () => selectCampaign(c).catch(showError));
      tbody.appendChild(tr);
    }
    state.next = page.next_cursor;
    $('more').hidden = !state.next;
    $('campaigns-empty').hidden = tbody.rows.length > 0;
    if (first && page.items.length > 0 && !state.selected) await selectCampaign(page.items[0]);
  }

  async function selectCampaign(c) {
    state.selected = c.id;
    state.selectedAd = null;
    for (const tr of $('campaigns').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.id === String(c.id));
    $('chart-section').hidden = false;
    const [series, ads] = await Promise.all([
      api('/v1/campaigns/' + c.id + '/timeseries'),
      api('/v1/ads?limit=200&campaign_id=' + c.id),
    ]);
    showSeries(c.name, series);
    const ul = $('ads');
    ul.replaceChildren();
    const all = document.createElement('li');
    const allBtn = document.createElement('button');
    allBtn.type = 'button';
    allBtn.textContent = 'All ads';
    allBtn.className = 'on';
    allBtn.addEventListener('click', () => { markAd(allBtn); showSeries(c.name, series); });
    all.appendChild(allBtn);
    ul.appendChild(all);
    for (const ad of ads.items) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = ad.title;
      b.dataset.ad = String(ad.id);
      b.addEventListener('click', () => selectAd(c, ad, b).catch(showError));
      li.appendChild(b);
      ul.appendChild(li);
    }
  }

  function markAd(btn) {
    for (const b of $('ads').querySelectorAll('button')) b.classList.toggle('on', b === btn);
  }

  async function selectAd(c, ad, btn) {
    markAd(btn);
    state.selectedAd = ad.id;
    showSeries(c.name + ' › ' + ad.title, await api('/v1/ads/' + ad.id + '/timeseries'));
  }

  function showSeries(title, series) {
    state.series = series;
    state.title = title;
    $('chart-title').textContent = title;
    draw();
  }

  function el(name, attrs, parent, text) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function label(t, view) {
    const d = new Date(t);
    if (view === 'hourly') return String(d.getUTCHours()).padStart(2, '0') + ':00';
    return String(d.getUTCMonth() + 1).padStart(2, '0') + '-' + String(d.getUTCDate()).padStart(2, '0');
  }

  // draw renders three stacked panels (impressions, clicks, CTR) sharing the time axis.
  function draw() {
    const svg = $('chart');
    svg.replaceChildren();
    if (!state.series) return;
    const pts = state.series[state.view] || [];
    const W = 760, left = 64, right = 16, panelH = 110, gap = 26, top = 20;
    const panels = [
      { name: 'Impressions', cls: 'impressions', value: (p) => p.i, fmt: (v) => fmtInt.format(Math.round(v)) },
      { name: 'Clicks', cls: 'clicks', value: (p) => p.c, fmt: (v) => fmtInt.format(Math.round(v)) },
      { name: 'CTR', cls: 'ctr', value: (p) => (p.i > 0 ? p.c / p.i : 0), fmt: pct },
    ];
    const n = pts.length;
    const x = (i) => left + (n <= 1 ? 0 : (i * (W - left - right)) / (n - 1));
    let drawn = 0;
    panels.forEach((panel, k) => {
      const y0 = top + k * (panelH + gap);
      const values = pts.map(panel.value);
      const max = Math.max(0, ...values) || 1;
      const y = (v) => y0 + panelH - (v / max) * panelH;
      const g = el('g', { class: 'panel', 'data-series': panel.cls }, svg);
      el('text', { x: 0, y: y0 - 6, class: 'title' }, g, panel.name);
      el('line', { x1: left, y1: y0 + panelH, x2: W - right, y2: y0 + panelH, class: 'axis' }, g);
      el('line', { x1: left, y1: y0, x2: left, y2: y0 + panelH, class: 'axis' }, g);
      el('text', { x: left - 6, y: y0 + 10, 'text-anchor': 'end' }, g, panel.fmt(max));
      el('text', { x: left - 6, y: y0 + panelH, 'text-anchor': 'end' }, g, panel.fmt(0));
      if (n === 0) return;
      const line = values.map((v, i) => x(i).toFixed(1) + ',' + y(v).toFixed(1)).join(' ');
      el('polyline', { points: line, class: panel.cls }, g);
      values.forEach((v, i) => {
        const c = el('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: panel.cls }, g);
        el('title', {}, c, label(pts[i].t, state.view) + ': ' + panel.fmt(v));
        drawn++;
      });
    });
    const axisY = top + 3 * (panelH + gap) - gap + 16;
    const step = Math.max(1, Math.ceil(n / 8));
    for (let i = 0; i < n; i += step) el('text', { x: x(i), y: axisY, 'text-anchor': 'middle' }, svg, label(pts[i].t, state.view));
    svg.dataset.points = String(drawn);
    svg.dataset.view = state.view;
  }

  async function startImport(source) {
    const status = $('import-status');
    const fill = $('bar-fill');
    status.hidden = false;
    fill.className = '';
    fill.style.width = '0';
    $('import-state').textContent = 'SENDING';
    $('import-detail').textContent = '';
    const res = await api('/v1/imports', { method: 'POST', body: JSON.stringify({ source }) });
    $('import-task').textContent = res.task_id;
    pollTask(res.task_id);
  }

  function pollTask(id) {
    if (state.poll) clearTimeout(state.poll);
    const step = async () => {
      let t;
      try {
        t = await api('/v1/tasks/' + encodeURIComponent(id));
      } catch (err) {
        showError(err);
        if (!(err instanceof Unauthorized)) state.poll = setTimeout(step, 2000);
        return;
      }
      const fill = $('bar-fill');
      $('import-state').textContent = t.state;
      if (t.progress && t.progress.total > 0) {
        const f = Math.min(1, t.progress.current / t.progress.total);
        fill.style.width = (f * 100).toFixed(1) + '%';
        $('import-detail').textContent = fmtInt.format(t.progress.current) + ' of ' + fmtInt.format(t.progress.total) + ' rows';
      }
      if (t.state === 'SUCCESS') {
        fill.style.width = '100%';
        fill.className = 'done';
        const r = t.result || {};
        $('import-detail').textContent = r.rows_total !== undefined
          ? fmtInt.format(r.rows_ok) + ' of ' + fmtInt.format(r.rows_total) + ' rows imported, ' + fmtInt.format(r.rows_failed) + ' refused'
          : 'done';
        $('campaigns').tBodies[0].replaceChildren();
        state.selected = null;
        loadCampaigns(true).catch(showError);
        return;
      }
      if (t.state === 'FAILURE' || t.state === 'REVOKED') {
        fill.style.width = '100%';
        fill.className = 'failed';
        $('import-detail').textContent = t.error ? t.error.type + ': ' + t.error.message : '';
        return;
      }
      state.poll = setTimeout(step, 1000);
    };
    step();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const t = $('token').value.trim();
      if (t) { $('token').value = ''; start(t); }
    });
    $('signout').addEventListener('click', () => signOut(''));
    $('more').addEventListener('click', () => loadCampaigns(false).catch(showError));
    for (const b of document.querySelectorAll('.toolbar button')) {
      b.addEventListener('click', () => {
        state.view = b.dataset.view;
        for (const o of document.querySelectorAll('.toolbar button')) o.classList.toggle('on', o === b);
        draw();
      });
    }
    $('import-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const src = $('source').value.trim();
      if (src) startImport(src).catch((err) => {
        $('import-state').textContent = 'REFUSED';
        $('import-detail').textContent = String(err.message || err);
        showError(err);
      });
    });
    const token = tokenFromHash() || sessionStorage.getItem(TOKEN_KEY);
    if (token) start(token); else signOut('');
  });
})();
