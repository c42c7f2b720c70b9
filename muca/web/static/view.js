// DOM rendering for the MUCA page.  Every piece of text that comes from
// another user goes in through textContent (never innerHTML), so a message
// like "<img onerror=…>" is shown as typed and never runs.

const $ = (id) => document.getElementById(id);

/** Create an element with classes and optional text (as text, never HTML). */
export function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

const pad = (n) => String(n).padStart(2, '0');

/** "14:05" today; "3 Mar, 14:05" another day; with the year another year. */
export function formatTime(ts, now = new Date()) {
  const d = new Date(ts);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return hm;
  const opts = { day: 'numeric', month: 'short' };
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  return `${d.toLocaleDateString(undefined, opts)}, ${hm}`;
}

/** "everyone", "Mary", "Mary, Tony" for a list of user ids. */
export function recipientsText(uids, nameOf) {
  return uids.length === 0 ? 'everyone' : uids.map(nameOf).join(', ');
}

/** The two letters of a nickname's avatar. */
function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) return '?';
  const first = [...parts[0]][0] || '?';
  const second = parts.length > 1 ? [...parts[parts.length - 1]][0] : ([...parts[0]][1] || '');
  return (first + second).toUpperCase();
}

/** A stable hue class (0-7) per user id, so avatars are told apart. */
function hueClass(uid) {
  let h = 0;
  for (const ch of uid) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hue-${h % 8}`;
}

/** A word folded as the server folds it: lowered, accents removed. */
function fold(word) {
  return word.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '').normalize('NFC');
}

const CJK = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]/u;
const WORD = /[\p{L}\p{N}\p{M}]+/gu;

/** What a query highlights: whole words, prefixes (plan*), and Chinese or
 *  Japanese parts (found anywhere). */
export function queryTerms(query) {
  const terms = { words: new Set(), prefixes: [], parts: [] };
  for (const chunk of query.replace(/"/g, ' ').split(/\s+/)) {
    const starred = chunk.endsWith('*');
    const found = [...chunk.matchAll(WORD)].map((m) => fold(m[0]));
    found.forEach((w, i) => {
      if (CJK.test(w)) terms.parts.push(w);
      else if (starred && i === found.length - 1) terms.prefixes.push(w);
      else terms.words.add(w);
    });
  }
  return terms;
}

/** ``text`` as text nodes and <mark> elements around what ``terms`` match. */
export function highlighted(text, terms) {
  const marks = []; // [start, end) ranges
  for (const m of text.matchAll(WORD)) {
    const word = fold(m[0]);
    if (terms.words.has(word) || terms.prefixes.some((p) => word.startsWith(p))) {
      marks.push([m.index, m.index + m[0].length]);
    }
  }
  const lowered = text.toLowerCase();
  for (const part of terms.parts) {
    for (let at = lowered.indexOf(part); at >= 0; at = lowered.indexOf(part, at + 1)) {
      marks.push([at, at + part.length]);
    }
  }
  marks.sort((a, b) => a[0] - b[0]);
  const nodes = [];
  let pos = 0;
  for (const [start, end] of marks) {
    if (end <= pos) continue;
    const from = Math.max(start, pos);
    if (from > pos) nodes.push(document.createTextNode(text.slice(pos, from)));
    nodes.push(el('mark', '', text.slice(from, end)));
    pos = end;
  }
  if (pos < text.length) nodes.push(document.createTextNode(text.slice(pos)));
  return nodes;
}

export class View {
  constructor() {
    this.app = $('app');
    this.searchPanel = $('search-panel');
    this.searchForm = $('search-form');
    this.searchQ = $('search-q');
    this.searchNote = $('search-note');
    this.searchResults = $('search-results');
    this.status = $('status');
    this.nickname = $('nickname');
    this.uid = $('uid');
    this.password = $('password');
    this.passwordField = $('password-field');
    this.joinBtn = $('join');
    this.leaveBtn = $('leave');
    this.peersList = $('peers');
    this.peerCount = $('peer-count');
    this.everyoneBtn = $('everyone');
    this.messages = $('messages');
    this.scroller = $('messages-scroll');
    this.empty = $('empty');
    this.loadOlderBtn = $('load-older');
    this.recipients = $('recipients');
    this.text = $('text');
    this.sendBtn = $('send');
    this.console = $('console');
    this.consolePanel = $('console-panel');
    this.consoleLast = $('console-last');
    this.joinError = $('join-error');
    this.roomsPanel = $('rooms-panel');
    this.roomsList = $('rooms');
    this.roomName = $('room-name');
    this.roomError = $('room-error');
    this.roomHead = $('room-head');
    this.roomTitle = $('room-title');
    this.roomTopic = $('room-topic');
    this.exitRoomBtn = $('exit-room');
    this.view = null; // the messages shown: a room's name, '@direct', or null (all)
    // Whether the newest message is in view; kept so when the viewport
    // shrinks (a phone's on-screen keyboard opening).
    this.atBottom = true;
    this.scroller.addEventListener('scroll', () => { this.atBottom = this.nearBottom(); });
    new ResizeObserver(() => {
      if (this.atBottom) this.scrollToBottom();
    }).observe(this.scroller);
  }

  // --- status and controls ---------------------------------------------

  showState(state, me) {
    this.app.dataset.state = state;
    const labels = {
      idle: 'Offline',
      connecting: 'Connecting…',
      joined: me ? `Online as ${me.un}` : 'Online',
      reconnecting: 'Reconnecting…',
    };
    // A refused join stays said until the next try.
    const refused = state === 'idle' && !this.joinError.hidden;
    this.status.textContent = refused ? 'Join refused' : (labels[state] || state);
    this.status.className = `status ${state}`;
    this.empty.textContent = state === 'idle'
      ? 'Join the room to see the conversation.'
      : 'No messages yet. Say hello!';
  }

  /** A refused join, shown under the form where the user looks (null: none). */
  showJoinError(text) {
    this.joinError.hidden = text === null;
    this.joinError.textContent = text || '';
    if (text !== null) {
      this.status.textContent = 'Join refused';
      this.joinError.scrollIntoView({ block: 'nearest' });
    }
  }

  showPassword(focus = false) {
    this.passwordField.hidden = false;
    if (focus) {
      this.password.focus();
      this.password.select();
    }
  }

  // --- people ----------------------------------------------------------

  /**
   * Draw the peer list, then the known users who are away (they get a
   * message when they next join); `selected` is a Set of uids; `onToggle(uid)`.
   */
  renderPeers(peers, myUid, selected, onToggle, away = []) {
    const awayUids = new Set(away.map((p) => p.UID));
    const items = [...peers, ...away].map((p) => {
      const li = el('li', 'peer');
      if (awayUids.has(p.UID)) {
        li.classList.add('away');
        li.title = `${p.UN} is away and gets messages on joining again`;
      }
      li.dataset.uid = p.UID;
      const mine = p.UID === myUid;
      const btn = el('button', 'peer-btn');
      btn.type = 'button';
      btn.title = p.UID;
      const avatar = el('span', `avatar ${hueClass(p.UID)}`, initials(p.UN));
      avatar.setAttribute('aria-hidden', 'true');
      // Name over user id, as the Tk client's "Nick (uid)".
      const label = el('span', 'peer-label');
      label.append(el('span', 'peer-name', p.UN), el('span', 'peer-uid', p.UID));
      if (awayUids.has(p.UID)) label.append(el('span', 'away-tag', 'away'));
      btn.append(avatar, label);
      if (mine) {
        li.classList.add('me');
        btn.disabled = true;
        btn.append(el('span', 'you-tag', 'you'));
      } else {
        const on = selected.has(p.UID);
        li.classList.toggle('selected', on);
        btn.setAttribute('aria-pressed', String(on));
        const check = el('span', 'check', '✓');
        check.setAttribute('aria-hidden', 'true');
        btn.append(check);
        btn.addEventListener('click', () => onToggle(p.UID));
      }
      li.append(btn);
      return li;
    });
    // Keep keyboard focus on the same person across a redraw.
    const focusedUid = document.activeElement?.closest?.('#peers li')?.dataset.uid;
    this.peersList.replaceChildren(...items);
    if (focusedUid) {
      this.peersList.querySelector(`li[data-uid="${CSS.escape(focusedUid)}"] button`)?.focus();
    }
    this.peerCount.textContent = peers.length ? String(peers.length) : '';
  }

  /** The "To:" line, coloured like the message it will make (ALL/GROUP/PRIVATE). */
  showRecipients(text, type) {
    this.recipients.textContent = text;
    this.recipients.className = `recipients ${type.toLowerCase()}`;
    this.everyoneBtn.disabled = type === 'ALL';
  }

  // --- rooms -----------------------------------------------------------

  /**
   * The room list: each room with its topic, how many are in it and
   * whether we are; then the private messages. `unread` maps a view to its
   * count; `onPick(name)` opens (or enters) one.
   */
  renderRooms(rooms, current, unread, onPick, direct) {
    this.roomsPanel.hidden = rooms.length === 0;
    const items = rooms.map((r) => {
      const li = el('li', 'room');
      li.dataset.room = r.ROOM;
      li.classList.toggle('in', r.IN);
      li.classList.toggle('current', r.ROOM === current);
      const btn = el('button', 'room-btn');
      btn.type = 'button';
      btn.title = r.IN ? `Open #${r.ROOM}` : `Enter #${r.ROOM}`;
      const label = el('span', 'room-label');
      label.append(el('span', 'room-name', `#${r.ROOM}`));
      if (r.TOPIC) label.append(el('span', 'room-topic-line', r.TOPIC));
      btn.append(label);
      if (!r.IN) btn.append(el('span', 'room-tag', 'enter'));
      const count = el('span', 'room-count', String(r.COUNT));
      count.title = `${r.COUNT} in the room`;
      btn.append(count);
      const n = unread.get(r.ROOM) || 0;
      if (n > 0) btn.append(el('span', 'badge', String(n)));
      btn.setAttribute('aria-current', String(r.ROOM === current));
      btn.addEventListener('click', () => onPick(r.ROOM));
      li.append(btn);
      return li;
    });
    const li = el('li', 'room direct in');
    li.dataset.room = direct;
    li.classList.toggle('current', current === direct);
    const btn = el('button', 'room-btn');
    btn.type = 'button';
    const label = el('span', 'room-label');
    label.append(el('span', 'room-name', 'Private & group'));
    btn.append(label);
    const n = unread.get(direct) || 0;
    if (n > 0) btn.append(el('span', 'badge', String(n)));
    btn.addEventListener('click', () => onPick(direct));
    li.append(btn);
    items.push(li);
    this.roomsList.replaceChildren(...items);
  }

  /** The head of the conversation: the room shown, its topic, Leave. */
  showRoomHead(room, topic, direct) {
    this.roomHead.hidden = room === null;
    if (room === null) return;
    const isDirect = room === direct;
    this.roomTitle.textContent = isDirect ? 'Private & group messages' : `#${room}`;
    this.roomTopic.textContent = isDirect ? '' : (topic || 'No topic');
    this.roomTopic.classList.toggle('none', !topic);
    this.exitRoomBtn.hidden = isDirect;
  }

  /** A refused rooms command, under the room list (null: none). */
  /** The search box, shown while joined. */
  showSearch(visible) {
    this.searchPanel.hidden = !visible;
    if (!visible) this.showSearchResults(null);
  }

  /** A line over the results (null: none). */
  showSearchNote(text, error = false) {
    this.searchNote.hidden = text === null;
    this.searchNote.textContent = text ?? '';
    this.searchNote.classList.toggle('error', error);
  }

  /** The results (null: cleared): room, sender, time, the text with the
   *  matching words marked; a click calls ``onPick(hit)``. */
  showSearchResults(result, nameOf = null, onPick = null) {
    this.searchResults.replaceChildren();
    if (result === null) {
      this.showSearchNote(null);
      return;
    }
    const { hits, more, query } = result;
    const count = hits.length;
    this.showSearchNote(count === 0
      ? `Nothing found for ${query}.`
      : `${count}${more ? '+' : ''} found for ${query}, newest first.`);
    const terms = queryTerms(query);
    for (const hit of hits) {
      const li = el('li', 'search-hit');
      if (hit.id !== null) li.dataset.id = String(hit.id);
      const button = el('button', 'search-open');
      button.type = 'button';
      const meta = el('span', 'search-meta');
      const where = hit.room ? `#${hit.room}` : (hit.type === 'ALL' ? '' : 'private');
      meta.append(
        el('span', 'search-room', where),
        el('span', 'search-from', hit.un || nameOf(hit.from)),
        el('time', 'search-time', hit.ts === null ? '' : formatTime(hit.ts)),
      );
      const body = el('span', 'search-text');
      body.append(...highlighted(hit.text, terms));
      button.append(meta, body);
      button.addEventListener('click', () => onPick(hit));
      li.append(button);
      this.searchResults.append(li);
    }
  }

  /** Scroll to the message with this id when it is shown, and flash it. */
  flashMessage(id) {
    const li = this.messages.querySelector(`li.msg[data-id="${Number(id)}"]`);
    if (!li || li.hidden) return false;
    li.scrollIntoView({ block: 'center' });
    li.classList.add('found');
    setTimeout(() => li.classList.remove('found'), 2000);
    return true;
  }

  showRoomError(text) {
    this.roomError.hidden = text === null;
    this.roomError.textContent = text || '';
  }

  /** Whether a message of view `where` is shown now: every view shows the
   * private and group messages among its room's, as before rooms; the
   * private view shows those only. */
  shows(where) {
    const view = this.view;
    return view === null || where === undefined || where === null
      || where === view || where === '@direct';
  }

  /** Show only the messages of view `view` (null: all of them). */
  showView(view) {
    this.view = view;
    let any = false;
    for (const li of this.messages.children) {
      li.hidden = !this.shows(li.dataset.view);
      if (!li.hidden) any = true;
    }
    this.empty.hidden = any;
    this.scrollToBottom();
  }

  // --- messages --------------------------------------------------------

  clearMessages() {
    this.messages.replaceChildren();
    this.empty.hidden = false;
  }

  /** Build one message's element.  `nameOf(uid)` gives a nickname. */
  messageElement(msg, nameOf, myUid) {
    const kind = msg.type.toLowerCase();
    const li = el('li', `msg ${kind}`);
    if (msg.own) li.classList.add('own');
    if (msg.hist) li.classList.add('hist');
    if (msg.id !== null) li.dataset.id = String(msg.id);
    if (msg.serial !== undefined) li.dataset.serial = String(msg.serial);
    li.dataset.from = msg.from;
    // A replayed message keeps the nickname it was sent with.
    if (msg.un) li.dataset.un = msg.un;

    const fromName = msg.own ? 'You' : (msg.un || nameOf(msg.from));
    if (!msg.own) {
      const avatar = el('span', `avatar ${hueClass(msg.from)}`, initials(fromName));
      avatar.setAttribute('aria-hidden', 'true');
      li.append(avatar);
    }
    const bubble = el('div', 'bubble');
    const meta = el('div', 'meta');
    const from = el('span', 'from', fromName);
    from.title = msg.from;
    meta.append(from);

    let kindText;
    if (msg.own || (msg.type === 'GROUP' && msg.to)) {
      // Say who else it went to; "you" for ourselves in a received group.
      const others = (msg.to || []).filter((u) => u !== msg.from)
        .map((u) => (u === myUid ? 'you' : nameOf(u)));
      kindText = msg.type === 'ALL' ? 'to everyone' : `to ${others.join(', ')}`;
    } else {
      kindText = { ALL: 'to everyone', GROUP: 'group', PRIVATE: 'private' }[msg.type];
    }
    if (msg.type === 'ALL' && msg.room) kindText = `in #${msg.room}`;
    meta.append(el('span', `kind ${kind}`, kindText));

    const time = el('time', 'time', formatTime(msg.ts));
    time.dateTime = new Date(msg.ts).toISOString();
    time.title = new Date(msg.ts).toLocaleString();
    meta.append(time);

    const body = el('div', 'body', msg.text);
    bubble.append(meta, body);
    li.append(bubble);
    return li;
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /**
   * Insert a message in id order: before the first shown message with a
   * larger id, else at the end.  Own messages have no id (the server never
   * echoes them) and stay where they were put, at the end when sent.  So
   * older history lands at the top, a catch-up after a reconnect at the end.
   */
  addMessage(msg, nameOf, myUid, view = null) {
    const node = this.messageElement(msg, nameOf, myUid);
    if (view !== null) node.dataset.view = view;
    node.hidden = !this.shows(view);
    const stick = this.nearBottom() || msg.own;
    let before = null;
    if (msg.id !== null) {
      for (const other of this.messages.children) {
        const oid = other.dataset.id;
        if (oid !== undefined && Number(oid) > msg.id) { before = other; break; }
      }
    }
    if (before) {
      // Keep what the reader is looking at in place while the top grows.
      const prevHeight = this.scroller.scrollHeight;
      const prevTop = this.scroller.scrollTop;
      this.messages.insertBefore(node, before);
      if (!stick) this.scroller.scrollTop = prevTop + (this.scroller.scrollHeight - prevHeight);
    } else {
      this.messages.append(node);
    }
    if (!node.hidden) this.empty.hidden = true;
    if (stick && !before) this.scrollToBottom();
    return node;
  }

  /** Re-render the sender names after the peer list taught us nicknames. */
  refreshNames(nameOf) {
    for (const li of this.messages.querySelectorAll('.msg:not(.own):not([data-un])')) {
      const name = nameOf(li.dataset.from);
      const from = li.querySelector('.from');
      if (from && from.textContent !== name) {
        from.textContent = name;
        const avatar = li.querySelector('.avatar');
        if (avatar) avatar.textContent = initials(name);
      }
    }
  }

  /** Mark our message `serial` as not delivered, with the server's reason. */
  markRefused(serial, why) {
    const li = this.messages.querySelector(`li.msg.own[data-serial="${serial}"]`);
    if (!li) return;
    li.classList.add('refused');
    const note = el('div', 'refused-note', `Not delivered: ${why}`);
    note.setAttribute('role', 'alert');
    li.querySelector('.bubble').append(note);
    if (this.atBottom) this.scrollToBottom();
  }

  showLoadOlder(visible, busy = false) {
    this.loadOlderBtn.hidden = !visible;
    this.loadOlderBtn.disabled = busy;
    this.loadOlderBtn.textContent = busy ? 'Loading…' : 'Load older messages';
  }

  // --- console -----------------------------------------------------------

  /** One line of the activity console; level: info, ok, note, error. */
  log(level, text) {
    const li = el('li', `line ${level}`);
    const t = el('time', 'time', formatTime(Date.now()));
    li.append(t, el('span', 'text', text));
    this.console.append(li);
    // Keep the console bounded: a long session must not grow the DOM forever.
    while (this.console.children.length > 200) this.console.firstElementChild.remove();
    this.console.scrollTop = this.console.scrollHeight;
    // The collapsed panel still shows its latest line in its summary.
    this.consoleLast.textContent = text;
    this.consoleLast.className = `console-last ${level}`;
    if (level === 'error') this.consolePanel.open = true;
  }

  /** Fold the console away (phones, once joined): the chat needs the room. */
  foldConsole() {
    this.consolePanel.open = false;
  }
}
