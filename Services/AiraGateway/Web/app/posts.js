// Posts: browse (newest or most liked, by tag, with page numbers), search (snippets with the
// matched words marked, "Load more" over nextCursor), write, read, like, edit and delete.
// State lives in the hash: #/posts?q=&sort=&tag=&page=.
import { APIError, api, currentUser } from './api.js';
import { action, errorLine, field, fmtDate, h, page, showError, toast } from './ui.js';

const PAGE_SIZE = 20;

function href(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '' && v !== 1) q.set(k, v);
  const text = q.toString();
  return '#/posts' + (text ? '?' + text : '');
}

function tagLinks(tags) {
  return tags.length ? h('span', { class: 'tags' }, tags.map((t) => h('a', { href: href({ tag: t }), class: 'tag' }, '#' + t))) : null;
}

function postCard(p) {
  return h('li', { class: 'card post', dataset: { post: p.id } },
    h('h3', {}, h('a', { href: `#/posts/${p.id}` }, p.title)),
    h('p', {}, p.excerpt),
    h('p', { class: 'muted' }, `${p.likes} like(s) · ${fmtDate(p.createdAt)} `, tagLinks(p.tags)));
}

/** A search hit: its snippet as text runs, the matched words in <mark> (never HTML from the server). */
function hitCard(p) {
  return h('li', { class: 'card post', dataset: { post: p.id } },
    h('h3', {}, h('a', { href: `#/posts/${p.id}` }, p.title)),
    h('p', { class: 'snippet' }, p.snippet.map((s) => (s.match ? h('mark', {}, s.text) : s.text))),
    h('p', { class: 'muted' }, `${p.likes} like(s) · ${fmtDate(p.createdAt)} `, tagLinks(p.tags)));
}

/** Page links around the current one: 1 … n-2 n-1 [n] n+1 n+2 … last. */
function pager(current, pages, params) {
  if (pages <= 1) return null;
  const wanted = new Set([1, pages, current - 2, current - 1, current, current + 1, current + 2].filter((n) => n >= 1 && n <= pages));
  const items = [];
  let last = 0;
  for (const n of [...wanted].sort((a, b) => a - b)) {
    if (n > last + 1) items.push(h('li', { class: 'muted' }, '…'));
    items.push(h('li', {}, n === current ? h('span', { 'aria-current': 'page' }, String(n))
      : h('a', { href: href({ ...params, page: n }), 'aria-label': `Page ${n}` }, String(n))));
    last = n;
  }
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, h('ul', {}, items));
}

export async function list(_params, ctx) {
  const user = currentUser();
  const keyword = (ctx.query.get('q') || '').trim();
  const sort = ctx.query.get('sort') || (keyword ? 'relevance' : 'newest');
  const tag = ctx.query.get('tag') || '';
  const pageNumber = Math.max(1, parseInt(ctx.query.get('page') || '1', 10) || 1);

  const input = h('input', { type: 'search', value: keyword, maxlength: 200, placeholder: 'Words, in any language' });
  const order = h('select', {},
    ...(keyword ? [['relevance', 'Best match'], ['newest', 'Newest']] : [['newest', 'Newest'], ['liked', 'Most liked']])
      .map(([v, label]) => h('option', { value: v, selected: v === sort ? true : null }, label)));
  const search = h('form', { class: 'card row search', role: 'search' }, field('Search posts', input), field('Order', order),
    h('button', { type: 'submit', class: 'primary' }, 'Search'));
  search.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = input.value.trim();
    location.hash = href({ q, tag, sort: q ? (order.value === 'liked' ? 'relevance' : order.value) : (order.value === 'relevance' ? 'newest' : order.value) });
  });
  order.addEventListener('change', () => search.requestSubmit());

  const children = [search];
  if (tag) children.push(h('p', {}, 'Posts tagged ', h('strong', {}, '#' + tag), ' · ', h('a', { href: href({ q: keyword, sort }) }, 'all posts')));

  if (keyword) {
    const q = new URLSearchParams({ keyword, sort, limit: String(PAGE_SIZE) });
    if (tag) q.set('tag', tag);
    const items = h('ul', { class: 'cards' });
    const more = h('button', { type: 'button', hidden: true }, 'Load more');
    let cursor = null;
    let matched = 'words';
    const load = async () => {
      const body = await api(`/api/search?${q}` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''));
      if (!cursor) matched = body.matched;
      items.append(...body.items.map(hitCard));
      if (!items.children.length) items.append(h('li', { class: 'muted' }, 'No post matches these words.'));
      cursor = body.nextCursor || null;
      more.hidden = !cursor;
    };
    more.addEventListener('click', async () => {
      more.disabled = true;
      try { await load(); } catch (e) { toast(e.message, 'error'); } finally { more.disabled = false; }
    });
    await load();
    children.push(h('h2', {}, matched === 'similar' && items.querySelector('li.post') ? `No post has these words; titles like “${keyword}”` : `Results for “${keyword}”`),
      items, more);
  } else {
    const q = new URLSearchParams({ sort, limit: String(PAGE_SIZE), page: String(pageNumber) });
    if (tag) q.set('tag', tag);
    const body = await api(`/api/posts?${q}`);
    const items = h('ul', { class: 'cards' }, body.items.length ? body.items.map(postCard) : h('li', { class: 'muted' }, 'No posts here yet.'));
    children.push(h('h2', {}, `${body.total ?? 0} post(s)${body.pages > 1 ? ` · page ${pageNumber} of ${body.pages}` : ''}`), items,
      pager(pageNumber, body.pages || 1, { sort, tag }));
  }

  if (user) {
    const titleInput = h('input', { type: 'text', required: true, maxlength: 200 });
    const text = h('textarea', { rows: 5, required: true, maxlength: 20000 });
    const tags = h('input', { type: 'text', placeholder: 'travel, seoul' });
    const error = errorLine();
    const form = h('form', { class: 'card' }, h('h2', {}, 'Write a post'), field('Title', titleInput), field('Text', text),
      field('Tags', tags, 'Up to 8, separated by commas'), error, h('button', { type: 'submit', class: 'primary' }, 'Publish'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        const p = await api('/api/posts', { method: 'POST', body: { title: titleInput.value, body: text.value, tags: splitTags(tags.value) } });
        toast('Published');
        ctx.go(`posts/${p.id}`);
      } catch (err) { showError(error, err); }
    });
    children.push(form);
  }
  return page('Posts', ...children);
}

function splitTags(text) { return text.split(',').map((t) => t.trim()).filter(Boolean); }

export async function detail(params, ctx) {
  const user = currentUser();
  let p;
  try {
    p = await api(`/api/posts/${encodeURIComponent(params.id)}`);
  } catch (e) {
    if (e instanceof APIError && e.status === 404) return page('Post not found', h('p', {}, 'It does not exist, or it was deleted.'), h('a', { href: '#/posts' }, 'All posts'));
    throw e;
  }
  const mine = !!user && String(user.id).toLowerCase() === String(p.authorId).toLowerCase();
  const likes = h('span', { class: 'likes' }, `${p.likes} like(s)`);
  let liked = !!p.liked;
  const parts = [
    h('p', { class: 'muted' }, `${fmtDate(p.createdAt)}${p.updatedAt !== p.createdAt ? ` · edited ${fmtDate(p.updatedAt)}` : ''} · `, likes, ' ', tagLinks(p.tags)),
    h('div', { class: 'post-body' }, p.body),
  ];
  if (user) {
    const like = action(liked ? 'Unlike' : 'Like', async (b) => {
      const r = await api(`/api/posts/${p.id}/like`, { method: liked ? 'DELETE' : 'PUT' });
      liked = r.liked;
      likes.textContent = `${r.likes} like(s)`;
      b.textContent = liked ? 'Unlike' : 'Like';
      b.setAttribute('aria-pressed', String(liked));
    }, { 'aria-pressed': String(liked) });
    parts.push(h('p', { class: 'row' }, like));
  }
  if (mine) {
    const titleInput = h('input', { type: 'text', value: p.title, required: true, maxlength: 200 });
    const text = h('textarea', { rows: 6, required: true, maxlength: 20000 }, p.body);
    const tags = h('input', { type: 'text', value: p.tags.join(', ') });
    const error = errorLine();
    const form = h('form', { class: 'card' }, h('h2', {}, 'Edit'), field('Title', titleInput), field('Text', text), field('Tags', tags), error,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Save')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        await api(`/api/posts/${p.id}`, { method: 'PATCH', body: { title: titleInput.value, body: text.value, tags: splitTags(tags.value) } });
        toast('Saved');
        await ctx.rerender();
      } catch (err) { showError(error, err); }
    });
    parts.push(form);
  }
  if (mine || (user && user.role === 'ADMIN')) {
    parts.push(h('p', {}, action('Delete post', async () => {
      if (!confirm(`Delete the post "${p.title}"?`)) return;
      await api(`/api/posts/${p.id}`, { method: 'DELETE' });
      toast('Post deleted');
      ctx.go('posts');
    }, { class: 'danger' })));
  }
  parts.push(h('p', {}, h('a', { href: '#/posts' }, 'All posts')));
  return page(p.title, ...parts);
}
