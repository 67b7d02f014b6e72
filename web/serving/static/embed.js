/* forumads embed: renders the ads of a slot. Vanilla JS, no dependencies, never throws.
 *   <script src="https://ads.example/embed.js" data-forum="cars" data-placement="sidebar" data-count="3" async></script>
 * or, anywhere on the page (with the script included once):
 *   <div class="forumads-slot" data-forum="cars" data-placement="inline" data-count="1"></div>
 * Ads come from the script's own origin. On any error the slot stays empty. */
(function () {
  'use strict';
  var d = document, w = window, TIMEOUT = 2000, DONE = 'data-forumads-done', STATE = 'data-forumads-state';
  var self = d.currentScript;

  function drop(node) {
    return function () { if (node.parentNode) node.parentNode.removeChild(node); };
  }
  function el(tag, cls) {
    var e = d.createElement(tag);
    if (cls) e.className = cls;
    return e;
  }

  function scriptOrigin() {
    var s = self;
    if (!s) {
      var all = d.getElementsByTagName('script');
      for (var i = all.length - 1; i >= 0 && !s; i--) {
        if (/\/embed\.js([?#]|$)/.test(all[i].src)) s = all[i];
      }
    }
    return s ? new URL(s.src, d.baseURI).origin : '';
  }

  function style() {
    if (d.getElementById('forumads-style')) return;
    var s = el('style');
    s.id = 'forumads-style';
    s.textContent = '.forumads{font:14px/1.4 system-ui,sans-serif;border:1px solid #d9dde3;border-radius:6px;padding:8px 10px;background:#fff}' +
      '.forumads-label{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#777;margin-bottom:4px}' +
      '.forumads-ad{display:flex;gap:8px;padding:6px 0;border-top:1px solid #eef0f3}.forumads-ad:first-of-type{border-top:0}' +
      '.forumads-img{width:64px;height:64px;object-fit:cover;border-radius:4px;flex:none}' +
      '.forumads-title{font-weight:600;color:#1a5fb4;text-decoration:none}.forumads-title:hover{text-decoration:underline}' +
      '.forumads-body{margin:2px 0;color:#333}.forumads-adv{font-size:12px;color:#777}';
    (d.head || d.documentElement).appendChild(s);
  }

  function beacon(url) {
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url)) return;
    } catch (e) { /* fall through to the pixel */ }
    try { (new Image()).src = url + '?img=1'; } catch (e) { /* nothing else to try */ }
  }

  // whenVisible calls fn once, when at least half of node is in the viewport.
  function whenVisible(node, fn) {
    var fired = false;
    function once() { if (!fired) { fired = true; fn(); } }
    if (w.IntersectionObserver) {
      var io = new IntersectionObserver(function (entries) {
        for (var i = 0; i < entries.length; i++) {
          if (entries[i].isIntersecting) { io.disconnect(); once(); return; }
        }
      }, { threshold: 0.5 });
      io.observe(node);
      return;
    }
    function check() {
      var r = node.getBoundingClientRect(), h = w.innerHeight || d.documentElement.clientHeight;
      if (r.bottom > 0 && r.top < h && r.height > 0) {
        w.removeEventListener('scroll', check);
        w.removeEventListener('resize', check);
        once();
      }
    }
    w.addEventListener('scroll', check, { passive: true });
    w.addEventListener('resize', check);
    check();
  }

  var TOKEN = /^\/v1\/(click|impression)\/[A-Za-z0-9_-]{1,256}$/;

  // render shows the valid ads of data in slot and reports whether there was any.
  function render(slot, data, base) {
    if (!data || !Array.isArray(data.ads)) return false;
    var box = el('div', 'forumads'), urls = [];
    box.setAttribute('aria-label', 'Sponsored');
    var label = el('div', 'forumads-label');
    label.textContent = 'Sponsored';
    box.appendChild(label);
    for (var i = 0; i < data.ads.length; i++) {
      var a = data.ads[i];
      if (!a || typeof a.title !== 'string' || typeof a.click_url !== 'string' || typeof a.impression_url !== 'string' ||
          !TOKEN.test(a.click_url) || !TOKEN.test(a.impression_url)) continue;
      var href = base + a.click_url;
      var item = el('div', 'forumads-ad');
      item.setAttribute('data-ad-id', String(a.id));
      if (typeof a.image_url === 'string' && /^https?:\/\//i.test(a.image_url)) {
        var il = el('a');
        il.href = href;
        il.rel = 'sponsored noopener';
        il.tabIndex = -1;
        il.setAttribute('aria-hidden', 'true');
        var img = el('img', 'forumads-img');
        img.alt = '';
        img.loading = 'lazy';
        img.onerror = drop(il); // an image that does not load leaves no broken picture
        img.src = a.image_url;
        il.appendChild(img);
        item.appendChild(il);
      }
      var text = el('div');
      var link = el('a', 'forumads-title');
      link.href = href;
      link.rel = 'sponsored noopener';
      link.textContent = a.title;
      text.appendChild(link);
      if (typeof a.body === 'string' && a.body) {
        var body = el('p', 'forumads-body');
        body.textContent = a.body;
        text.appendChild(body);
      }
      if (typeof a.advertiser === 'string' && a.advertiser) {
        var adv = el('span', 'forumads-adv');
        adv.textContent = a.advertiser;
        text.appendChild(adv);
      }
      item.appendChild(text);
      box.appendChild(item);
      urls.push(base + a.impression_url);
    }
    if (!urls.length) return false;
    style();
    slot.appendChild(box);
    whenVisible(box, function () {
      for (var j = 0; j < urls.length; j++) beacon(urls[j]);
    });
    return true;
  }

  // fill loads and renders one slot. Its data-forumads-state says how it went: loading, then
  // filled or empty (no ads, or any error), for host pages that collapse empty slots.
  function fill(slot, base) {
    slot.setAttribute(DONE, '1');
    slot.setAttribute(STATE, 'loading');
    var q = 'forum=' + encodeURIComponent(slot.getAttribute('data-forum') || '') +
      '&placement=' + encodeURIComponent(slot.getAttribute('data-placement') || 'sidebar') +
      '&count=' + encodeURIComponent(slot.getAttribute('data-count') || '1');
    var page = String(location.href).split('#')[0];
    if (/^https?:\/\//.test(page) && page.length <= 2048) q += '&url=' + encodeURIComponent(page);
    var ctrl = w.AbortController ? new AbortController() : null, dead = false;
    function end(state) { clearTimeout(timer); if (!dead) slot.setAttribute(STATE, state); dead = true; }
    var timer = setTimeout(function () { if (ctrl) ctrl.abort(); end('empty'); }, TIMEOUT);
    fetch(base + '/v1/ads?' + q, { credentials: 'omit', signal: ctrl ? ctrl.signal : undefined })
      .then(function (r) {
        if (!r.ok) throw new Error('forumads: HTTP ' + r.status);
        return r.json();
      })
      .then(function (data) { if (!dead) end(render(slot, data, base) ? 'filled' : 'empty'); })
      .catch(function () { end('empty'); });
  }

  function run() {
    try {
      var base = scriptOrigin();
      if (!base || !w.fetch) return;
      if (self && self.getAttribute('data-forum') && !self.hasAttribute(DONE)) {
        self.setAttribute(DONE, '1');
        var box = el('div', 'forumads-slot');
        var names = ['data-forum', 'data-placement', 'data-count'];
        for (var i = 0; i < names.length; i++) {
          var v = self.getAttribute(names[i]);
          if (v !== null) box.setAttribute(names[i], v);
        }
        self.parentNode.insertBefore(box, self.nextSibling);
      }
      var slots = d.querySelectorAll('div.forumads-slot:not([' + DONE + '])');
      for (var k = 0; k < slots.length; k++) fill(slots[k], base);
    } catch (e) { /* never break the host page */ }
  }

  try {
    if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', run);
    else run();
  } catch (e) { /* never break the host page */ }
})();
