// The MUCA wire protocol over WebSocket, and the session state behind the page.
//
// This module knows nothing of the DOM: it turns user intents (join, send,
// load older, leave) into protocol objects, and server objects into events
// ("state", "peers", "message", "history", "log") that view code listens to.
// See docs/protocol.md for the contract; the comments here say why, not what.

import { refusalText } from './accounts.js';
import { SentMessages, tooLong } from './sending.js';

/** Frame limit when the server's ACK names none (PROTOCOL.md: 64 KiB). */
export const DEFAULT_MAX_FRAME = 65536;
/** Messages asked for per "Load older messages" click. */
export const OLDER_PAGE = 50;
/** Reconnect delays: 1 s, 2 s, 4 s ... capped at 10 s. */
export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 10000;

/** The URL of the gateway's WebSocket: same host as the page, path /ws. */
export function socketUrl(loc = window.location) {
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws';
}

/** The TYPE the server will give a message sent to these recipients. */
export function typeFor(toUids) {
  if (toUids.length === 0) return 'ALL';
  return toUids.length === 1 ? 'PRIVATE' : 'GROUP';
}

/** The view of private and group messages, beside the rooms' views. */
export const DIRECT = '@direct';
/** The refused rooms commands, as the activity line says them. */
const ROOM_REFUSED = {
  ENTER: 'Cannot enter the room', EXIT: 'Cannot leave the room',
  ROOMSET: 'Cannot change the room', INVITE: 'Cannot invite to the room',
};

/** A room's name as the server writes it, or null for one it refuses. */
export function roomName(written) {
  let name = String(written).trim();
  if (name.startsWith('#')) name = name.slice(1);
  name = name.toLowerCase();
  return /^[a-z0-9_-]{1,32}$/.test(name) ? name : null;
}

/** Delay before reconnect attempt number `attempt` (1-based). */
export function backoffDelay(attempt) {
  return Math.min(BACKOFF_FIRST_MS * 2 ** (attempt - 1), BACKOFF_MAX_MS);
}

/**
 * One user's session with the room.  States:
 *   idle          not connected, the user may join
 *   connecting    socket opening or JOIN sent, waiting for ACK
 *   joined        ACK OKAY received
 *   reconnecting  the connection broke after a join; a retry is scheduled
 * Listeners get CustomEvents whose `detail` carries the data.
 */
export class Session extends EventTarget {
  constructor({ makeSocket = (url) => new WebSocket(url), url = null } = {}) {
    super();
    this.makeSocket = makeSocket;
    this.url = url;
    this.state = 'idle';
    this.socket = null;
    this.me = null;              // {un, uid, pass}
    this.peers = [];             // [{UN, UID}] in join order, from LIST
    this.away = [];              // [{UN, UID}] known users not here, most recent first
    this.authenticating = false; // the server delivers to users who are away
    this.names = new Map();      // uid -> latest nickname, kept after a peer leaves
    this.sentMessages = null;    // SentMessages of this connection
    this.seen = new Set();       // message ids shown, to never show one twice
    this.maxId = 0;              // highest id seen: SINCE on reconnect
    this.minId = 0;              // lowest id seen: BEFORE for older history
    this.maxFrame = DEFAULT_MAX_FRAME;
    this.more = false;           // the server has older messages for us
    this.historyPending = false; // a HISTORY answer is still coming
    // With rooms, history is per view (a room, or DIRECT: our own private
    // and group messages): the lowest id seen there, and whether older
    // ones exist (its last HISTORY end; until then the JOIN replay's).
    this.minIn = new Map();
    this.moreIn = new Map();
    this.ownAsked = 0;           // HISTORY requests for DIRECT not answered yet
    this.wasJoined = false;      // this session got ACK OKAY at least once
    this.attempt = 0;            // reconnect attempts since the last success
    this.retryTimer = null;
    this.newPasswords = [];      // PASSWORD sent, not answered: the new ones, in order
    this.resetRooms();
  }

  /** Rooms (capability "rooms"): none known until the server lists them. */
  resetRooms() {
    this.rooms = [];             // [{ROOM, TOPIC, COUNT, IN}], the default room first
    this.roomsAvailable = false; // the server sent ROOMS
    this.roomPeers = new Map();  // room -> [{UN, UID}] of the rooms we are in
    this.current = null;         // the view shown: a room's name, DIRECT, or null (no rooms)
  }

  get defaultRoom() {
    return this.rooms.length ? this.rooms[0].ROOM : null;
  }

  /** The view a message belongs to: its room, DIRECT, or null without rooms. */
  viewOf(msg) {
    if (!this.roomsAvailable) return null;
    if (msg.type !== 'ALL') return DIRECT;
    return msg.room || this.defaultRoom;
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  log(level, text) {
    this.emit('log', { level, text });
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state });
  }

  /** Start a session: open the socket and JOIN.  `pass` may be empty. */
  join(un, uid, pass = '') {
    if (this.state !== 'idle') return;
    // A new identity starts a new conversation; a rejoin as the same user
    // keeps what is shown (ids dedupe the replay).
    if (this.me && this.me.uid !== uid) {
      this.seen.clear();
      this.maxId = 0;
      this.minId = 0;
      this.more = false;
      this.minIn.clear();
      this.moreIn.clear();
      this.away = [];
      this.authenticating = false;
      this.emit('reset');
    }
    this.me = { un, uid, pass };
    this.wasJoined = false;
    this.attempt = 0;
    this.open();
  }

  /** PASSWORD questions of a connection that closed get no answer. */
  dropPasswords() {
    if (this.newPasswords.length === 0) return;
    this.newPasswords = [];
    const text = 'Password not changed: the connection closed before the server answered.';
    this.emit('password', { ok: false, code: 'NO_CONNECTION', reason: text, text });
  }

  /** Leave on purpose: close cleanly and never reconnect. */
  leave() {
    this.dropPasswords();
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const sock = this.socket;
    this.socket = null;
    this.wasJoined = false;
    if (sock) {
      this.detach(sock);
      try { sock.close(1000, 'leave'); } catch (e) { /* already closed */ }
    }
    if (this.state !== 'idle') this.log('info', 'You left the room.');
    this.peers = [];
    this.resetRooms();
    this.emit('rooms', { rooms: this.rooms });
    this.emit('room', { room: null });
    this.emit('peers', { peers: this.peers });
    this.historyPending = false;
    this.ownAsked = 0;
    this.setState('idle');
  }

  open() {
    this.setState(this.wasJoined ? 'reconnecting' : 'connecting');
    let sock;
    try {
      sock = this.makeSocket(this.url || socketUrl());
    } catch (e) {
      this.log('error', `Cannot open a connection: ${e.message}`);
      this.onClosed(null);
      return;
    }
    this.socket = sock;
    sock.onopen = () => this.sendJoin();
    sock.onmessage = (ev) => this.onFrame(ev.data);
    sock.onclose = (ev) => this.onClosed(sock, ev);
    sock.onerror = () => { /* a close event always follows; handled there */ };
  }

  detach(sock) {
    sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
  }

  sendJoin() {
    const join = {
      CMD: 'JOIN', UN: this.me.un, UID: this.me.uid, V: 2, CAPS: ['history', 'known', 'rooms'],
    };
    this.resetRooms();
    this.emit('rooms', { rooms: this.rooms });
    this.sentMessages = new SentMessages([this.me.uid, this.me.un]);
    if (this.me.pass) join.PASS = this.me.pass;
    // After a lost connection, ask only for what we missed.
    if (this.wasJoined && this.maxId > 0) join.SINCE = this.maxId;
    this.write(join);
  }

  write(obj) {
    if (!this.socket || this.socket.readyState !== 1) return false;
    this.socket.send(JSON.stringify(obj));
    return true;
  }

  onFrame(data) {
    if (typeof data !== 'string') return; // the server sends text only
    let obj;
    try {
      obj = JSON.parse(data);
    } catch (e) {
      this.log('error', 'The server sent something that is not JSON; ignored.');
      return;
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return;
    switch (obj.CMD) {
      case 'ACK': this.onAck(obj); break;
      case 'LIST': this.onList(obj); break;
      case 'PRESENCE': this.onPresence(obj); break;
      case 'MSG': this.onMsg(obj); break;
      case 'HISTORY': this.onHistoryEnd(obj); break;
      case 'KNOWN': this.onKnown(obj); break;
      case 'ERROR': this.onError(obj); break;
      case 'ROOMS': this.onRooms(obj); break;
      case 'ENTERED': this.onEntered(obj); break;
      case 'TOPIC': this.onTopic(obj); break;
      case 'PASSWORD': this.onPasswordChanged(obj); break;
      default: break; // unknown commands are ignored, as the protocol asks
    }
  }

  onAck(obj) {
    if (obj.TYPE === 'OKAY') {
      const reconnected = this.wasJoined;
      this.wasJoined = true;
      this.attempt = 0;
      this.maxFrame = Number.isInteger(obj.MAX_FRAME) && obj.MAX_FRAME > 0
        ? obj.MAX_FRAME : DEFAULT_MAX_FRAME;
      this.historyPending = true; // the replay (or catch-up) comes next
      // Only a server that authenticates asks for a password.
      if (this.me.pass) this.authenticating = true;
      this.setState('joined');
      if (reconnected) {
        this.log('info', this.maxId > 0
          ? `Reconnected. Catching up on messages after #${this.maxId}.`
          : 'Reconnected.');
      } else {
        this.log('ok', `Joined as ${this.me.un} (${this.me.uid}).`);
      }
      return;
    }
    const code = obj.CODE || 'FAIL';
    const reason = obj.REASON || 'the server refused to join';
    const retryable = this.wasJoined && (code === 'UID_TAKEN' || code === 'NICK_TAKEN');
    if (retryable) {
      // Our old connection may not be gone on the server yet: try again soon.
      this.log('info', `The server still holds the old session (${code}); retrying.`);
      this.dropSocket();
      this.scheduleRetry();
      return;
    }
    this.log('error', `Join refused (${code}): ${reason}`);
    this.emit('joinfailed', { code, reason, text: `Join refused (${code}): ${reason}` });
    this.dropSocket();
    this.wasJoined = false;
    this.setState('idle');
  }

  dropSocket() {
    const sock = this.socket;
    this.socket = null;
    if (sock) {
      this.detach(sock);
      try { sock.close(1000); } catch (e) { /* ignore */ }
    }
  }

  onList(obj) {
    if (!Array.isArray(obj.DATA)) return;
    if (typeof obj.ROOM === 'string') {
      const peers = obj.DATA.filter((p) => p && typeof p.UID === 'string')
        .map((p) => ({ UN: String(p.UN ?? p.UID), UID: p.UID }));
      for (const p of peers) this.names.set(p.UID, p.UN);
      this.roomPeers.set(obj.ROOM, peers);
      this.emit('rooms', { rooms: this.rooms });
      // Only the room on screen shows its comings and goings.
      if (obj.ROOM !== this.current) return;
    }
    const before = new Set(this.peers.map((p) => p.UID));
    this.peers = obj.DATA.filter((p) => p && typeof p.UID === 'string')
      .map((p) => ({ UN: String(p.UN ?? p.UID), UID: p.UID }));
    for (const p of this.peers) this.names.set(p.UID, p.UN);
    const gone = [...before].filter((uid) => !this.peers.some((p) => p.UID === uid));
    this.updateAway(gone);
    // Say who came and went, except on the first list of a connection.
    if (before.size > 0) {
      const now = new Set(this.peers.map((p) => p.UID));
      for (const p of this.peers) {
        if (!before.has(p.UID)) this.log('note', `${p.UN} joined.`);
      }
      for (const uid of before) {
        if (!now.has(uid)) this.log('note', `${this.nameOf(uid)} left.`);
      }
    }
    this.emit('peers', { peers: this.peers });
  }

  onPresence(obj) {
    const left = new Set(Array.isArray(obj.LEFT) ? obj.LEFT : []);
    const joined = Array.isArray(obj.JOINED) ? obj.JOINED : [];
    for (const uid of left) this.log('note', `${this.nameOf(uid)} left.`);
    this.peers = this.peers.filter((p) => !left.has(p.UID));
    for (const p of joined) {
      if (!p || typeof p.UID !== 'string') continue;
      this.peers = this.peers.filter((q) => q.UID !== p.UID);
      this.peers.push({ UN: String(p.UN ?? p.UID), UID: p.UID });
      this.names.set(p.UID, String(p.UN ?? p.UID));
      this.log('note', `${p.UN} joined.`);
    }
    this.updateAway([...left]);
    this.emit('peers', { peers: this.peers });
  }

  /** KNOWN: the known users not here, with their last nicknames. */
  onKnown(obj) {
    if (!Array.isArray(obj.DATA)) return;
    const known = obj.DATA.filter((p) => p && typeof p.UID === 'string' && typeof p.UN === 'string');
    if (known.length > 0) this.authenticating = true;
    for (const p of known) if (!this.names.has(p.UID)) this.names.set(p.UID, p.UN);
    const here = new Set(this.peers.map((p) => p.UID));
    const listed = new Set(this.away.map((p) => p.UID));
    const added = known.filter((p) => !here.has(p.UID) && !listed.has(p.UID))
      .map((p) => ({ UN: p.UN, UID: p.UID }));
    this.away = [...this.away, ...added].slice(0, 1000);
    this.emit('peers', { peers: this.peers });
  }

  /** Users who left are away (first), those in the room are not. */
  updateAway(goneUids) {
    const here = new Set(this.peers.map((p) => p.UID));
    const gone = goneUids.filter((uid) => !here.has(uid) && uid !== this.me?.uid)
      .map((uid) => ({ UN: this.nameOf(uid), UID: uid }));
    const goneSet = new Set(gone.map((p) => p.UID));
    this.away = [...gone, ...this.away.filter((p) => !here.has(p.UID) && !goneSet.has(p.UID))]
      .slice(0, 1000);
  }

  /** Known users who are away and can be written to (offline delivery). */
  awayUsers() {
    return this.authenticating && this.state === 'joined' ? this.away : [];
  }

  nameOf(uid) {
    return this.names.get(uid) ?? uid;
  }

  // --- rooms ---------------------------------------------------------------

  onRooms(obj) {
    if (!Array.isArray(obj.DATA)) return;
    this.rooms = obj.DATA.filter((r) => r && typeof r.ROOM === 'string').map((r) => ({
      ROOM: r.ROOM,
      TOPIC: typeof r.TOPIC === 'string' ? r.TOPIC : '',
      COUNT: Number.isInteger(r.COUNT) ? r.COUNT : 0,
      IN: r.IN === true,
    }));
    this.roomsAvailable = true;
    for (const r of this.rooms) if (!r.IN) this.roomPeers.delete(r.ROOM);
    const inside = this.rooms.filter((r) => r.IN).map((r) => r.ROOM);
    if (this.current === null || (this.current !== DIRECT && !inside.includes(this.current))) {
      // First list, or we left the room shown: the default room, else
      // another we are in, else the private messages.
      this.switchTo(inside.includes(this.defaultRoom) ? this.defaultRoom : (inside[0] || DIRECT));
    }
    this.emit('rooms', { rooms: this.rooms });
  }

  onEntered(obj) {
    if (typeof obj.ROOM !== 'string') return;
    this.log('ok', `You entered #${obj.ROOM}.`);
    this.switchTo(obj.ROOM);
  }

  onTopic(obj) {
    if (typeof obj.ROOM !== 'string' || typeof obj.TOPIC !== 'string') return;
    for (const r of this.rooms) if (r.ROOM === obj.ROOM) r.TOPIC = obj.TOPIC;
    const by = typeof obj.BY === 'string' ? this.nameOf(obj.BY) : 'someone';
    this.log('note', obj.TOPIC
      ? `${by} set the topic of #${obj.ROOM}: ${obj.TOPIC}`
      : `${by} cleared the topic of #${obj.ROOM}.`);
    this.emit('rooms', { rooms: this.rooms });
  }

  /** The room `name` (or DIRECT) on screen; its roster is the people shown. */
  switchTo(name) {
    this.current = name;
    if (name === DIRECT) {
      // Anyone in a room with us can be written to.
      const seen = new Map();
      for (const peers of this.roomPeers.values()) for (const p of peers) seen.set(p.UID, p);
      this.peers = [...seen.values()];
    } else {
      this.peers = this.roomPeers.get(name) || [];
    }
    this.emit('room', { room: name });
    this.emit('peers', { peers: this.peers });
  }

  /** ENTER a room (made when it does not exist); false with a reason else. */
  enter(written) {
    const name = roomName(written);
    if (name === null) {
      return { ok: false, reason: `"${written}" is no room name: 1 to 32 characters of a-z, 0-9, - and _.` };
    }
    if (this.state !== 'joined' || !this.roomsAvailable) {
      return { ok: false, reason: 'This server has no rooms: everyone is in its one room.' };
    }
    const known = this.rooms.find((r) => r.ROOM === name);
    if (known && known.IN) {
      this.switchTo(name);
      return { ok: true };
    }
    this.write({ CMD: 'ENTER', ROOM: name });
    return { ok: true };
  }

  /** EXIT a room we are in. */
  exit(name) {
    if (this.state !== 'joined' || !this.roomsAvailable) return false;
    return this.write({ CMD: 'EXIT', ROOM: name });
  }

  onMsg(obj) {
    if (typeof obj.MSG !== 'string') return;
    const id = Number.isInteger(obj.ID) ? obj.ID : null;
    if (id !== null) {
      if (this.seen.has(id)) return; // replay overlaps what we have: show once
      this.seen.add(id);
      if (id > this.maxId) this.maxId = id;
      if (this.minId === 0 || id < this.minId) this.minId = id;
    }
    const msg = {
      id,
      type: ['ALL', 'GROUP', 'PRIVATE'].includes(obj.TYPE) ? obj.TYPE : 'ALL',
      text: obj.MSG,
      from: typeof obj.FROM === 'string' ? obj.FROM : '?',
      to: Array.isArray(obj.TO) ? obj.TO.filter((u) => typeof u === 'string') : null,
      ts: Number.isFinite(obj.TS) ? obj.TS : Date.now(),
      hist: obj.HIST === true,
      own: false,
      // The nickname it was sent with, for a replayed message.
      un: obj.HIST === true && typeof obj.UN === 'string' && obj.UN ? obj.UN : null,
      room: typeof obj.ROOM === 'string' ? obj.ROOM : null,
    };
    const where = this.viewOf(msg);
    if (id !== null && where !== null) {
      const lowest = this.minIn.get(where);
      if (lowest === undefined || id < lowest) this.minIn.set(where, id);
    }
    // Our own messages read back from history (authenticated servers).
    if (this.me && msg.from === this.me.uid) msg.own = true;
    this.emit('message', { msg });
  }

  onHistoryEnd(obj) {
    const more = obj.MORE === true;
    if (typeof obj.ROOM === 'string') {
      // A room's replay (after ENTERED) or its scroll-back.
      this.moreIn.set(obj.ROOM, more);
    } else if (this.ownAsked > 0) {
      this.ownAsked -= 1;
      this.moreIn.set(DIRECT, more);
    } else {
      // The JOIN's replay or catch-up: of every room we are in and our own.
      this.more = more;
      this.moreIn.clear();
    }
    this.historyPending = false;
    this.emit('history', { more: this.olderShown() });
  }

  /** Whether older messages exist for the view shown (Load older). */
  olderShown() {
    if (!this.roomsAvailable) return this.more;
    if (this.current === null) return false;
    const more = this.moreIn.get(this.current);
    return more === undefined ? this.more : more;
  }

  // --- accounts ------------------------------------------------------------

  /** PASSWORD: change ours (joined); the answer comes as a "password" event. */
  changePassword(old, pass) {
    if (this.state !== 'joined') {
      return { ok: false, reason: 'Join with your password before changing it.' };
    }
    if (!this.write({ CMD: 'PASSWORD', OLD: old, NEW: pass })) {
      return { ok: false, reason: 'The connection is not open: nothing was changed.' };
    }
    this.newPasswords.push(pass);
    return { ok: true };
  }

  onPasswordChanged(obj) {
    if (obj.CHANGED !== true || this.newPasswords.length === 0) return;
    // A reconnect logs in with the new one from now on.
    this.me.pass = this.newPasswords.shift();
    this.log('ok', 'Password changed.');
    this.emit('password', { ok: true, pass: this.me.pass });
  }

  onError(obj) {
    const code = obj.CODE || 'ERROR';
    const reason = obj.REASON || '';
    if (obj.REF === 'PASSWORD' && this.newPasswords.length > 0) {
      this.newPasswords.shift();
      const text = refusalText('Password not changed', code, reason);
      this.log('error', text);
      this.emit('password', { ok: false, code, reason, text });
      return;
    }
    if (code === 'ROOMS_UNAVAILABLE' && obj.REF === 'JOIN') {
      // A server without rooms (an older cluster node): its one room, as
      // before rooms existed.
      this.roomsAvailable = false;
      return;
    }
    if (ROOM_REFUSED[obj.REF]) {
      const text = `${ROOM_REFUSED[obj.REF]}: ${reason || 'the server refused it'} (${code})`;
      this.log('error', text);
      this.emit('roomrefused', { code, reason, ref: obj.REF, text });
      return;
    }
    if (obj.REF === 'SEND' && this.sentMessages) {
      const refusal = this.sentMessages.refused(code, reason);
      if (refusal) {
        this.emit('refused', refusal);
        return;
      }
    }
    // Some recipients were gone: the rest got the message, so not an error.
    const level = code === 'UNKNOWN_RECIPIENT' ? 'note' : 'error';
    const text = code === 'UNKNOWN_RECIPIENT'
      ? `Not delivered to everyone: ${reason || 'some recipients are no longer here'}`
      : `Server error ${code}${reason ? `: ${reason}` : ''}`;
    this.log(level, text);
    this.emit('servererror', { code, reason, ref: obj.REF });
  }

  onClosed(sock, ev) {
    if (sock !== null && sock !== this.socket) return; // an old socket
    this.socket = null;
    this.dropPasswords();
    if (this.sentMessages) this.sentMessages.clear();
    this.historyPending = false;
    this.ownAsked = 0;
    if (!this.wasJoined) {
      // Never got in: nothing to resume, the user tries again by hand.
      if (this.state !== 'idle') {
        this.log('error', 'Could not connect to the chat server.');
      }
      this.peers = [];
      this.emit('peers', { peers: this.peers });
      this.setState('idle');
      return;
    }
    if (this.state === 'joined') {
      const why = ev && ev.code && ev.code !== 1006 ? ` (code ${ev.code})` : '';
      this.log('error', `Connection lost${why}.`);
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    this.attempt += 1;
    const delay = backoffDelay(this.attempt);
    this.setState('reconnecting');
    this.log('info', `Reconnecting in ${delay / 1000} s (attempt ${this.attempt})…`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state === 'reconnecting') this.open();
    }, delay);
  }

  /**
   * Send a chat message.  Returns {ok: true, msg} with the local copy to
   * show (the server never echoes it back), or {ok: false, reason}.
   */
  send(text, toUids) {
    if (this.state !== 'joined') {
      return { ok: false, reason: 'You are not in the room: join first.' };
    }
    const cmd = { CMD: 'SEND', MSG: text, TO: [...toUids], FROM: this.me.uid };
    let room = null;
    if (this.roomsAvailable && toUids.length === 0) {
      if (this.current === DIRECT || this.current === null) {
        return { ok: false, reason: 'Pick the people to write to, or open a room.' };
      }
      room = this.current;
      cmd.ROOM = room;
    }
    const refusal = tooLong(cmd, this.maxFrame);
    if (refusal) return { ok: false, reason: refusal };
    if (!this.write(cmd)) {
      return { ok: false, reason: 'The connection is not open; the message was not sent.' };
    }
    const sent = this.sentMessages.sent(toUids, text);
    const msg = {
      id: null, type: typeFor(toUids), text, from: this.me.uid,
      to: [...toUids], ts: Date.now(), hist: false, own: true, serial: sent.serial, room,
    };
    return { ok: true, msg };
  }

  /**
   * Ask for up to OLDER_PAGE messages older than the oldest shown: with
   * rooms, in the view shown (HISTORY with ROOM for a room; without it, our
   * own private and group messages for DIRECT).
   */
  loadOlder() {
    if (this.state !== 'joined' || !this.olderShown() || this.historyPending || this.minId === 0) {
      return false;
    }
    const cmd = { CMD: 'HISTORY', BEFORE: this.minId, LIMIT: OLDER_PAGE };
    if (this.roomsAvailable) {
      // A view none of whose messages came yet: older than all that did.
      cmd.BEFORE = this.minIn.get(this.current) || this.minId;
      if (this.current === DIRECT) this.ownAsked += 1;
      else cmd.ROOM = this.current;
    }
    if (!this.write(cmd)) return false;
    this.historyPending = true;
    return true;
  }
}
