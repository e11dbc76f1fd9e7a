// The admin overview's live numbers: every 5 seconds while the page is in view, the numbers
// and the chart of the last hour follow GET /api/admin/overview (the server function the
// page was rendered from). Without JavaScript the page keeps what it was rendered with.
(() => {
  const EVERY_MS = 5000;
  // The chart's geometry, as the page draws it (src/app/pages/admin.rs, `chart`).
  const W = 520, H = 160;
  const numbers = document.querySelectorAll('[data-live]');
  const svg = document.querySelector('[data-live-chart] svg');
  if (numbers.length === 0) return;

  function redraw(perMinute) {
    if (!svg) return;
    const line = svg.querySelector('polyline');
    const texts = svg.querySelectorAll('text');
    if (!line || texts.length < 3) return;
    const n = perMinute.length;
    const top = Math.max(1, ...perMinute.map(([, v]) => v));
    const x = (i) => (n <= 1 ? W / 2 : 30 + ((W - 40) * i) / (n - 1));
    const y = (v) => H - 20 - ((H - 30) * v) / top;
    line.setAttribute(
      'points',
      perMinute.map(([, v], i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
    );
    texts[0].textContent = String(top);
    texts[1].textContent = n ? perMinute[0][0] : '';
    texts[2].textContent = n ? perMinute[n - 1][0] : '';
  }

  async function refresh() {
    if (document.visibilityState !== 'visible') return;
    try {
      const res = await fetch('/api/admin/overview', { headers: { Accept: 'application/json' } });
      if (!res.ok) return;
      const o = await res.json();
      for (const el of numbers) {
        const v = o[el.dataset.live];
        if (v !== undefined) el.textContent = String(v);
      }
      redraw(o.messages_per_minute || []);
    } catch {
      // The next turn tries again.
    }
  }
  setInterval(refresh, EVERY_MS);
})();
