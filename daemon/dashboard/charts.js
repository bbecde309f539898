// Charts drawn as inline SVG by our own code (no library, nothing fetched): the level
// distribution bar chart, the level-history step chart and horizontal progress bars.
// Every chart scales with its container through its viewBox and names itself for screen readers.

import { s, h, levelClass, absTime, tid, serverNow } from './dom.js';

/**
 * Vertical bars, one per level: `levels` titles, `counts` numbers, `hrefFor(i)` an optional link
 * per bar, `id` names the test ids (`bar-<id>-<i>`, `bar-label-<id>-<i>`).
 */
export function barChart({ id, title, levels, counts, hrefFor }) {
  const W = 480;
  const H = 230;
  const top = 26;
  const bottom = 40;
  const side = 12;
  const plotH = H - top - bottom;
  const slot = (W - 2 * side) / Math.max(levels.length, 1);
  const barW = Math.min(84, slot * 0.62);
  const max = Math.max(1, ...counts);
  const total = counts.reduce((a, b) => a + b, 0);
  const summary = levels.map((l, i) => `${l}: ${counts[i]}`).join(', ');

  const svg = s(
    'svg',
    {
      class: 'chart bar-chart',
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': `${title}: ${summary} (${total} entities)`,
      testid: `chart-${tid(id)}`,
      'data-total': total,
    },
    s('title', {}, `${title}: ${summary}`),
    s('line', { class: 'axis', x1: side, x2: W - side, y1: top + plotH + 0.5, y2: top + plotH + 0.5 }),
  );
  levels.forEach((level, i) => {
    const count = counts[i] ?? 0;
    const barH = count === 0 ? 0 : Math.max(3, (count / max) * plotH);
    const x = side + slot * i + (slot - barW) / 2;
    const y = top + plotH - barH;
    const group = s(
      'g',
      { class: ['bar', levelClass(i, levels.length)] },
      s('rect', {
        x,
        y,
        width: barW,
        height: barH,
        rx: 3,
        testid: `bar-${tid(id)}-${i}`,
        'data-count': count,
        'data-level': level,
      }),
      s('text', { class: 'bar-value', x: x + barW / 2, y: y - 7, 'text-anchor': 'middle', testid: `bar-label-${tid(id)}-${i}` }, String(count)),
      s('text', { class: 'bar-axis-label', x: x + barW / 2, y: top + plotH + 22, 'text-anchor': 'middle' }, level),
      s('title', {}, `${level}: ${count} ${count === 1 ? 'entity' : 'entities'}`),
    );
    if (hrefFor) {
      svg.appendChild(s('a', { href: hrefFor(i), 'aria-label': `${level}: ${count} entities, show them` }, group));
    } else {
      svg.appendChild(group);
    }
  });
  return svg;
}

/**
 * Level over time as a step chart: `changes` are LevelChange records of one scorecard, oldest
 * first; the line runs from the first change to now.
 */
export function stepChart({ id, title, levels, changes }) {
  if (!changes.length) {
    return h('p', { class: 'muted', testid: `history-empty-${tid(id)}` }, 'No level change recorded yet.');
  }
  const W = 560;
  const H = 46 + 34 * Math.max(levels.length, 2);
  const left = 78;
  const right = 14;
  const top = 14;
  const bottom = 30;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const times = changes.map((c) => Date.parse(c.at));
  const now = Math.max(serverNow(), times[times.length - 1]);
  // From a little before the first change to now; a burst of changes (a fresh daemon) still
  // gets a visible span.
  const span = Math.max((now - times[0]) * 1.05, 5 * 60e3);
  const t0 = now - span;
  const x = (t) => left + ((t - t0) / span) * plotW;
  const n = Math.max(levels.length - 1, 1);
  const y = (i) => top + plotH - (i / n) * plotH;

  const svg = s('svg', {
    class: 'chart step-chart',
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': `${title}: ${changes.length} level changes, now ${changes[changes.length - 1].to}`,
    testid: `history-chart-${tid(id)}`,
    'data-points': changes.length,
  });
  svg.appendChild(s('title', {}, `${title} level history`));
  levels.forEach((level, i) => {
    svg.appendChild(s('line', { class: 'grid', x1: left, x2: W - right, y1: y(i), y2: y(i) }));
    svg.appendChild(s('text', { class: 'axis-label', x: left - 8, y: y(i) + 4, 'text-anchor': 'end' }, level));
  });
  const short = new Intl.DateTimeFormat(undefined, span < 2 * 86400e3 ? { hour: '2-digit', minute: '2-digit' } : { month: 'short', day: 'numeric' });
  for (let k = 0; k <= 2; k++) {
    const t = t0 + (span * k) / 2;
    const anchor = k === 0 ? 'start' : k === 2 ? 'end' : 'middle';
    svg.appendChild(s('text', { class: 'axis-label', x: x(t), y: H - 8, 'text-anchor': anchor }, short.format(t)));
  }
  let d = '';
  changes.forEach((c, k) => {
    const cx = x(times[k]);
    const cy = y(c.to_index);
    d += k === 0 ? `M${cx},${cy}` : `H${cx}V${cy}`;
  });
  d += `H${x(now)}`;
  svg.appendChild(s('path', { class: 'step-line', d }));
  changes.forEach((c, k) => {
    const from = c.from ? `${c.from} → ${c.to}` : `first evaluated at ${c.to}`;
    svg.appendChild(
      s(
        'circle',
        { class: ['step-point', levelClass(c.to_index, levels.length)], cx: x(times[k]), cy: y(c.to_index), r: 4.5 },
        s('title', {}, `${from} — ${absTime(c.at)} (${Math.round(c.percent)}% of rules)`),
      ),
    );
  });
  return svg;
}

/**
 * Horizontal progress bars: rows of {key, label, percent, text, href}. Test ids:
 * `<id>-bar-<key>` with `data-percent`.
 */
export function progressBars({ id, title, rows }) {
  const W = 560;
  const rowH = 30;
  const left = 150;
  const right = 118;
  const H = rows.length * rowH + 8;
  const plotW = W - left - right;
  const svg = s('svg', {
    class: 'chart progress-chart',
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': `${title}: ${rows.map((r) => `${r.label} ${r.text}`).join(', ')}`,
    testid: `${tid(id)}-chart`,
  });
  svg.appendChild(s('title', {}, title));
  rows.forEach((row, i) => {
    const yTop = 4 + i * rowH;
    const p = Math.max(0, Math.min(100, row.percent || 0));
    const label = row.label.length > 20 ? `${row.label.slice(0, 19)}…` : row.label;
    const labelEl = s('text', { class: 'bar-row-label', x: left - 10, y: yTop + 19, 'text-anchor': 'end' }, label);
    const g = s(
      'g',
      { testid: `${tid(id)}-bar-${tid(row.key)}`, 'data-percent': Math.round(p) },
      row.href ? s('a', { href: row.href }, labelEl) : labelEl,
      s('rect', { class: 'track', x: left, y: yTop + 6, width: plotW, height: 16, rx: 4 }),
      s('rect', { class: ['fill', p >= 100 ? 'is-done' : p >= 50 ? 'is-mid' : 'is-low'], x: left, y: yTop + 6, width: (plotW * p) / 100, height: 16, rx: 4 }),
      s('text', { class: 'bar-row-value', x: left + plotW + 8, y: yTop + 19 }, row.text),
      s('title', {}, `${row.label}: ${row.text}`),
    );
    svg.appendChild(g);
  });
  return svg;
}
