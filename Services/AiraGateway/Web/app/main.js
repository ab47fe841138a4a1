// The web app's shell: a hash router (#/chat, #/playlists/ID, …), the navigation for the
// three kinds of user, and the session's lifecycle.
import { currentUser, logout, onSessionChange, restore } from './api.js';
import { h, toast } from './ui.js';
import * as account from './account.js';
import * as chat from './chat.js';
import * as playlists from './playlists.js';
import * as posts from './posts.js';
import * as videos from './videos.js';
import * as insights from './insights.js';
import * as admin from './admin.js';
import * as ops from './ops.js';

const routes = [
  ['', playlists.home, {}],
  ['login', account.login, { anonymousOnly: true }],
  ['signup', account.signup, { anonymousOnly: true }],
  ['verify', account.verify, {}],
  ['account', account.account, { user: true }],
  ['chat', chat.chat, { user: true }],
  ['chat/:id', chat.chat, { user: true }],
  ['posts', posts.list, {}],
  ['posts/:id', posts.detail, {}],
  ['playlists', playlists.list, {}],
  ['playlists/:id', playlists.detail, {}],
  ['videos', videos.mine, { user: true }],
  ['videos/:id', videos.detail, {}],
  ['insights', insights.insights, { user: true }],
  ['admin/users', admin.users, { admin: true }],
  ['admin/audit', admin.audit, { admin: true }],
  ['ops/queues', ops.queues, { admin: true }],
  ['ops/dlq', ops.deadLetterQueues, { admin: true }],
  ['ops/dlq/:queue', ops.deadLetters, { admin: true }],
  ['ops/analysis', ops.analysis, { admin: true }],
];

let leaving = [];
let drawing = 0; // the newest navigation: a slower, older one never draws over it
const main = document.getElementById('main');

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const [pattern, render, rules] of routes) {
    const want = pattern.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    if (want.every((w, i) => (w.startsWith(':') ? ((params[w.slice(1)] = decodeURIComponent(parts[i])), true) : w === parts[i]))) {
      return { render, rules, params };
    }
  }
  return null;
}

export function go(path) { location.hash = '#/' + path.replace(/^\/+/, ''); }

async function show() {
  const mine = ++drawing;
  for (const fn of leaving) { try { fn(); } catch { /* a page's own cleanup */ } }
  leaving = [];
  delete main.dataset.page;
  const [path, queryText] = location.hash.replace(/^#\/?/, '').split('?');
  const query = new URLSearchParams(queryText || '');
  const found = match(path);
  const user = currentUser();
  renderNav();
  if (!found) { main.replaceChildren(h('section', { class: 'page' }, h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. '), h('a', { href: '#/' }, 'Home'))); return; }
  if ((found.rules.user || found.rules.admin) && !user) { go('login?next=' + encodeURIComponent(path)); return; }
  if (found.rules.admin && user.role !== 'ADMIN') {
    main.replaceChildren(h('section', { class: 'page' }, h('h1', {}, 'Admins only'), h('p', {}, 'This page is for accounts with the ADMIN role.')));
    return;
  }
  if (found.rules.anonymousOnly && user) { go(query.get('next') || 'chat'); return; }
  const cleanups = [];
  const ctx = { query, go, onLeave: (fn) => cleanups.push(fn), rerender: show };
  try {
    const node = await found.render(found.params, ctx);
    if (mine !== drawing) { for (const fn of cleanups) fn(); return; }
    leaving = cleanups;
    main.replaceChildren(node);
    main.dataset.page = path; // drawn: what tests (and screen readers' focus) wait for
    const heading = main.querySelector('h1');
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  } catch (e) {
    for (const fn of cleanups) fn();
    if (mine !== drawing) return;
    main.replaceChildren(h('section', { class: 'page' }, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, e.message || String(e))));
  }
}

function link(path, label) {
  const current = location.hash.replace(/^#\/?/, '').split('?')[0];
  const active = current === path || (path && current.startsWith(path + '/'));
  return h('a', { href: '#/' + path, 'aria-current': active ? 'page' : null }, label);
}

function renderNav() {
  const nav = document.getElementById('nav');
  const user = currentUser();
  const items = [link('posts', 'Posts'), link('playlists', 'Playlists')];
  if (user) {
    items.unshift(link('chat', 'Chat'));
    items.push(link('videos', 'Videos'), link('insights', 'Insights'));
    if (user.role === 'ADMIN') {
      items.push(h('span', { class: 'nav-group' }, 'Admin'), link('admin/users', 'Users'), link('admin/audit', 'Audit log'),
        h('span', { class: 'nav-group' }, 'Operate'), link('ops/queues', 'Queues'), link('ops/dlq', 'Dead letters'), link('ops/analysis', 'Analysis'));
    }
    items.push(h('span', { class: 'spacer' }), link('account', user.email),
      h('button', { type: 'button', class: 'link', onclick: async () => { await logout().catch(() => {}); go('login'); } }, 'Log out'));
  } else {
    items.push(h('span', { class: 'spacer' }), link('login', 'Log in'), link('signup', 'Sign up'));
  }
  nav.replaceChildren(...items);
}

const messages = {
  token_reused: 'Your session was ended: a sign-in token was used twice (possibly stolen). Log in again.',
  suspended: 'This account is suspended.',
  logged_out_elsewhere: 'You logged out in another tab.',
  expired: 'Your session has ended. Log in again.',
};

onSessionChange((user, reason) => {
  renderNav();
  if (!user && messages[reason]) {
    toast(messages[reason], reason === 'token_reused' ? 'error' : 'info');
    go('login');
  }
});

const toggle = document.querySelector('.menu-toggle');
toggle.addEventListener('click', () => {
  const open = toggle.getAttribute('aria-expanded') !== 'true';
  toggle.setAttribute('aria-expanded', String(open));
  document.getElementById('nav').classList.toggle('open', open);
});
document.getElementById('nav').addEventListener('click', (e) => {
  if (e.target.closest('a')) { toggle.setAttribute('aria-expanded', 'false'); document.getElementById('nav').classList.remove('open'); }
});

window.addEventListener('hashchange', show);
window.addEventListener('DOMContentLoaded', async () => {
  await restore();
  await show();
  document.body.dataset.ready = '1';
});
