// Small DOM helpers: every element is built with textContent (never innerHTML with data), so
// nothing a user or a model wrote is ever parsed as HTML here. The one place that renders
// HTML from text is markdown(), and it goes through DOMPurify.

/** h('button', {class: 'x', onclick: fn}, 'text', child…) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Through the CSSOM: the page's CSP forbids style attributes, not styles set by script.
    else if (k === 'style') el.style.cssText = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let fieldCounter = 0;
/** A labelled form control: label + input (or select/textarea given as `control`). */
export function field(label, control, hint) {
  const id = control.id || `f${++fieldCounter}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'muted' }, hint) : null);
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toast');
  const item = h('div', { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** Shows an API error in a form's error line (role=alert) and returns it. */
export function showError(where, error) {
  where.textContent = error && error.message ? error.message : String(error);
  where.hidden = false;
  return error;
}

export function errorLine() { return h('p', { class: 'error', role: 'alert', hidden: true }); }

export function fmtDate(value) {
  if (!value) return '—';
  const d = new Date(value);
  return isNaN(d) ? String(value) : d.toLocaleString();
}

export function fmtDuration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const hh = Math.floor(seconds / 3600), mm = Math.floor((seconds % 3600) / 60), ss = seconds % 60;
  return hh ? `${hh}h ${String(mm).padStart(2, '0')}m` : mm ? `${mm}m ${String(ss).padStart(2, '0')}s` : `${ss}s`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}

const escapes = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHTML = (s) => String(s).replace(/[&<>"']/g, (c) => escapes[c]);
let markedReady = false;

/**
 * Markdown → HTML in `el`. Raw HTML in the text (a model's answer is untrusted) is shown as
 * text, never parsed; DOMPurify then cleans what Markdown itself made (e.g. `javascript:`
 * links). Two layers, and the page's CSP behind them.
 */
export function markdown(el, text) {
  if (!window.marked) { el.textContent = text; return; }
  if (!markedReady) {
    window.marked.use({ renderer: { html: (html) => escapeHTML(typeof html === 'string' ? html : html.text) } });
    markedReady = true;
  }
  const html = window.marked.parse(text, { mangle: false, headerIds: false });
  const clean = window.DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
  el.innerHTML = clean;
  for (const a of el.querySelectorAll('a[href]')) { a.target = '_blank'; a.rel = 'noopener noreferrer'; }
}

export function highlight(el) {
  if (!window.hljs) return;
  for (const block of el.querySelectorAll('pre code')) {
    (window.hljs.highlightElement || window.hljs.highlightBlock).call(window.hljs, block);
  }
}

/** A button that runs an async action, disabled while it runs. */
export function action(label, fn, attrs = {}) {
  const b = h('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await fn(b); } catch (e) { toast(e.message || String(e), 'error'); } finally { b.disabled = false; }
  });
  return b;
}

export function table(headers, rows, caption) {
  return h('div', { class: 'table-wrap' },
    h('table', {}, caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

export function page(title, ...children) {
  document.title = `${title} · Aira`;
  return h('section', { class: 'page' }, h('h1', {}, title), ...children);
}
