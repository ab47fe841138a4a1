// Sign up, verify, log in, and the account page (sessions, password, log out everywhere).
import { api, changePassword, currentUser, login as logIn, logout } from './api.js';
import { action, errorLine, field, fmtDate, h, page, showError, table, toast } from './ui.js';

export function login(_params, ctx) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const error = errorLine();
  const form = h('form', { class: 'card narrow' },
    field('Email', email), field('Password', password), error,
    h('button', { type: 'submit', class: 'primary' }, 'Log in'),
    h('p', {}, 'No account yet? ', h('a', { href: '#/signup' }, 'Sign up')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      await logIn(email.value, password.value);
      ctx.go(ctx.query.get('next') || 'chat');
    } catch (err) {
      showError(error, err.code === 'login_throttled' ? new Error(`${err.message} (try again in ${err.headers.get('Retry-After') || 'a few'} s)`) : err);
    }
  });
  return page('Log in', form);
}

export function signup(_params, ctx) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
  const error = errorLine();
  const done = h('div', { class: 'card narrow', hidden: true, role: 'status' });
  const form = h('form', { class: 'card narrow' },
    field('Email', email), field('Password', password, 'At least 10 characters; not your email.'), error,
    h('button', { type: 'submit', class: 'primary' }, 'Create account'),
    h('p', {}, 'Already have one? ', h('a', { href: '#/login' }, 'Log in')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      const created = await api('/api/auth/signup', { method: 'POST', body: { email: email.value, password: password.value }, auth: false });
      form.hidden = true;
      done.replaceChildren(
        h('h2', {}, 'Check your mail'),
        h('p', {}, `We sent a verification link to ${created.email}. Open it to verify your address, then log in.`),
        h('p', { class: 'muted' }, 'Running Aira locally? The development mail server keeps every mail in .data/mail/ of the checkout (NNNNNN.json has the link).'),
        h('a', { href: '#/login', class: 'button' }, 'Go to log in'));
      done.hidden = false;
    } catch (err) { showError(error, err); }
  });
  return page('Sign up', form, done);
}

export async function verify(_params, ctx) {
  const token = ctx.query.get('token');
  if (!token) return page('Verify your email', h('p', { class: 'error', role: 'alert' }, 'This link has no token. Open the link from the mail.'));
  try {
    const user = await api('/api/auth/verify', { method: 'POST', body: { token }, auth: false });
    return page('Email verified', h('p', { role: 'status' }, `${user.email} is verified. Welcome to Aira!`),
      currentUser() ? h('a', { href: '#/chat', class: 'button' }, 'Start chatting') : h('a', { href: '#/login', class: 'button' }, 'Log in'));
  } catch (err) {
    return page('Verify your email', h('p', { class: 'error', role: 'alert' }, `${err.message}`));
  }
}

export async function account(_params, ctx) {
  const user = currentUser();
  const list = h('div');
  async function loadSessions() {
    const body = await api('/api/auth/sessions');
    list.replaceChildren(table(['Device', 'Address', 'Signed in', 'Last used', ''], body.items.map((s) =>
      h('tr', { dataset: { session: s.id } },
        h('td', {}, s.userAgent || 'unknown device', s.current ? h('span', { class: 'badge' }, 'this device') : null),
        h('td', {}, s.ip || '—'), h('td', {}, fmtDate(s.createdAt)), h('td', {}, fmtDate(s.lastUsedAt)),
        h('td', {}, s.current ? '' : action('End session', async () => {
          await api(`/api/auth/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
          toast('Session ended');
          await loadSessions();
        }, { 'aria-label': `End the session of ${s.userAgent || 'unknown device'}` })))), 'Your sessions'));
  }
  await loadSessions();

  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
  const error = errorLine();
  const passwordForm = h('form', { class: 'card' }, h('h2', {}, 'Change password'),
    h('p', { class: 'muted' }, 'Every other device is logged out; this one stays logged in.'),
    field('Current password', current), field('New password', next), error, h('button', { type: 'submit' }, 'Change password'));
  passwordForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      const changed = await changePassword(current.value, next.value);
      current.value = next.value = '';
      toast(`Password changed; ${changed.sessionsEnded} session(s) ended`);
      await loadSessions();
    } catch (err) { showError(error, err); }
  });

  return page('Your account',
    h('div', { class: 'card' }, h('dl', { class: 'facts' },
      h('dt', {}, 'Email'), h('dd', {}, user.email), h('dt', {}, 'Role'), h('dd', {}, user.role),
      h('dt', {}, 'Verified'), h('dd', {}, user.emailVerified ? 'yes' : 'not yet — open the link in your mail'))),
    h('div', { class: 'card' }, h('h2', {}, 'Sessions'), list,
      h('div', { class: 'row' },
        action('Log out', async () => { await logout(false); ctx.go('login'); }),
        action('Log out of every device', async () => {
          if (!confirm('Log out of every device, this one included?')) return;
          await logout(true);
          ctx.go('login');
        }, { class: 'danger' }))),
    passwordForm);
}
