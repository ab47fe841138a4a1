// Videos: upload with a progress bar (XMLHttpRequest: fetch has no upload progress), then the
// status from `processing` to the thumbnail when `ready`, or the reason when `failed`; play
// (the file itself, counted as a play) and like.
import { APIError, api, authHeaders, currentUser } from './api.js';
import { action, errorLine, field, fmtBytes, fmtDate, h, page, showError, toast } from './ui.js';
import { pagedList } from './playlists.js';

function upload(file, title, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/videos?title=${encodeURIComponent(title)}`);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new APIError(xhr.status, body?.error?.code || 'upload_failed', body?.error?.message || `upload failed (${xhr.status})`));
    });
    xhr.addEventListener('error', () => reject(new Error('the upload was interrupted')));
    xhr.send(file);
  });
}

function status(v) {
  if (v.status === 'ready') return h('span', { class: 'badge ok' }, 'ready');
  if (v.status === 'failed') return h('span', { class: 'badge bad' }, 'failed');
  return h('span', { class: 'badge' }, 'processing');
}

function videoCard(v) {
  return h('li', { class: 'card video', dataset: { video: v.id, status: v.status } },
    v.thumbnailUrl ? h('img', { src: v.thumbnailUrl, alt: `Thumbnail of ${v.title}`, width: 160 }) : h('div', { class: 'thumb-placeholder' }, v.status),
    h('div', {}, h('h3', {}, h('a', { href: `#/videos/${v.id}` }, v.title)), status(v),
      v.failureReason ? h('p', { class: 'error' }, v.failureReason) : null,
      h('p', { class: 'muted' }, `${fmtBytes(v.sizeBytes)} · ${v.plays} plays · ${v.likes} likes · ${fmtDate(v.createdAt)}`)));
}

export async function mine(_params, ctx) {
  const list = pagedList('/api/videos?owner=me&limit=12', videoCard, 'No videos yet: upload one.');
  await list.load(true);
  const file = h('input', { type: 'file', accept: 'video/*,image/*', required: true });
  const title = h('input', { type: 'text', required: true, maxlength: 200 });
  const progress = h('progress', { max: 100, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const progressText = h('span', { class: 'muted', 'aria-live': 'polite' });
  const error = errorLine();
  const form = h('form', { class: 'card' }, h('h2', {}, 'Upload'), field('File', file, 'A video or an image; a thumbnail is made after the upload.'),
    field('Title', title), h('div', { class: 'row' }, progress, progressText), error, h('button', { type: 'submit', class: 'primary' }, 'Upload'));
  file.addEventListener('change', () => { if (!title.value && file.files[0]) title.value = file.files[0].name.replace(/\.[^.]+$/, ''); });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    const chosen = file.files[0];
    if (!chosen) return;
    progress.hidden = false;
    form.querySelector('button[type=submit]').disabled = true;
    try {
      const video = await upload(chosen, title.value, await authHeaders(), (loaded, total) => {
        progress.value = Math.round((100 * loaded) / total);
        progressText.textContent = `${progress.value}% of ${fmtBytes(total)}`;
      });
      progressText.textContent = 'Uploaded: making the thumbnail…';
      ctx.go(`videos/${video.id}`);
    } catch (err) {
      showError(error, err);
    } finally {
      form.querySelector('button[type=submit]').disabled = false;
    }
  });
  return page('Your videos', form, h('h2', {}, 'Uploaded'), list.node);
}

export async function detail(params, ctx) {
  let v;
  try {
    v = await api(`/api/videos/${encodeURIComponent(params.id)}`);
  } catch (e) {
    if (e instanceof APIError && e.status === 404) return page('Video not found', h('p', {}, 'There is no such video.'));
    throw e;
  }
  const user = currentUser();
  const state = h('div', { class: 'video-state', 'aria-live': 'polite' });
  const counts = h('p', { class: 'muted counts' });
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  function showCounts() { counts.textContent = `${v.plays} plays · ${v.likes} likes`; }
  function render() {
    showCounts();
    if (v.status === 'processing') {
      state.replaceChildren(h('p', { dataset: { status: 'processing' } }, status(v), ' Making the thumbnail…'));
      timer = setTimeout(poll, 1000);
    } else if (v.status === 'failed') {
      state.replaceChildren(h('p', { dataset: { status: 'failed' }, role: 'alert' }, status(v), ` ${v.failureReason || 'processing failed'}`));
    } else {
      const isImage = v.mediaType.startsWith('image/');
      const player = isImage
        ? h('img', { src: `/api/videos/${v.id}/media`, alt: v.title, class: 'player' })
        : h('video', { src: `/api/videos/${v.id}/media`, controls: true, preload: 'metadata', poster: v.thumbnailUrl, class: 'player' });
      if (!isImage) player.addEventListener('play', countPlay, { once: true });
      state.replaceChildren(h('div', { dataset: { status: 'ready' } },
        h('img', { src: v.thumbnailUrl, alt: `Thumbnail of ${v.title}`, class: 'thumbnail', width: 320 }), player));
    }
  }
  async function poll() {
    try { v = await api(`/api/videos/${v.id}`); render(); } catch { timer = setTimeout(poll, 3000); }
  }
  async function countPlay() {
    const r = await api(`/api/videos/${v.id}/play`, { method: 'POST' });
    v.plays = r.plays;
    showCounts();
  }
  render();
  const controls = h('div', { class: 'row' },
    action('Play', async () => {
      const player = state.querySelector('video');
      if (player) await player.play().catch(() => {}); else await countPlay();
    }),
    user ? action('Like', async () => { const r = await api(`/api/videos/${v.id}/like`, { method: 'PUT' }); v.likes = r.likes; showCounts(); toast('Liked'); }) : null,
    user ? action('Unlike', async () => { const r = await api(`/api/videos/${v.id}/like`, { method: 'DELETE' }); v.likes = r.likes; showCounts(); }) : null);
  return page(v.title, state, counts, controls,
    h('p', { class: 'muted' }, `${v.mediaType} · ${fmtBytes(v.sizeBytes)} · uploaded ${fmtDate(v.createdAt)}`));
}
