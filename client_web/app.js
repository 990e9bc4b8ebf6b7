// Browser client of the realtime avatar server: plain JS, no build step.
// Pages: index.html (send your camera, watch, stats, controls) and view.html
// (the bare avatar video for OBS / call software). The signaling protocol and the
// latency stamp are documented in realtime/stream/signaling.py and latency.py.
'use strict';

const params = new URLSearchParams(typeof location !== 'undefined' ? location.search : '');
const token = params.get('token');

function serverUrl(path, protocol) {
  const url = new URL(path, location.href);
  if (protocol) url.protocol = protocol;
  url.search = token ? '?token=' + encodeURIComponent(token) : '';
  return url.href;
}

// ---- latency stamp (see realtime/stream/latency.py) -------------------------
const STAMP_BITS = 32;
const STAMP_SAMPLE_ROWS = [7, 13];   // rows 0..3 of the strip are a guard, the blocks fill rows 4..15

function crc8(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc ^ 0x55;
}

// rgba: the strip's RGBA pixels (rows x width). Returns the stamp or null.
function decodeStamp(rgba, width, rows) {
  const bw = Math.floor(width / STAMP_BITS);
  if (bw < 4) return null;
  const lo = bw >> 2, hi = Math.max(lo + 1, (3 * bw) >> 2);
  const [r0, r1] = STAMP_SAMPLE_ROWS;
  let stamp = 0, check = 0;
  for (let i = 0; i < STAMP_BITS; i++) {
    let sum = 0, n = 0;
    for (let y = r0; y < r1; y++) {
      for (let x = i * bw + lo; x < i * bw + hi; x++) {
        const p = (y * width + x) * 4;
        sum += rgba[p] + rgba[p + 1] + rgba[p + 2];
        n += 3;
      }
    }
    const bit = sum / n > 127.5 ? 1 : 0;
    if (i < 24) stamp = stamp * 2 + bit; else check = check * 2 + bit;
  }
  return crc8([stamp >> 16, (stamp >> 8) & 0xff, stamp & 0xff]) === check ? stamp : null;
}

// ---- one session with the server -------------------------------------------
// options: {role: 'viewer'|'sender', video: <video>, stream (sender's camera),
//           onStats(msg), onStatus(text, isError), onFrame(info)}
class AvatarSession {
  constructor(options) {
    this.opt = options;
    this.stampRows = 16;
    this.frames = 0;
    this.stamps = 0;
    this.fps = 0;
    this.closed = false;
    this.canvas = document.createElement('canvas');
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
  }

  status(text, isError) { if (this.opt.onStatus) this.opt.onStatus(text, !!isError); }

  async start() {
    this.ws = new WebSocket(serverUrl('ws', location.protocol === 'https:' ? 'wss:' : 'ws:'));
    await new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Error('cannot reach the server (signaling)'));
    });
    this.ws.onmessage = (e) => this.onSignal(JSON.parse(e.data));
    this.ws.onclose = () => {
      if (this.closed) return;
      this.status('signaling connection closed', true);
      if (this.opt.onFailed) this.opt.onFailed();
    };

    const pc = this.pc = new RTCPeerConnection({ iceServers: [] });
    if (this.opt.role === 'sender') {
      pc.addTransceiver(this.opt.stream.getVideoTracks()[0], { direction: 'sendrecv', streams: [this.opt.stream] });
    } else {
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    this.channel = pc.createDataChannel('stats');
    this.channel.onmessage = (e) => this.onChannel(JSON.parse(e.data));
    pc.ontrack = (e) => {
      const video = this.opt.video;
      video.srcObject = new MediaStream([e.track]);
      video.play().catch(() => {});
      video.requestVideoFrameCallback((now, meta) => this.onVideoFrame(now, meta));
    };
    pc.onconnectionstatechange = () => {
      this.status('connection ' + pc.connectionState, pc.connectionState === 'failed');
      if (pc.connectionState === 'failed' && this.opt.onFailed) this.opt.onFailed();
    };
    await pc.setLocalDescription();
    await this.iceGathered(5000);   // no trickle ICE: all candidates go in the offer
    this.ws.send(JSON.stringify({ type: 'offer', sdp: pc.localDescription.sdp, role: this.opt.role }));
    this.reportTimer = setInterval(() => this.report(), 1000);
    this.status('connecting...');
  }

  iceGathered(timeoutMs) {
    const pc = this.pc;
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, timeoutMs);
    });
  }

  async onSignal(msg) {
    if (msg.type === 'answer') {
      this.stampRows = msg.stamp_rows || this.stampRows;
      await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    } else if (msg.type === 'error') {
      this.status('server: ' + msg.message, true);
    } else if (msg.type === 'bye') {
      this.status('session ended' + (msg.reason ? ': ' + msg.reason : ''), true);
      if (this.opt.onFailed) this.opt.onFailed();
    }
  }

  onChannel(msg) {
    if (msg.type === 'ping') this.send({ type: 'pong', t: msg.t });
    else if (msg.type === 'stats' && this.opt.onStats) this.opt.onStats(msg);
    else if (msg.type === 'error') this.status('server: ' + msg.message, true);
  }

  send(msg) {
    if (this.channel && this.channel.readyState === 'open') this.channel.send(JSON.stringify(msg));
  }

  // Called once per presented video frame: read the stamp, echo it, count the frame.
  onVideoFrame(now, meta) {
    if (this.closed) return;
    const video = this.opt.video;
    const w = meta.width, h = meta.height, rows = this.stampRows;
    if (w && h > rows) {
      if (this.canvas.width !== w || this.canvas.height !== rows) {
        this.canvas.width = w;
        this.canvas.height = rows;
      }
      this.ctx.drawImage(video, 0, h - rows, w, rows, 0, 0, w, rows);
      const stamp = decodeStamp(this.ctx.getImageData(0, 0, w, rows).data, w, rows);
      if (stamp !== null) {
        this.stamps++;
        this.send({ type: 'stamp', stamp, held_ms: Math.max(0, performance.now() - now) });
      }
      this.frames++;
      if (this.opt.onFrame) this.opt.onFrame({ width: w, height: h - rows });
    }
    video.requestVideoFrameCallback((t, m) => this.onVideoFrame(t, m));
  }

  report() {
    const now = performance.now();
    if (this.lastReport) this.fps = (this.frames - this.lastReport.frames) * 1000 / (now - this.lastReport.t);
    this.lastReport = { frames: this.frames, t: now };
    this.send({ type: 'client', frames: this.frames, fps: Math.round(this.fps * 100) / 100 });
  }

  control(action, fields) { this.send(Object.assign({ type: 'control', action }, fields || {})); }

  close() {
    this.closed = true;
    clearInterval(this.reportTimer);
    if (this.pc) this.pc.close();
    if (this.ws) this.ws.close();
  }
}

// Crop the stamp strip: the stage shows the picture's aspect ratio and hides the rest.
function fitStage(stage, width, height) {
  stage.style.setProperty('--ar', width / height);
}

// msg: the server's stats message; msg.producer is realtime/meters.py's ProducerStats, field by field.
function formatStats(msg, session) {
  const ms = (s) => (s && s.p50 !== null ? `${s.p50.toFixed(0)} / ${s.p95.toFixed(0)} ms` : '-');
  const lines = [
    `server fps      ${msg.fps.toFixed(1)}   client fps ${session.fps.toFixed(1)}`,
    `glass-to-glass  ${ms(msg.session.glass_to_glass_ms)}  (p50 / p95)`,
    `processing      ${ms(msg.processing_ms)}`,
  ];
  for (const [name, s] of Object.entries(msg.stages_ms)) lines.push(`  ${name.padEnd(14)}${ms(s)}`);
  lines.push(`drops           viewer ${msg.session.frames_skipped}  input ${msg.producer.input_drops ?? '-'}`);
  lines.push(`rtt ${msg.session.rtt_ms ?? '-'} ms   sessions ${msg.sessions}/${msg.max_sessions}`);
  return lines.join('\n');
}

// ---- pages ----------------------------------------------------------------
function initViewPage() {
  const stage = document.getElementById('stage');
  const video = document.getElementById('avatar');
  let session = null, timer = null;
  const retry = () => {   // reconnect after a failure, once (a browser source should heal itself)
    if (!timer) timer = setTimeout(() => { timer = null; start(); }, 2000);
  };
  const start = () => {
    if (session) session.close();
    session = new AvatarSession({
      role: 'viewer', video,
      onFrame: (f) => fitStage(stage, f.width, f.height),
      onFailed: retry,
    });
    session.start().catch(retry);
  };
  start();
}

function initMainPage() {
  const $ = (id) => document.getElementById(id);
  const stage = $('stage'), video = $('avatar'), preview = $('preview');
  const statusEl = $('status'), statsEl = $('stats'), avatarSel = $('avatar-select');
  let session = null, camera = null;

  const setStatus = (text, isError) => {
    statusEl.textContent = text;
    statusEl.classList.toggle('error', isError);
  };
  const onStats = (msg) => {
    statsEl.textContent = formatStats(msg, session);
    const avatars = msg.producer.avatars;
    if (Array.isArray(avatars) && avatarSel.options.length !== avatars.length) {
      avatarSel.replaceChildren(...avatars.map((name) => new Option(name, name)));
      avatarSel.hidden = false;
    }
  };
  const stop = () => {
    if (session) session.close();
    session = null;
    if (camera) camera.getTracks().forEach((t) => t.stop());
    camera = null;
    preview.srcObject = null;
    preview.hidden = true;
    document.body.dataset.state = 'idle';
  };
  const start = async (role) => {
    stop();
    try {
      if (role === 'sender') {
        camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
        preview.srcObject = camera;
        preview.hidden = false;
      }
      session = new AvatarSession({
        role, video, stream: camera, onStats, onStatus: setStatus,
        onFrame: (f) => fitStage(stage, f.width, f.height),
      });
      window.avatarSession = session;
      document.body.dataset.state = role;
      await session.start();
    } catch (err) {
      setStatus(String(err.message || err), true);
    }
  };

  $('send').onclick = () => start('sender');
  $('watch').onclick = () => start('viewer');
  $('stop').onclick = stop;
  $('recalibrate').onclick = () => session && session.control('recalibrate');
  $('background').oninput = (e) => session && session.control('background', { color: e.target.value });
  avatarSel.onchange = () => session && session.control('avatar', { name: avatarSel.value });
  $('toggle-stats').onclick = () => { statsEl.hidden = !statsEl.hidden; };
  $('view-link').href = serverUrl('view');

  const auto = params.get('autostart');
  if (auto === 'sender' || auto === 'viewer') start(auto);
}

if (typeof document !== 'undefined') {
  if (document.body.dataset.page === 'view') initViewPage(); else initMainPage();
} else if (typeof module !== 'undefined') {
  module.exports = { crc8, decodeStamp };   // for the stamp decoder's test under node
}
