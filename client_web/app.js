// Browser client of the realtime avatar server: plain JS, no build step.
// Pages: index.html (send your camera, watch, stats, controls) and view.html
// (the bare avatar video for OBS / call software). The signaling protocol and how
// capture times travel beside the frames are documented in realtime/stream/signaling.py
// and latency.py; frametimes.js (loaded first) matches shown frames with them.
'use strict';

const params = new URLSearchParams(location.search);
const token = params.get('token');

function serverUrl(path, protocol) {
  const url = new URL(path, location.href);
  if (protocol) url.protocol = protocol;
  url.search = token ? '?token=' + encodeURIComponent(token) : '';
  return url.href;
}

// ---- what the page shows --------------------------------------------------
// A shown frame measured as the viewer sees it (drawn from the <video> into a canvas, at most MAX_SIDE pixels a
// side): its mean colour, its spread (the standard deviation of the pixel values, each channel around its own
// mean, averaged over the channels: 0 for a flat picture) and its change since the previous measure (the mean
// absolute difference per pixel and channel: 0 for a frozen picture). Values in 0..255, one decimal.
class PictureMeter {
  constructor(maxSide = 256) {
    this.maxSide = maxSide;
    this.canvas = document.createElement('canvas');
    this.previous = null;
  }

  measure(video, width, height) {
    const scale = Math.min(1, this.maxSide / Math.max(width, height, 1));
    const w = Math.max(1, Math.round(width * scale)), h = Math.max(1, Math.round(height * scale));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.previous = null;
    }
    const ctx = this.canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, w, h);
    const px = ctx.getImageData(0, 0, w, h).data;   // RGBA
    const prev = this.previous;
    const sum = [0, 0, 0], squares = [0, 0, 0];
    let diff = 0;
    for (let i = 0; i < px.length; i += 4) {
      for (let c = 0; c < 3; c++) {
        const v = px[i + c];
        sum[c] += v;
        squares[c] += v * v;
        if (prev) diff += Math.abs(v - prev[i + c]);
      }
    }
    this.previous = px;
    const n = w * h, round = (x) => Math.round(x * 10) / 10;
    const mean = sum.map((s) => s / n);
    const variance = squares.reduce((acc, q, c) => acc + Math.max(0, q / n - mean[c] * mean[c]), 0) / 3;
    const picture = { mean_rgb: mean.map(round), spread: round(Math.sqrt(variance)) };
    if (prev) picture.change = round(diff / (3 * n));
    return picture;
  }
}

// ---- one session with the server -------------------------------------------
// options: {role: 'viewer'|'sender', video: <video>, stream (sender's camera, and microphone when it has one),
//           onStats(msg), onStatus(text, isError), onFrame(info)}
class AvatarSession {
  constructor(options) {
    this.opt = options;
    this.frameTimes = new FrameTimes();
    this.frames = 0;
    this.fps = 0;
    this.size = null;            // {width, height} of the last shown frame
    this.keyframeAsks = 0;       // the decoder's PLI + FIR count, from getStats
    this.meter = new PictureMeter();
    this.picture = null;         // the last measure of a shown frame (PictureMeter), reported with the counters
    this.measureDue = true;      // measure the next shown frame (once a report)
    this.audioLevel = null;      // 0..1: the microphone's (sender) or the received voice's (viewer), from getStats
    this.closed = false;
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
      const stream = this.opt.stream, mic = stream.getAudioTracks()[0];
      pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendrecv', streams: [stream] });
      if (mic) pc.addTransceiver(mic, { direction: 'sendonly', streams: [stream] });   // never played back here
    } else {
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });   // the voice (voice.js)
    }
    this.channel = pc.createDataChannel('stats');
    this.channel.onmessage = (e) => this.onChannel(JSON.parse(e.data));
    pc.ontrack = (e) => {
      // voice and picture play from the one stream the server puts them in, so the browser syncs them
      const video = this.opt.video, stream = e.streams[0] || (this.remote = this.remote || new MediaStream());
      if (!stream.getTracks().includes(e.track)) stream.addTrack(e.track);
      if (video.srcObject !== stream) video.srcObject = stream;
      if (this.opt.role === 'sender') video.play().catch(() => {});
      else playWithSound(video, (blocked) => this.status(blocked ? 'click the page for sound' : 'sound on'));
      if (e.track.kind === 'video') video.requestVideoFrameCallback((now, meta) => this.onVideoFrame(now, meta));
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
      await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    } else if (msg.type === 'error') {
      this.status('server: ' + msg.message, true);
    } else if (msg.type === 'bye') {
      this.status('session ended' + (msg.reason ? ': ' + msg.reason : ''), true);
      if (this.opt.onFailed) this.opt.onFailed();
    }
  }

  onChannel(msg) {
    if (msg.type === 'frame') this.echo(this.frameTimes.announce(msg.pts, msg.capture_ms));
    else if (msg.type === 'ping') this.send({ type: 'pong', t: msg.t });
    else if (msg.type === 'stats' && this.opt.onStats) this.opt.onStats(msg);
    else if (msg.type === 'error') this.status('server: ' + msg.message, true);
  }

  send(msg) {
    if (this.channel && this.channel.readyState === 'open') this.channel.send(JSON.stringify(msg));
  }

  // Called once per presented video frame: count it and match it (by its RTP timestamp) with its capture time.
  onVideoFrame(now, meta) {
    if (this.closed) return;
    this.frames++;
    this.size = { width: meta.width, height: meta.height };
    if (this.measureDue && this.opt.video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA) {
      this.measureDue = false;
      try {
        this.picture = this.meter.measure(this.opt.video, meta.width, meta.height);
      } catch (err) {    // a page that cannot read its own video still shows it
        console.warn('cannot measure the shown picture:', err);
      }
    }
    if (meta.rtpTimestamp !== undefined) {
      this.echo(this.frameTimes.shown(meta.rtpTimestamp, { display: meta.expectedDisplayTime }));
    }
    if (this.opt.onFrame) this.opt.onFrame(this.size);
    this.opt.video.requestVideoFrameCallback((t, m) => this.onVideoFrame(t, m));
  }

  // Echo the capture time of each frame now matched; held_ms runs from its expected display time.
  echo(resolved) {
    for (const [token, captureMs] of resolved) {
      this.send({ type: 'shown', capture_ms: captureMs, held_ms: performance.now() - token.display });
    }
  }

  async report() {
    const now = performance.now();
    if (this.lastReport) this.fps = (this.frames - this.lastReport.frames) * 1000 / (now - this.lastReport.t);
    this.lastReport = { frames: this.frames, t: now };
    const counters = { type: 'client', frames: this.frames, fps: Math.round(this.fps * 100) / 100,
                       matched: this.frameTimes.matched };
    this.send(Object.assign(counters, this.size || {}, this.picture || {}));
    this.picture = null;          // each report carries a frame shown since the one before, or none
    this.measureDue = true;
    await this.askForKeyframe();
    if (this.pc && this.pc.connectionState === 'connected') {
      this.audioLevel = voiceLevel(await this.pc.getStats(), this.opt.role);
    }
  }

  // Every viewer shares one encoded stream, and the server cannot see this decoder's RTCP keyframe requests
  // (PLI/FIR): when the browser sent new ones, ask on the data channel as well.
  async askForKeyframe() {
    if (!this.pc || this.pc.connectionState !== 'connected') return;
    let asks = 0;
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') asks += (s.pliCount || 0) + (s.firCount || 0);
    });
    if (asks > this.keyframeAsks) this.send({ type: 'keyframe' });
    this.keyframeAsks = asks;
  }

  control(action, fields) { this.send(Object.assign({ type: 'control', action }, fields || {})); }

  close() {
    this.closed = true;
    clearInterval(this.reportTimer);
    if (this.pc) this.pc.close();
    if (this.ws) this.ws.close();
  }
}

// The stage takes the picture's aspect ratio.
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
  const voice = msg.voice;
  if (voice) {   // realtime/stream/audio.py's VoiceRelay.stats(); the A/V offset is the voice's, as it leaves
    const here = session.opt.role === 'sender' ? 'mic' : 'heard';
    lines.push(`voice           ${here} ${dbfs(session.audioLevel)}  server ${dbfs(voice.level_dbfs, true)}`);
    lines.push(`  delay ${voice.delay_ms.toFixed(0)} ms   A/V offset ${ms(voice.av_offset_ms)}` +
               `${voice.delay_capped ? '  (capped)' : ''}`);
  }
  return lines.join('\n');
}

// ---- pages ----------------------------------------------------------------
function initViewPage() {
  const stage = document.getElementById('stage');
  const video = document.getElementById('avatar');
  let session = null, timer = null;
  const volume = Number(params.get('volume'));   // ?volume=0..1, the voice's volume (default 1)
  if (params.has('volume') && volume >= 0 && volume <= 1) video.volume = volume;
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
  const muteBtn = $('mute'), volumeEl = $('volume');
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
    muteBtn.hidden = true;
    document.body.dataset.state = 'idle';
  };
  const start = async (role) => {
    stop();
    try {
      if (role === 'sender') {
        camera = await openCameraAndVoice();
        preview.srcObject = camera;
        preview.hidden = false;
        muteBtn.hidden = !camera.getAudioTracks().length;
        setMuted(false);
      }
      session = new AvatarSession({
        role, video, stream: camera, onStats, onStatus: setStatus,
        onFrame: (f) => fitStage(stage, f.width, f.height),
      });
      window.avatarSession = session;
      document.body.dataset.state = role;
      await session.start();
      if (camera && camera.voiceError) setStatus(`no microphone (${camera.voiceError}): sending the camera only`, true);
    } catch (err) {
      setStatus(String(err.message || err), true);
    }
  };
  // Mute: the microphone track is disabled, so the browser sends silence and the viewers hear none.
  const setMuted = (muted) => {
    if (camera) camera.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    muteBtn.textContent = muted ? 'Unmute' : 'Mute';
    muteBtn.setAttribute('aria-pressed', String(muted));
  };

  $('send').onclick = () => start('sender');
  $('watch').onclick = () => start('viewer');
  $('stop').onclick = stop;
  $('recalibrate').onclick = () => session && session.control('recalibrate');
  $('background').oninput = (e) => session && session.control('background', { color: e.target.value });
  avatarSel.onchange = () => session && session.control('avatar', { name: avatarSel.value });
  $('toggle-stats').onclick = () => { statsEl.hidden = !statsEl.hidden; };
  muteBtn.onclick = () => setMuted(muteBtn.getAttribute('aria-pressed') !== 'true');
  volumeEl.oninput = () => { video.volume = Number(volumeEl.value); };
  $('view-link').href = serverUrl('view');

  const auto = params.get('autostart');
  if (auto === 'sender' || auto === 'viewer') start(auto);
}

if (document.body.dataset.page === 'view') initViewPage(); else initMainPage();
