// Which sent message a server's refusal is about, and the too-long rule.
//
// The same rule as the Tk client's (muca/client/sending.py): an ERROR
// carries no message id and a delivered message gets no answer, but the
// server handles one sender's SENDs in order.  It refuses a message either
// while reading it ("at once": NO_RECIPIENT, UNKNOWN_RECIPIENT naming the
// ids it dropped, FROM_MISMATCH, BAD_COMMAND, FRAME_TOO_LONG, NOT_JOINED,
// SERVER_SHUTDOWN), in the order sent, or after passing it on ("later":
// STORE_UNAVAILABLE, CLUSTER_UNAVAILABLE).  An answer at once goes to the
// oldest message of the last SETTLE_MS that can earn it; a later one to the
// newest passed on (an outage refuses every message from its start on, so
// the newest waiting are the ones it hit).  A message with no refusal
// within SETTLE_MS counts as delivered.

export const SETTLE_MS = 10000;
export const MOST_PENDING = 1000;
const LATER = new Set(['STORE_UNAVAILABLE', 'CLUSTER_UNAVAILABLE']);

/** Bytes of a string in UTF-8 (what the server counts). */
export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

/**
 * The server's too-long rule, stated as the Tk client states it
 * (muca/client/errors.py, too_long_text): the whole SEND frame, in UTF-8
 * bytes, against the server's MAX_FRAME.  Returns null when it fits.
 */
export function tooLong(cmd, maxFrame) {
  const size = utf8Length(JSON.stringify(cmd));
  if (size <= maxFrame) return null;
  let room = maxFrame - utf8Length(JSON.stringify({ ...cmd, MSG: '' }));
  let most = 0;
  let length = 0;
  const sizes = new Map();
  for (const ch of cmd.MSG) {
    length += 1;
    if (room < 0) continue;
    let bytes = sizes.get(ch);
    if (bytes === undefined) {
      bytes = utf8Length(JSON.stringify(ch)) - 2;
      sizes.set(ch, bytes);
    }
    room -= bytes;
    if (room >= 0) most += 1;
  }
  const n = (x) => x.toLocaleString('en-US');
  return `message too long: ${n(size)} bytes, the server takes at most ${n(maxFrame)}` +
    ` (the whole SEND, in UTF-8); the first ${n(most)} of its ${n(length)} characters fit`;
}

/** The ids, in order, that `listed` ("a, b, c") names out of `ids`, or null. */
function subsequence(listed, ids) {
  if (!listed) return null;
  for (let i = 0; i < ids.length; i += 1) {
    const uid = ids[i];
    if (listed === uid) return [uid];
    if (listed.startsWith(`${uid}, `)) {
      const rest = subsequence(listed.slice(uid.length + 2), ids.slice(i + 1));
      if (rest !== null) return [uid, ...rest];
    }
  }
  return null;
}

/** The messages of one connection that the server may still refuse. */
export class SentMessages {
  constructor(me) {
    this.me = me; // [uid, nickname]: a TO of only these earns NO_RECIPIENT
    this.pending = [];
    this.serial = 0;
  }

  sent(to, text, now = Date.now()) {
    this.settle(now);
    this.serial += 1;
    const message = {
      serial: this.serial, to: [...to], text, sentAt: now,
      answered: false, passedOn: true, undelivered: [],
    };
    this.pending.push(message);
    if (this.pending.length > MOST_PENDING) this.pending.shift();
    return message;
  }

  clear() {
    this.pending = [];
  }

  /** {message, code, reason, partial} for a SEND's ERROR, or null. */
  refused(code, reason, now = Date.now()) {
    this.settle(now);
    const pending = this.pending;
    if (LATER.has(code)) {
      const index = pending.findLastIndex((m) => m.passedOn);
      if (index < 0) return null;
      const [message] = pending.splice(index, 1);
      return { message, code, reason, partial: false };
    }
    for (let index = 0; index < pending.length; index += 1) {
      const message = pending[index];
      if (message.answered) continue;
      const dropped = this.earns(message, code, reason);
      if (dropped === null) continue;
      // Read in order: the older ones were read without a refusal.
      for (const older of pending.slice(0, index)) older.answered = true;
      message.answered = true;
      if (code === 'UNKNOWN_RECIPIENT') {
        message.undelivered = dropped;
        if (new Set(dropped).size < new Set(message.to).size) {
          return { message, code, reason, partial: true };
        }
      }
      pending.splice(index, 1);
      message.passedOn = false;
      return { message, code, reason, partial: false };
    }
    return null;
  }

  earns(message, code, reason) {
    if (code === 'NO_RECIPIENT') {
      const mine = message.to.length > 0 && message.to.every((u) => this.me.includes(u));
      return mine ? message.to : null;
    }
    if (code === 'UNKNOWN_RECIPIENT') {
      const at = reason.lastIndexOf(': ');
      return subsequence(at < 0 ? '' : reason.slice(at + 2), message.to);
    }
    return message.to;
  }

  settle(now) {
    while (this.pending.length && now - this.pending[0].sentAt > SETTLE_MS) {
      this.pending.shift();
    }
  }
}
