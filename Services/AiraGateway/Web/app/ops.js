// The operator console: what `aira-admin` does, in the browser, over the same engine
// (/api/admin/queues, /api/admin/dlq/*, /api/admin/analysis/runs).
import { api } from './api.js';
import { action, errorLine, field, fmtDate, fmtDuration, h, page, showError, table, toast } from './ui.js';

const rate = (r) => (r === undefined || r === null ? '—' : r.toFixed(1));
const count = (n) => (n === undefined || n === null ? '—' : String(n));

export async function queues(_params, ctx) {
  const body = h('div');
  const stamp = h('p', { class: 'muted', 'aria-live': 'off' });
  const pause = h('input', { type: 'checkbox', id: 'auto-refresh', checked: true });
  async function load() {
    try {
      const data = await api('/api/admin/queues');
      body.replaceChildren(table(['Queue', 'Ready', 'Unacked', 'Consumers', 'In retry', 'Dead letters', 'In /s', 'Out /s', 'Acked /s'],
        data.items.map((q) => h('tr', { dataset: { queue: q.queue } },
          h('th', { scope: 'row' }, q.queue), h('td', {}, count(q.ready)), h('td', {}, count(q.unacked)),
          h('td', { class: q.consumers === 0 ? 'warn' : '' }, count(q.consumers)), h('td', {}, String(q.retrying)),
          h('td', {}, q.deadLetters ? h('a', { href: `#/ops/dlq/${encodeURIComponent(q.queue)}` }, String(q.deadLetters)) : count(q.deadLetters)),
          h('td', {}, rate(q.publishRate)), h('td', {}, rate(q.deliverRate)), h('td', {}, rate(q.ackRate))))));
      stamp.textContent = `Updated ${fmtDate(data.at)}`;
    } catch (e) { body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message)); }
  }
  await load();
  const timer = setInterval(() => { if (pause.checked) load(); }, 3000);
  ctx.onLeave(() => clearInterval(timer));
  return page('Queues', h('div', { class: 'row' }, pause, h('label', { for: 'auto-refresh' }, 'Refresh every 3 s'), stamp), body);
}

export async function deadLetterQueues() {
  const data = await api('/api/admin/dlq');
  return page('Dead letters', table(['Dead-letter queue', 'Messages', 'Oldest'], data.items.map((d) => {
    const work = d.queue.replace(/\.dlq$/, '');
    return h('tr', { dataset: { queue: work } },
      h('th', { scope: 'row' }, h('a', { href: `#/ops/dlq/${encodeURIComponent(work)}` }, d.queue)),
      h('td', {}, String(d.depth)), h('td', {}, d.oldestAgeSeconds ? `${fmtDuration(d.oldestAgeSeconds)} ago` : '—'));
  })));
}

export async function deadLetters(params, ctx) {
  const queue = params.queue;
  const base = `/api/admin/dlq/${encodeURIComponent(queue)}`;
  const data = await api(`${base}?limit=500`);
  const rateInput = h('input', { type: 'number', min: 1, max: 500, value: 50, id: 'replay-rate' });
  const result = h('div', { 'aria-live': 'polite' });

  /** Dry run first: shows how many would move, then asks before moving them. */
  async function replay(selection, label) {
    const dry = await api(`${base}/replay`, { method: 'POST', body: { ...selection, dryRun: true, rate: Number(rateInput.value) } });
    if (!confirm(`Replay ${label}: ${dry.moved.length} message(s) would move back to ${dry.target} at ${rateInput.value}/s. Go ahead?`)) return;
    const report = await api(`${base}/replay`, { method: 'POST', body: { ...selection, rate: Number(rateInput.value) } });
    toast(`Moved ${report.moved.length} of ${report.matched} back to ${report.target}`);
    result.textContent = `Replayed ${report.moved.length} message(s) to ${report.target}${report.incomplete ? ' (not all were scanned: run again)' : ''}.`;
    await ctx.rerender();
  }
  async function purge(selection, label) {
    if (!confirm(`Delete ${label} from ${data.deadLetterQueue} for good? This cannot be undone.`)) return;
    const report = await api(`${base}/purge`, { method: 'POST', body: { ...selection, confirm: true } });
    toast(`Deleted ${report.deleted} from ${report.queue}`);
    await ctx.rerender();
  }

  const groups = table(['Error', 'Messages', 'First failed', 'Last failed', ''], data.groups.map((g, i) => h('tr', { dataset: { group: String(i) } },
    h('td', {}, h('strong', {}, g.errorType || 'unknown'), h('br'), h('span', { class: 'mono' }, g.error || '—')),
    h('td', {}, String(g.count)), h('td', {}, fmtDate(g.firstFailedAt)), h('td', {}, fmtDate(g.lastFailedAt)),
    h('td', {}, h('div', { class: 'row' },
      action('Replay group', () => replay({ ids: g.ids }, `the ${g.count} message(s) of this group`), { 'aria-label': `Replay the group ${g.errorType || 'unknown'}` }),
      action('Purge group', () => purge({ ids: g.ids }, `the ${g.count} message(s) of this group`), { class: 'danger', 'aria-label': `Purge the group ${g.errorType || 'unknown'}` }))))),
  'Grouped by error');

  const letters = h('ul', { class: 'letters' }, data.items.map((d) => h('li', { class: 'card', dataset: { id: d.id } },
    h('details', {},
      h('summary', {}, h('span', { class: 'mono' }, d.id), ` ${d.type || '—'} · attempts ${d.attempts} · ${d.errorType || ''}`),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Error'), h('dd', {}, d.error || '—'), h('dt', {}, 'Disposition'), h('dd', {}, d.disposition || '—'),
        h('dt', {}, 'First failed'), h('dd', {}, fmtDate(d.firstFailedAt)), h('dt', {}, 'Last failed'), h('dd', {}, fmtDate(d.lastFailedAt)),
        h('dt', {}, 'Routing key'), h('dd', {}, d.originalRoutingKey || '—')),
      h('h4', {}, 'Headers'), h('pre', {}, Object.entries(d.headers || {}).map(([k, v]) => `${k}: ${v}`).join('\n')),
      h('h4', {}, 'Body'), h('pre', {}, d.body || ''),
      h('div', { class: 'row' }, action('Replay', () => replay({ ids: [d.id] }, 'this message')), action('Purge', () => purge({ ids: [d.id] }, 'this message'), { class: 'danger' }))))));

  const errorText = h('input', { type: 'text', id: 'filter-error', placeholder: 'part of the error' });
  const typeText = h('input', { type: 'text', id: 'filter-type', placeholder: 'e.g. audit.event.v1' });
  const error = errorLine();
  const filterForm = h('form', { class: 'card filters' }, h('h2', {}, 'Replay by filter'), field('Error contains', errorText), field('Message type', typeText), error,
    h('button', { type: 'submit' }, 'Replay matching'));
  filterForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    const selection = {};
    if (errorText.value.trim()) selection.error = errorText.value.trim();
    if (typeText.value.trim()) selection.type = typeText.value.trim();
    if (!Object.keys(selection).length) return showError(error, new Error('give an error text or a type'));
    try { await replay(selection, 'the matching messages'); } catch (err) { showError(error, err); }
  });

  return page(`Dead letters: ${queue}`,
    h('p', { class: 'muted' }, `${data.items.length} message(s) in ${data.deadLetterQueue}. Replayed messages go back to ${data.queue} with their attempts reset.`),
    h('div', { class: 'card row' }, field('Replay rate (messages/s)', rateInput),
      action('Replay all', () => replay({ all: true }, 'every message')), action('Purge all', () => purge({ all: true }, 'every message'), { class: 'danger' })),
    result, groups, filterForm, h('h2', {}, 'Messages'), letters);
}

export async function analysis(_params, ctx) {
  const data = await api('/api/admin/analysis/runs?limit=14');
  const day = h('input', { type: 'date', required: true, id: 'run-day', value: new Date(Date.now() - 86_400_000).toISOString().slice(0, 10) });
  const error = errorLine();
  const form = h('form', { class: 'card row' }, field('Day to (re-)analyse', day), h('button', { type: 'submit', class: 'primary' }, 'Run analysis'), error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      const run = await api('/api/admin/analysis/runs', { method: 'POST', body: { day: day.value } });
      toast(`Requested the analysis of ${run.day} (generation ${run.generation})`);
      await ctx.rerender();
    } catch (err) { showError(error, err); }
  });
  return page('Nightly analysis', form, h('p', {}, action('Refresh', () => ctx.rerender())),
    table(['Day', 'Status', 'Trigger', 'Users', 'Done', 'Failed', 'Model AUC', 'Requested', 'Completed'], data.items.map((r) => h('tr', { dataset: { day: r.day } },
      h('th', { scope: 'row' }, r.day), h('td', {}, r.status), h('td', {}, `${r.trigger} (g${r.generation})`),
      h('td', {}, `${r.published}/${r.usersTotal}`), h('td', {}, String(r.succeeded)), h('td', {}, String(r.failed)),
      h('td', {}, r.model && r.model.auc !== undefined ? Number(r.model.auc).toFixed(3) : '—'), h('td', {}, fmtDate(r.requestedAt)), h('td', {}, fmtDate(r.completedAt)))),
    'Recent runs'));
}
