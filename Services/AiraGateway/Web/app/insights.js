// Insights: the nightly analysis of the user, as pictures (Chart.js): events per day, interests
// with their weights, and the likelihood of coming back; a clear empty state before the first run.
import { APIError, api } from './api.js';
import { fmtDate, h, page, table } from './ui.js';

export async function insights(_params, ctx) {
  let data;
  try {
    data = await api('/api/users/me/insights');
  } catch (e) {
    if (e instanceof APIError && e.code === 'no_insights') {
      return page('Your insights', h('div', { class: 'card empty', dataset: { empty: 'no_insights' } },
        h('h2', {}, 'No insights yet'),
        h('p', {}, 'The analysis runs every night over the last 28 days of activity. Use Aira for a day — chat, watch, make playlists — and your insights appear tomorrow.')));
    }
    throw e;
  }
  // No likelihood when the night had too few users to fit a model.
  const likelihood = Number.isFinite(data.returnLikelihood) ? Math.round(100 * data.returnLikelihood) : null;
  const canvas = h('canvas', { id: 'events-chart', role: 'img', 'aria-label': `Events per day: ${data.events} events on ${data.activeDays} active days` });
  const interests = (data.interests || []).slice(0, 15);
  const maxWeight = Math.max(0.0001, ...interests.map((i) => i.weight));
  const byType = Object.entries(data.countsByType || {}).sort((a, b) => b[1] - a[1]);

  const node = page('Your insights',
    h('p', { class: 'muted' }, `Analysis of ${data.day} (28 days from ${data.windowStart}), computed ${fmtDate(data.computedAt)}.`),
    h('div', { class: 'grid' },
      h('div', { class: 'card stat' }, h('h2', {}, 'Likely to come back'), likelihood === null
        ? h('p', { class: 'muted', dataset: { likelihood: 'none' } }, 'Not enough people were active that night to fit the model; it appears once there are.')
        : [h('p', { class: 'big', dataset: { likelihood: String(likelihood) } }, `${likelihood}%`),
          h('meter', { min: 0, max: 100, value: likelihood, 'aria-label': 'Return likelihood' }),
          h('p', { class: 'muted' }, data.model ? `Model AUC ${Number(data.model.auc).toFixed(2)} over ${data.model.trainSize} users` : '')]),
      h('div', { class: 'card stat' }, h('h2', {}, 'Activity'), h('p', { class: 'big' }, String(data.events)),
        h('p', {}, `events on ${data.activeDays} active day(s)`))),
    h('div', { class: 'card' }, h('h2', {}, 'Events per day'), h('div', { class: 'chart' }, canvas)),
    h('div', { class: 'grid' },
      h('div', { class: 'card' }, h('h2', {}, 'Interests'), interests.length
        ? h('ul', { class: 'bars' }, interests.map((i) => h('li', {},
          h('span', { class: 'term' }, i.term),
          h('span', { class: 'bar', style: `--w:${Math.round((100 * i.weight) / maxWeight)}%`, 'aria-hidden': 'true' }),
          h('span', { class: 'muted' }, i.weight.toFixed(3)))))
        : h('p', { class: 'muted' }, 'Not enough text yet to tell.')),
      h('div', { class: 'card' }, h('h2', {}, 'By kind'), table(['Event', 'Count'], byType.map(([k, n]) => h('tr', {}, h('td', {}, k), h('td', {}, String(n))))))));

  // Chart.js draws once the canvas is in the document.
  queueMicrotask(() => requestAnimationFrame(() => {
    if (!window.Chart || !canvas.isConnected) return;
    const chart = new window.Chart(canvas, {
      type: 'bar',
      data: { labels: data.countsByDay.map((d) => d.day.slice(5)), datasets: [{ label: 'Events', data: data.countsByDay.map((d) => d.events), backgroundColor: '#3b5bdb' }] },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    ctx.onLeave(() => chart.destroy());
  }));
  return node;
}
