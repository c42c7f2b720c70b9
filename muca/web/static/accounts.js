// Accounts on a server with --auth db: "Create account" (REGISTER, on a
// WebSocket of its own that closes once answered) and "Change password"
// (PASSWORD, on the joined session's socket: Session.changePassword).
// This module knows nothing of the DOM either; accountsview.js draws.

/** The longest wait for REGISTER's answer: a server answers a wrong
 *  invitation code later and later (up to 16 s by default). */
export const REGISTER_WAIT_MS = 20000;

/** The invitation code in a page URL's `?invite=…`, or ''. */
export function invitationFrom(search = window.location.search) {
  const code = new URLSearchParams(search).get('invite');
  return code ? code.trim().slice(0, 64) : '';
}

/** What is wrong with a form's two new passwords before asking the server
 *  (the server says what a password needs), or null. */
export function passwordsProblem(password, again) {
  if (!password) return 'Type a password.';
  if (password !== again) return 'The two passwords differ: type the same one twice.';
  return null;
}

/** A refusal in readable words: the server's reason, then its code. */
export function refusalText(action, code, reason) {
  return `${action}: ${reason || 'the server refused it'} (${code}).`;
}

/**
 * REGISTER `uid` with `pass` (and the invitation code `invite`, unless
 * empty) on a new socket. Resolves to {ok: true} on REGISTERED, else
 * {ok: false, code, reason, text}; never rejects.
 */
export function registerAccount({ uid, pass, invite = '', url, makeSocket = (u) => new WebSocket(u), waitMs = REGISTER_WAIT_MS }) {
  return new Promise((resolve) => {
    let done = false;
    let sock = null;
    const finish = (answer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (sock) {
        sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
        try { sock.close(1000); } catch (e) { /* already closed */ }
      }
      resolve(answer);
    };
    const failed = (code, reason) => finish({
      ok: false, code, reason, text: refusalText('Account not created', code, reason),
    });
    const timer = setTimeout(
      () => failed('NO_ANSWER', `the server did not answer within ${waitMs / 1000} s`), waitMs);
    try {
      sock = makeSocket(url);
    } catch (e) {
      failed('NO_CONNECTION', `cannot open a connection: ${e.message}`);
      return;
    }
    sock.onopen = () => {
      const register = { CMD: 'REGISTER', UID: uid, PASS: pass };
      if (invite) register.INVITE = invite;
      sock.send(JSON.stringify(register));
    };
    sock.onmessage = (ev) => {
      let obj;
      try { obj = JSON.parse(ev.data); } catch (e) { return; }
      if (!obj || typeof obj !== 'object') return;
      if (obj.CMD === 'REGISTERED') finish({ ok: true });
      else if (obj.CMD === 'ERROR' && obj.REF === 'REGISTER') {
        failed(String(obj.CODE || 'ERROR'), typeof obj.REASON === 'string' ? obj.REASON : '');
      }
    };
    sock.onclose = () => failed('NO_CONNECTION', 'the connection closed before the server answered');
    sock.onerror = () => { /* a close event follows */ };
  });
}
