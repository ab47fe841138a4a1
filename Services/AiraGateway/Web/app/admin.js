// Admins: find users and suspend / reinstate them; the audit log filtered by user, type and
// time range, paged by cursor.
import { api } from './api.js';
import { action, errorLine, field, fmtDate, h, page, showError, table, toast } from './ui.js';

export async function users(_params, ctx) {
  const q = h('input', { type: 'search', name: 'q', value: ctx.query.get('q') || '', placeholder: 'part of an email, or a user id' });
  const rows = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const error = errorLine();
  let cursor = null;

  function row(u) {
    const state = h('td', {}, u.suspended ? h('span', { class: 'badge bad' }, 'suspended') : h('span', { class: 'badge ok' }, 'active'));
    const tr = h('tr', { dataset: { user: u.id } }, h('td', {}, u.email), h('td', {}, u.role), h('td', {}, u.emailVerified ? 'yes' : 'no'),
      state, h('td', {}, fmtDate(u.createdAt)), h('td', {}));
    const button = action(u.suspended ? 'Unsuspend' : 'Suspend', async () => {
      if (!u.suspended && !confirm(`Suspend ${u.email}? Their sessions end at once.`)) return;
      const updated = await api(`/api/admin/users/${u.id}/${u.suspended ? 'unsuspend' : 'suspend'}`, { method: 'POST' });
      toast(`${updated.email} is ${updated.suspended ? 'suspended' : 'active again'}`);
      tr.replaceWith(row({ ...u, suspended: updated.suspended }));
    }, { class: u.suspended ? '' : 'danger', 'aria-label': `${u.suspended ? 'Unsuspend' : 'Suspend'} ${u.email}` });
    tr.lastChild.append(button);
    return tr;
  }

  async function load(reset) {
    error.hidden = true;
    if (reset) { cursor = null; rows.replaceChildren(); }
    const params = new URLSearchParams({ limit: '25' });
    if (q.value.trim()) params.set('q', q.value.trim());
    if (cursor) params.set('cursor', cursor);
    try {
      const body = await api(`/api/admin/users?${params}`);
      rows.append(...body.items.map(row));
      if (!rows.children.length) rows.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No user matches.')));
      cursor = body.nextCursor || null;
      more.hidden = !cursor;
    } catch (e) { showError(error, e); }
  }
  const form = h('form', { class: 'card row', role: 'search' }, field('Find a user', q), h('button', { type: 'submit', class: 'primary' }, 'Search'));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  more.addEventListener('click', () => load(false));
  await load(true);
  return page('Users', form, error,
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Email', 'Role', 'Verified', 'State', 'Created', ''].map((t) => h('th', { scope: 'col' }, t)))), rows)),
    more);
}

export async function audit(_params, ctx) {
  const userId = h('input', { type: 'text', name: 'userId', placeholder: 'user id (UUID)', value: ctx.query.get('userId') || '' });
  const type = h('input', { type: 'text', name: 'type', placeholder: 'e.g. login, gpt.asked', value: ctx.query.get('type') || '' });
  const from = h('input', { type: 'datetime-local', name: 'from' });
  const to = h('input', { type: 'datetime-local', name: 'to' });
  const rows = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const error = errorLine();
  let cursor = null;

  async function load(reset) {
    error.hidden = true;
    if (reset) { cursor = null; rows.replaceChildren(); }
    const params = new URLSearchParams({ limit: '50' });
    if (userId.value.trim()) params.set('userId', userId.value.trim());
    if (type.value.trim()) params.set('type', type.value.trim());
    if (from.value) params.set('from', new Date(from.value).toISOString());
    if (to.value) params.set('to', new Date(to.value).toISOString());
    if (cursor) params.set('cursor', cursor);
    try {
      const body = await api(`/api/admin/audit?${params}`);
      rows.append(...body.items.map((e) => h('tr', {},
        h('td', {}, fmtDate(e.at)), h('td', {}, e.type), h('td', { class: 'mono' }, e.userId || '—'), h('td', { class: 'mono' }, e.actorId || '—'),
        h('td', {}, e.ip || '—'),
        h('td', { class: 'attrs' }, Object.entries(e.attributes || {}).map(([k, v]) => h('span', { class: 'attr' }, `${k}=${v}`))))));
      if (!rows.children.length) rows.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No events match.')));
      cursor = body.nextCursor || null;
      more.hidden = !cursor;
    } catch (e) { showError(error, e); }
  }
  const form = h('form', { class: 'card filters' }, field('User', userId), field('Type', type), field('From', from), field('To', to),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  more.addEventListener('click', () => load(false));
  await load(true);
  return page('Audit log', form, error,
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Type', 'User', 'Actor', 'Address', 'Attributes'].map((t) => h('th', { scope: 'col' }, t)))), rows)),
    more);
}
