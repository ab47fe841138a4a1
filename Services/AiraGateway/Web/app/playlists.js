// Playlists: public ones for everyone, the user's own (private too); create, edit, make
// public/private, delete, add and remove videos; "Load more" follows nextCursor.
import { APIError, api, currentUser } from './api.js';
import { action, errorLine, field, fmtDate, h, page, showError, toast } from './ui.js';

/** A list that pages with nextCursor: returns [container, loadMoreButton, reload]. */
export function pagedList(url, renderItem, empty) {
  const items = h('ul', { class: 'cards' });
  let cursor = null;
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  async function load(reset) {
    if (reset) { cursor = null; items.replaceChildren(); }
    const sep = url.includes('?') ? '&' : '?';
    const body = await api(url + (cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''));
    items.append(...body.items.map(renderItem));
    if (!items.children.length) items.append(h('li', { class: 'muted' }, empty));
    cursor = body.nextCursor || null;
    more.hidden = !cursor;
  }
  more.addEventListener('click', async () => {
    more.disabled = true;
    try { await load(false); } catch (e) { toast(e.message, 'error'); } finally { more.disabled = false; }
  });
  return { node: h('div', {}, items, more), load };
}

function playlistCard(p) {
  return h('li', { class: 'card playlist' },
    h('h3', {}, h('a', { href: `#/playlists/${p.id}` }, p.title)),
    p.description ? h('p', {}, p.description) : null,
    h('p', { class: 'muted' }, `${p.videoCount} video(s) · ${p.public ? 'public' : 'private'} · ${fmtDate(p.createdAt)}`));
}

export async function home() {
  const user = currentUser();
  const publicLists = pagedList('/api/playlists?limit=12', playlistCard, 'No public playlists yet.');
  await publicLists.load(true);
  return page('Aira',
    h('p', { class: 'lead' }, 'Ask questions, keep playlists of your videos, and see what your activity says about you.'),
    user ? h('p', {}, h('a', { href: '#/chat', class: 'button primary' }, 'Open chat'))
      : h('p', { class: 'row' }, h('a', { href: '#/signup', class: 'button primary' }, 'Sign up'), h('a', { href: '#/login', class: 'button' }, 'Log in')),
    h('h2', {}, 'Public playlists'), publicLists.node);
}

export async function list(_params, ctx) {
  const user = currentUser();
  const tab = user && ctx.query.get('tab') !== 'public' ? 'mine' : 'public';
  const lists = pagedList(tab === 'mine' ? '/api/playlists?owner=me&limit=10' : '/api/playlists?limit=10', playlistCard,
    tab === 'mine' ? 'You have no playlists yet.' : 'No public playlists yet.');
  await lists.load(true);
  const children = [];
  if (user) {
    children.push(h('div', { class: 'tabs', role: 'tablist' },
      h('a', { href: '#/playlists?tab=mine', role: 'tab', 'aria-selected': String(tab === 'mine') }, 'Mine'),
      h('a', { href: '#/playlists?tab=public', role: 'tab', 'aria-selected': String(tab === 'public') }, 'Public')));
    const titleInput = h('input', { type: 'text', required: true, maxlength: 200 });
    const description = h('textarea', { rows: 2, maxlength: 2000 });
    const isPublic = h('input', { type: 'checkbox' });
    const error = errorLine();
    const form = h('form', { class: 'card' }, h('h2', {}, 'New playlist'), field('Title', titleInput), field('Description', description),
      h('div', { class: 'check' }, isPublic, h('label', { for: isPublic.id = 'new-public' }, 'Public (anyone can see it)')), error,
      h('button', { type: 'submit', class: 'primary' }, 'Create playlist'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        const p = await api('/api/playlists', { method: 'POST', body: { title: titleInput.value, description: description.value || undefined, public: isPublic.checked } });
        ctx.go(`playlists/${p.id}`);
      } catch (err) { showError(error, err); }
    });
    children.push(form);
  }
  return page('Playlists', ...children, h('h2', {}, tab === 'mine' ? 'My playlists' : 'Public playlists'), lists.node);
}

export async function detail(params, ctx) {
  const user = currentUser();
  let p;
  try {
    p = await api(`/api/playlists/${encodeURIComponent(params.id)}`);
  } catch (e) {
    if (e instanceof APIError && e.status === 404) return page('Playlist not found', h('p', {}, 'It does not exist, or it is private.'));
    throw e;
  }
  const mine = !!user && String(user.id).toLowerCase() === String(p.ownerId).toLowerCase();
  const videos = pagedList(`/api/playlists/${p.id}/videos?limit=20`, (item) => {
    const v = item.video;
    return h('li', { class: 'card video', dataset: { video: v.id } },
      v.thumbnailUrl ? h('img', { src: v.thumbnailUrl, alt: `Thumbnail of ${v.title}`, width: 160 }) : h('div', { class: 'thumb-placeholder' }, v.status),
      h('div', {}, h('h3', {}, h('a', { href: `#/videos/${v.id}` }, v.title)), h('p', { class: 'muted' }, `${v.plays} plays · ${v.likes} likes`)),
      mine ? action('Remove', async () => {
        await api(`/api/playlists/${p.id}/videos/${v.id}`, { method: 'DELETE' });
        toast('Removed from the playlist');
        await ctx.rerender();
      }, { 'aria-label': `Remove ${v.title} from the playlist` }) : null);
  }, 'No videos in this playlist yet.');
  await videos.load(true);

  const parts = [h('p', { class: 'muted' }, `${p.public ? 'Public' : 'Private'} · ${p.videoCount} video(s) · updated ${fmtDate(p.updatedAt)}`)];
  if (p.description) parts.push(h('p', {}, p.description));
  if (mine) {
    const titleInput = h('input', { type: 'text', value: p.title, required: true, maxlength: 200 });
    const description = h('textarea', { rows: 2, maxlength: 2000 }, p.description || '');
    const isPublic = h('input', { type: 'checkbox', checked: p.public, id: 'edit-public' });
    const error = errorLine();
    const form = h('form', { class: 'card' }, h('h2', {}, 'Edit'), field('Title', titleInput), field('Description', description),
      h('div', { class: 'check' }, isPublic, h('label', { for: 'edit-public' }, 'Public (anyone can see it)')), error,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Save'),
        action('Delete playlist', async () => {
          if (!confirm(`Delete the playlist "${p.title}"?`)) return;
          await api(`/api/playlists/${p.id}`, { method: 'DELETE' });
          toast('Playlist deleted');
          ctx.go('playlists');
        }, { class: 'danger' })));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        await api(`/api/playlists/${p.id}`, { method: 'PATCH', body: { title: titleInput.value, description: description.value, public: isPublic.checked } });
        toast('Saved');
        await ctx.rerender();
      } catch (err) { showError(error, err); }
    });
    parts.push(form);

    const mineVideos = await api('/api/videos?owner=me&limit=100');
    const select = h('select', { id: 'add-video' }, h('option', { value: '' }, mineVideos.items.length ? 'Choose one of your videos' : 'Upload a video first'),
      ...mineVideos.items.map((v) => h('option', { value: v.id }, `${v.title} (${v.status})`)));
    const add = h('form', { class: 'card row' }, h('label', { for: 'add-video' }, 'Add a video'), select, h('button', { type: 'submit' }, 'Add'));
    add.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!select.value) return;
      try {
        await api(`/api/playlists/${p.id}/videos/${select.value}`, { method: 'PUT' });
        toast('Added to the playlist');
        await ctx.rerender();
      } catch (err) { toast(err.message, 'error'); }
    });
    parts.push(add);
  }
  return page(p.title, ...parts, h('h2', {}, 'Videos'), videos.node);
}
