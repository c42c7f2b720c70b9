// Wiring: user input -> Session (protocol.js), Session events -> View (view.js).

import { setupAccounts } from './accountsview.js';
import { DIRECT, Session, typeFor } from './protocol.js';
import { View, recipientsText } from './view.js';

const STORE_KEY = 'muca.identity';
const BASE_TITLE = 'MUCA chat';

const view = new View();
const session = new Session();
const selected = new Set(); // uids the next message goes to; empty = everyone
let unread = 0;
const unreadIn = new Map(); // view (a room, or DIRECT) -> messages not seen there

// --- remembered identity (never the password) ------------------------------

function loadIdentity() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || '{}');
    if (typeof saved.un === 'string') view.nickname.value = saved.un;
    if (typeof saved.uid === 'string') view.uid.value = saved.uid;
  } catch (e) { /* storage unavailable or corrupt: start empty */ }
}

function saveIdentity(un, uid) {
  try { localStorage.setItem(STORE_KEY, JSON.stringify({ un, uid })); } catch (e) { /* ignore */ }
}

// --- enabling controls -----------------------------------------------------

function refreshControls() {
  const state = session.state;
  const idle = state === 'idle';
  const filled = view.nickname.value.trim() !== '' && view.uid.value.trim() !== '';
  view.joinBtn.disabled = !(idle && filled);
  view.leaveBtn.disabled = idle;
  view.nickname.readOnly = !idle;
  view.uid.readOnly = !idle;
  view.password.readOnly = !idle;
  const joined = state === 'joined';
  view.text.disabled = !joined;
  view.sendBtn.disabled = !joined || view.text.value.trim() === '';
  view.showLoadOlder(joined && session.olderShown(), session.historyPending);
}

function refreshRecipients() {
  const uids = [...selected];
  view.showRecipients(recipientsText(uids, (u) => session.nameOf(u)), typeFor(uids));
}

function refreshPeers() {
  view.renderPeers(session.peers, session.me?.uid, selected, togglePeer, session.awayUsers());
}

/** Users a message can go to: those here, and known users away. */
function reachable() {
  return new Set([...session.peers, ...session.awayUsers()].map((p) => p.UID));
}

function togglePeer(uid) {
  if (selected.has(uid)) selected.delete(uid); else selected.add(uid);
  refreshPeers();
  refreshRecipients();
}

// --- rooms -------------------------------------------------------------------

function currentTopic() {
  return session.rooms.find((r) => r.ROOM === session.current)?.TOPIC || '';
}

function refreshRooms() {
  view.renderRooms(session.rooms, session.current, unreadIn, pickRoom, DIRECT);
  view.showRoomHead(session.roomsAvailable ? session.current : null, currentTopic(), DIRECT);
}

function pickRoom(name) {
  view.showRoomError(null);
  if (name === DIRECT) {
    session.switchTo(DIRECT);
    return;
  }
  const result = session.enter(name);
  if (!result.ok) view.showRoomError(result.reason);
}

session.addEventListener('rooms', refreshRooms);

session.addEventListener('room', () => {
  const room = session.roomsAvailable ? session.current : null;
  unreadIn.delete(room);
  // A room's message goes to everyone in it: start from nobody picked.
  if (room !== DIRECT) selected.clear();
  view.showView(room);
  refreshRooms();
  refreshRecipients();
  refreshControls();
});

session.addEventListener('roomrefused', (e) => view.showRoomError(e.detail.text));

document.getElementById('new-room').addEventListener('submit', (e) => {
  e.preventDefault();
  const written = view.roomName.value.trim();
  if (!written) return;
  const result = session.enter(written);
  if (!result.ok) {
    view.showRoomError(result.reason);
    return;
  }
  view.showRoomError(null);
  view.roomName.value = '';
});

view.exitRoomBtn.addEventListener('click', () => {
  if (session.current && session.current !== DIRECT) {
    view.showRoomError(null);
    session.exit(session.current);
  }
});

// --- session events ----------------------------------------------------------

session.addEventListener('state', () => {
  view.showState(session.state, session.me);
  if (session.state === 'joined') {
    view.text.focus();
    if (window.matchMedia('(max-width: 700px)').matches) view.foldConsole();
  }
  refreshPeers(); // users away are offered only while joined
  refreshControls();
});

session.addEventListener('log', (e) => view.log(e.detail.level, e.detail.text));

session.addEventListener('reset', () => {
  view.clearMessages();
  selected.clear();
  refreshRecipients();
});

session.addEventListener('peers', () => {
  // People who left cannot be written to any more (unless the server keeps
  // messages for them): drop them from the selection.
  const present = reachable();
  let dropped = false;
  for (const uid of [...selected]) {
    if (!present.has(uid)) { selected.delete(uid); dropped = true; }
  }
  if (dropped && session.state === 'joined') {
    view.log('note', `Recipients changed: the message now goes to ${recipientsText([...selected], (u) => session.nameOf(u))}.`);
  }
  refreshPeers();
  refreshRecipients();
  view.refreshNames((u) => session.nameOf(u));
});

session.addEventListener('message', (e) => {
  const msg = e.detail.msg;
  const where = session.viewOf(msg);
  view.addMessage(msg, (u) => session.nameOf(u), session.me?.uid, where);
  if (where !== null && !view.shows(where) && !msg.hist && !msg.own) {
    unreadIn.set(where, (unreadIn.get(where) || 0) + 1);
    refreshRooms();
  }
  if (!msg.hist && !msg.own && !pageIsSeen()) {
    unread += 1;
    updateTitle();
  }
});

session.addEventListener('history', () => refreshControls());

// The server refused a message we sent (sending.js says how it is matched).
session.addEventListener('refused', (e) => {
  const { message, code, reason, partial } = e.detail;
  const said = `the server says ${code}: ${reason}`;
  if (partial) {
    const names = message.undelivered.map((u) => session.nameOf(u)).join(', ');
    view.log('note', `Not delivered to ${names}: ${said}`);
    return;
  }
  view.markRefused(message.serial, said);
  // Its text back in the box, before anything typed since; and its
  // recipients, if nobody is chosen now.
  const typed = view.text.value;
  view.text.value = typed ? `${message.text}\n${typed}` : message.text;
  if (selected.size === 0) {
    const ok = reachable();
    for (const uid of message.to) if (ok.has(uid)) selected.add(uid);
    refreshPeers();
    refreshRecipients();
  }
  autosize();
  refreshControls();
  view.log('error', `Not delivered: ${said}. The text is back in the box.`);
});

session.addEventListener('joinfailed', (e) => {
  view.showJoinError(e.detail.text);
  if (e.detail.code === 'AUTH_FAILED') {
    view.showPassword(true);
    view.log('info', 'This user id needs a password: enter it and press Join again.');
  }
  refreshControls();
});

// --- user actions --------------------------------------------------------------

view.nickname.addEventListener('input', refreshControls);
view.uid.addEventListener('input', refreshControls);

document.getElementById('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (session.state !== 'idle') return;
  const un = view.nickname.value.trim();
  const uid = view.uid.value.trim();
  if (!un || !uid) {
    view.log('error', 'Enter a nickname and a user id first.');
    return;
  }
  view.nickname.value = un;
  view.uid.value = uid;
  saveIdentity(un, uid);
  view.showJoinError(null);
  view.log('info', `Joining as ${un} (${uid})…`);
  session.join(un, uid, view.password.value);
});

view.leaveBtn.addEventListener('click', () => {
  session.leave();
  selected.clear();
  refreshRecipients();
});

view.everyoneBtn.addEventListener('click', () => {
  selected.clear();
  refreshPeers();
  refreshRecipients();
});

view.loadOlderBtn.addEventListener('click', () => {
  if (session.loadOlder()) refreshControls();
});

function sendCurrent() {
  const text = view.text.value;
  if (text.trim() === '') return;
  const to = [...selected];
  const result = session.send(text, to);
  if (!result.ok) {
    view.log('error', result.reason); // the text stays in the box
    return;
  }
  view.addMessage(result.msg, (u) => session.nameOf(u), session.me.uid, session.viewOf(result.msg));
  view.text.value = '';
  autosize();
  refreshControls();
}

document.getElementById('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  sendCurrent();
});

view.text.addEventListener('keydown', (e) => {
  // Enter sends; Shift+Enter is a new line; never send mid IME composition.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendCurrent();
  }
});

// Grow the box with its text up to a few lines (CSS caps the height).
function autosize() {
  view.text.style.height = 'auto';
  view.text.style.height = `${view.text.scrollHeight}px`;
}
view.text.addEventListener('input', () => { autosize(); refreshControls(); });

// --- unread count in the tab title ------------------------------------------

function pageIsSeen() {
  return document.visibilityState === 'visible' && document.hasFocus();
}

function updateTitle() {
  document.title = unread > 0 ? `(${unread}) ${BASE_TITLE}` : BASE_TITLE;
}

function clearUnread() {
  if (!pageIsSeen()) return;
  unread = 0;
  updateTitle();
}
window.addEventListener('focus', clearUnread);
document.addEventListener('visibilitychange', clearUnread);

// --- accounts ----------------------------------------------------------------

loadIdentity(); // before the accounts: a ?invite= link's form takes the user id
setupAccounts(session, view, {
  accountMade(uid, pass) {
    // The new account in the join form: a nickname, then Join.
    view.uid.value = uid;
    view.password.value = pass;
    view.showPassword();
    view.showJoinError(null);
    (view.nickname.value.trim() ? view.joinBtn : view.nickname).focus();
    refreshControls();
  },
});

// --- start -------------------------------------------------------------------

view.showState(session.state, null);
refreshControls();
refreshRecipients();
view.log('info', 'Enter a nickname and a user id, then press Join.');

// For tests and debugging from the console; not used by the page itself.
window.muca = { session, view };
