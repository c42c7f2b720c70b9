// The "Create account" and "Change password" panels: their forms, what is
// said beside them, and what they hand to the join form.

import { invitationFrom, passwordsProblem, registerAccount } from './accounts.js';
import { socketUrl } from './protocol.js';

const $ = (id) => document.getElementById(id);

/** One line beside a form: `ok` green, else red; null hides it. */
function say(node, text, ok = false) {
  node.hidden = text === null;
  node.textContent = text || '';
  node.classList.toggle('ok', ok);
}

/**
 * Wire the panels to `session` (protocol.js) and `view` (view.js);
 * `accountMade(uid, pass)` fills the join form with a new account.
 */
export function setupAccounts(session, view, { accountMade }) {
  const openRegister = $('open-register');
  const openPassword = $('open-password');
  const registerPanel = $('register-panel');
  const passwordPanel = $('password-panel');
  const registerForm = $('register-form');
  const passwordForm = $('password-form');
  const registerMessage = $('register-message');
  const passwordMessage = $('password-message');
  const fields = {
    uid: $('reg-uid'), pass: $('reg-password'), again: $('reg-password2'), invite: $('reg-invite'),
    old: $('old-password'), next: $('new-password'), nextAgain: $('new-password2'),
  };
  const registerBtn = $('register');
  const changeBtn = $('change-password');

  function show(panel, button, open) {
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
  }

  function openRegistration() {
    show(registerPanel, openRegister, true);
    if (!fields.uid.value) fields.uid.value = view.uid.value.trim();
    (fields.uid.value ? fields.pass : fields.uid).focus();
  }

  openRegister.addEventListener('click', () => {
    if (registerPanel.hidden) openRegistration(); else show(registerPanel, openRegister, false);
  });
  $('close-register').addEventListener('click', () => show(registerPanel, openRegister, false));
  openPassword.addEventListener('click', () => {
    const open = passwordPanel.hidden;
    show(passwordPanel, openPassword, open);
    if (open) fields.old.focus();
  });
  $('close-password').addEventListener('click', () => show(passwordPanel, openPassword, false));

  registerForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const uid = fields.uid.value.trim();
    const problem = uid ? passwordsProblem(fields.pass.value, fields.again.value) : 'Enter a user id.';
    if (problem) {
      say(registerMessage, problem);
      return;
    }
    const pass = fields.pass.value;
    registerBtn.disabled = true;
    say(registerMessage, 'Creating the account…', true);
    const answer = await registerAccount({
      uid, pass, invite: fields.invite.value.trim(), url: session.url || socketUrl(),
      makeSocket: session.makeSocket,
    });
    registerBtn.disabled = false;
    if (!answer.ok) {
      say(registerMessage, answer.text);
      view.log('error', answer.text);
      return;
    }
    fields.pass.value = fields.again.value = '';
    const text = `Account created for ${uid}: you can join with it. Enter a nickname and press Join.`;
    say(registerMessage, text, true);
    view.log('ok', `Account created for ${uid}.`);
    accountMade(uid, pass);
  });

  passwordForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!fields.old.value) {
      say(passwordMessage, 'Type your current password.');
      return;
    }
    const problem = passwordsProblem(fields.next.value, fields.nextAgain.value);
    if (problem) {
      say(passwordMessage, problem);
      return;
    }
    const result = session.changePassword(fields.old.value, fields.next.value);
    if (!result.ok) {
      say(passwordMessage, result.reason);
      return;
    }
    changeBtn.disabled = true;
    say(passwordMessage, 'Changing the password…', true);
  });

  session.addEventListener('password', (e) => {
    changeBtn.disabled = false;
    if (!e.detail.ok) {
      say(passwordMessage, e.detail.text);
      return;
    }
    fields.old.value = fields.next.value = fields.nextAgain.value = '';
    say(passwordMessage, 'Password changed: join with the new one from now on.', true);
    view.password.value = e.detail.pass;
  });

  session.addEventListener('state', () => {
    const joined = session.state === 'joined';
    openRegister.hidden = session.state !== 'idle';
    // Only a user who joined with a password has one to change.
    openPassword.hidden = !(joined && session.me?.pass);
    if (session.state !== 'idle') show(registerPanel, openRegister, false);
    if (!joined && !passwordPanel.hidden) show(passwordPanel, openPassword, false);
  });

  // A teacher's link, /?invite=CODE: the code filled in, the form open.
  const code = invitationFrom();
  if (code) {
    fields.invite.value = code;
    openRegistration();
  }
}
