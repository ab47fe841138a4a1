// Chat: answers streamed over /v1/chat/completions (stream: true) and rendered piece by piece
// as sanitised Markdown; Stop aborts the stream; conversations kept by the proxy
// (X-Aira-Conversation) and listed, opened, renamed and deleted through /api/gpt/conversations.
import { APIError, api, authHeaders, parseResponse } from './api.js';
import { action, errorLine, fmtDate, fmtDuration, h, highlight, markdown, page, showError, toast } from './ui.js';

function newID() {
  return crypto.randomUUID ? crypto.randomUUID() : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Reads a server-sent-events body and calls onEvent with each `data:` JSON (until [DONE]). */
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

export async function chat(params, ctx) {
  let conversationId = params.id || null;
  let controller = null;
  let countdown = null;
  ctx.onLeave(() => { controller?.abort(); clearInterval(countdown); });

  const list = h('ul', { class: 'conversations', 'aria-label': 'Conversations' });
  const log = h('div', { class: 'messages', 'aria-live': 'polite', 'aria-label': 'Messages' });
  const quota = h('div', { class: 'quota', 'aria-live': 'polite' });
  const question = h('textarea', { rows: 3, name: 'question', required: true, placeholder: 'Ask anything… (Enter sends, Shift+Enter for a new line)' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const stop = h('button', { type: 'button', class: 'danger', hidden: true }, 'Stop');
  const error = errorLine();
  const title = h('h2', { class: 'conversation-title' }, 'New chat');

  function bubble(role, text) {
    const body = h('div', { class: 'content' });
    if (role === 'assistant') { markdown(body, text); highlight(body); } else body.textContent = text;
    const node = h('article', { class: `msg ${role}` }, h('header', {}, role === 'user' ? 'You' : 'Aira'), body);
    log.append(node);
    return { node, body };
  }

  function showQuota(q) {
    if (!q) return;
    const pct = Math.min(100, Math.round((100 * q.used) / Math.max(1, q.limit)));
    quota.replaceChildren(
      h('label', { for: 'quota-meter' }, `Questions today: ${q.used}/${q.limit}`),
      h('meter', { id: 'quota-meter', min: 0, max: q.limit, value: q.used, high: q.limit * 0.8, optimum: 0 }, `${pct}%`),
      h('span', { class: 'muted' }, ` resets ${fmtDate(q.resetAt)}`));
  }

  function quotaExceeded(err) {
    const reset = new Date(err.details.resetAt || Date.now() + 60_000);
    clearInterval(countdown);
    const line = h('p', { class: 'error', role: 'alert' });
    const tick = () => {
      const left = (reset - Date.now()) / 1000;
      line.textContent = left > 0 ? `Daily question quota used up (${err.details.limit || '?'} a day). It resets in ${fmtDuration(left)}.` : 'The quota has reset: ask again.';
      if (left <= 0) clearInterval(countdown);
    };
    tick();
    countdown = setInterval(tick, 1000);
    quota.replaceChildren(line);
  }

  async function loadList() {
    try {
      const body = await api('/api/gpt/conversations');
      list.replaceChildren(...body.items.map((c) => h('li', { class: c.id === conversationId ? 'current' : '' },
        h('a', { href: `#/chat/${encodeURIComponent(c.id)}`, 'aria-current': c.id === conversationId ? 'page' : null }, c.title),
        h('small', { class: 'muted' }, ` ${fmtDate(c.updatedAt)}`))));
      if (!body.items.length) list.replaceChildren(h('li', { class: 'muted' }, 'No conversations yet.'));
    } catch (e) { list.replaceChildren(h('li', { class: 'error' }, e.message)); }
  }

  async function open(id) {
    log.replaceChildren();
    if (!id) { title.textContent = 'New chat'; return; }
    try {
      const c = await api(`/api/gpt/conversations/${encodeURIComponent(id)}`);
      title.textContent = c.title;
      for (const m of c.messages) bubble(m.role, m.content);
    } catch (e) {
      if (e instanceof APIError && e.status === 404) { title.textContent = 'New chat'; return; }
      throw e;
    }
  }

  async function ask(text) {
    error.hidden = true;
    const first = !conversationId;
    if (!conversationId) conversationId = newID();
    bubble('user', text);
    const answer = bubble('assistant', '');
    answer.node.classList.add('streaming');
    const badge = h('span', { class: 'badge', hidden: true }, 'cached');
    answer.node.querySelector('header').append(' ', badge);
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    let text_ = '';
    let finished = false;
    try {
      const response = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: { ...(await authHeaders()), 'Content-Type': 'application/json', 'X-Aira-Conversation': conversationId },
        body: JSON.stringify({ messages: [{ role: 'user', content: text }], stream: true }),
        signal: controller.signal,
      });
      if (!response.ok) await parseResponse(response);
      await readEvents(response, (event) => {
        if (event.error) throw new APIError(502, event.error.code, event.error.message, event.error.details);
        const piece = event.choices?.[0]?.delta?.content;
        if (piece) { text_ += piece; markdown(answer.body, text_); log.scrollTop = log.scrollHeight; }
        if (event.aira) {
          badge.hidden = !event.aira.cached;
          answer.node.dataset.cached = String(event.aira.cached);
          showQuota(event.aira.quota);
        }
        if (event.choices?.[0]?.finish_reason) finished = true;
      });
      if (!finished) throw new Error('the answer was cut off');
      highlight(answer.body);
      answer.node.dataset.done = '1';
      if (first) {
        // The address names the conversation now, without drawing the page again.
        history.replaceState(null, '', `#/chat/${encodeURIComponent(conversationId)}`);
        document.getElementById('main').dataset.page = `chat/${conversationId}`;
      }
      await loadList();
      if (first) title.textContent = (await api(`/api/gpt/conversations/${encodeURIComponent(conversationId)}`).catch(() => ({ title: 'New chat' }))).title;
    } catch (e) {
      highlight(answer.body);
      if (e.name === 'AbortError') {
        answer.node.dataset.stopped = '1';
        answer.body.append(h('p', { class: 'muted' }, '(stopped)'));
      } else if (e instanceof APIError && e.code === 'quota_exceeded') {
        answer.node.remove();
        quotaExceeded(e);
      } else {
        answer.node.classList.add('failed');
        showError(error, e);
      }
      if (first && !text_) conversationId = null;
    } finally {
      answer.node.classList.remove('streaming');
      controller = null;
      send.disabled = false;
      stop.hidden = true;
    }
  }

  const form = h('form', { class: 'composer' }, h('label', { for: 'question', class: 'visually-hidden' }, 'Your question'), question,
    h('div', { class: 'row' }, send, stop), error);
  question.id = 'question';
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = question.value.trim();
    if (!text || controller) return;
    question.value = '';
    ask(text);
  });
  question.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  stop.addEventListener('click', () => controller?.abort());

  const tools = h('div', { class: 'row' },
    h('a', { href: '#/chat', class: 'button' }, 'New chat'),
    action('Rename', async () => {
      if (!conversationId) return toast('Ask something first: a new chat has no name yet');
      const name = prompt('New name for this conversation', title.textContent);
      if (!name || !name.trim()) return;
      const renamed = await api(`/api/gpt/conversations/${encodeURIComponent(conversationId)}`, { method: 'PATCH', body: { title: name.trim() } });
      title.textContent = renamed.title;
      await loadList();
    }),
    action('Delete', async () => {
      if (!conversationId) return;
      if (!confirm('Delete this conversation and its messages?')) return;
      await api(`/api/gpt/conversations/${encodeURIComponent(conversationId)}`, { method: 'DELETE' });
      toast('Conversation deleted');
      ctx.go('chat');
    }, { class: 'danger' }));

  await Promise.all([loadList(), open(conversationId), api('/api/gpt/quota').then((q) => showQuota(q)).catch(() => {})]);
  return page('Chat',
    h('div', { class: 'chat' },
      h('aside', { class: 'card' }, h('h2', {}, 'Conversations'), list),
      h('div', { class: 'card chat-main' }, h('div', { class: 'chat-head' }, title, tools), quota, log, form)));
}
