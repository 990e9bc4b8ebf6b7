// Capture times beside the frames: the browser's twin of realtime/stream/frametimes.py (same rules, same
// limits; a test feeds both the same sequences). The server announces {pts, capture_ms} for each frame it
// sends; a shown frame carries rtpTimestamp = (pts + offset) mod 2**32 with an offset fixed per session but
// unknown here, found as the difference that explains the most recently shown frames (more than twice as
// many as any other difference).
'use strict';

const FRAMETIMES = { MAX_FRAMES: 128, MAX_PENDING: 16, RECENT: 8, MIN_MATCHES: 3 };

class FrameTimes {
  constructor() {
    this.capture = new Map();   // pts -> capture_ms, oldest first
    this.pending = [];          // [rtp, token] shown, waiting for their message
    this.recent = [];           // rtp of the last RECENT shown frames
    this.offset = null;
    this.matched = 0;
    this.unmatched = 0;
  }

  // The server's message for frame pts. Returns [[token, capture_ms], ...] newly resolved.
  announce(pts, captureMs) {
    this.capture.set(pts >>> 0, captureMs);
    if (this.capture.size > FRAMETIMES.MAX_FRAMES) this.capture.delete(this.capture.keys().next().value);
    return this.resolve();
  }

  // A frame shown with this RTP timestamp; token comes back with its capture time once known.
  shown(rtpTimestamp, token) {
    const rtp = rtpTimestamp >>> 0;
    this.recent.push(rtp);
    if (this.recent.length > FRAMETIMES.RECENT) this.recent.shift();
    this.pending.push([rtp, token]);
    if (this.pending.length > FRAMETIMES.MAX_PENDING) {
      this.pending.shift();
      this.unmatched++;
      if (this.offset !== null && this.pending.every(([r]) => this.lookup(r) === undefined)) this.offset = null;
    }
    return this.resolve();
  }

  lookup(rtp) { return this.capture.get((rtp - this.offset) >>> 0); }

  findOffset() {
    const shown = new Set(this.recent);
    if (shown.size < FRAMETIMES.MIN_MATCHES) return null;
    const votes = new Map();
    for (const r of shown) {
      for (const p of this.capture.keys()) {
        const d = (r - p) >>> 0;
        votes.set(d, (votes.get(d) || 0) + 1);
      }
    }
    let best = null, bestVotes = 0, secondVotes = 0;
    for (const [d, n] of votes) {
      if (n > bestVotes) {
        secondVotes = bestVotes;
        best = d;
        bestVotes = n;
      } else if (n > secondVotes) {
        secondVotes = n;
      }
    }
    return bestVotes >= FRAMETIMES.MIN_MATCHES && bestVotes > 2 * secondVotes ? best : null;
  }

  resolve() {
    if (this.offset === null) {
      this.offset = this.findOffset();
      if (this.offset === null) return [];
    }
    const done = [], waiting = [];
    for (const [rtp, token] of this.pending) {
      const capture = this.lookup(rtp);
      if (capture === undefined) waiting.push([rtp, token]); else done.push([token, capture]);
    }
    this.pending = waiting;
    this.matched += done.length;
    return done;
  }
}

if (typeof module !== 'undefined') module.exports = { FrameTimes, FRAMETIMES };
