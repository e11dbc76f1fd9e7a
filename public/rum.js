// Real-user monitoring without cookies: this page's web vitals, measured with the browser's
// PerformanceObserver and sent once, when the page is hidden or left, to /api/rum with
// navigator.sendBeacon. What goes: the page ("/", "/app", "/account" or "other"), a coarse
// device class, and the numbers. No user, no cookie (the server reads none there).
//   LCP: the last largest-contentful-paint entry's start time.
//   CLS: the largest session window of layout shifts without recent input (1 s gaps, 5 s).
//   INP: the longest interaction (event entries with an interactionId), an approximation of
//        the 98th percentile that equals it below fifty interactions.
//   TTFB: the navigation's responseStart.
(() => {
  if (!('PerformanceObserver' in window) || !navigator.sendBeacon) return;
  const path = location.pathname;
  const page = path === '/' ? '/' : path.startsWith('/app') ? '/app' : path.startsWith('/account') ? '/account' : 'other';
  const coarse = matchMedia('(pointer: coarse)').matches;
  const device = !coarse ? 'desktop' : Math.min(screen.width, screen.height) >= 600 ? 'tablet' : 'mobile';
  const v = {};
  const watch = (type, each, extra) => {
    try {
      new PerformanceObserver((list) => list.getEntries().forEach(each))
        .observe(Object.assign({ type, buffered: true }, extra || {}));
    } catch (_) { /* an entry type this browser does not know */ }
  };
  watch('largest-contentful-paint', (e) => { v.lcp = e.startTime; });
  let windowValue = 0, windowStart = 0, lastShift = -Infinity;
  watch('layout-shift', (e) => {
    if (e.hadRecentInput) return;
    if (e.startTime - lastShift < 1000 && e.startTime - windowStart < 5000) {
      windowValue += e.value;
    } else {
      windowValue = e.value;
      windowStart = e.startTime;
    }
    lastShift = e.startTime;
    v.cls = Math.max(v.cls || 0, windowValue);
  });
  watch('event', (e) => { if (e.interactionId) v.inp = Math.max(v.inp || 0, e.duration); }, { durationThreshold: 16 });
  const nav = performance.getEntriesByType('navigation')[0];
  if (nav && nav.responseStart > 0) v.ttfb = nav.responseStart;
  let sent = false;
  const send = () => {
    if (sent) return;
    const metrics = {};
    for (const k of ['lcp', 'inp', 'cls', 'ttfb']) {
      if (typeof v[k] === 'number' && isFinite(v[k])) metrics[k] = k === 'cls' ? Math.round(v[k] * 10000) / 10000 : Math.round(v[k]);
    }
    if (Object.keys(metrics).length === 0) return;
    sent = true;
    const body = new Blob([JSON.stringify({ page, device, metrics })], { type: 'application/json' });
    navigator.sendBeacon('/api/rum', body);
  };
  addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') send(); });
  addEventListener('pagehide', send);
})();
