// The A/V sync benchmark's probe (benchmarks/bench_av_sync.py injects it into a page over the DevTools protocol;
// it is no part of the product pages). It watches one <video> element of the page as the page plays it: the
// picture through requestVideoFrameCallback (a flash: the frame's mean brightness crossing up through
// FLASH_LEVEL), the sound through an AudioWorklet on the element's audio track (a click: a sample louder than
// CLICK_LEVEL after QUIET_S of quiet). Times are epoch milliseconds (performance.timeOrigin + performance time),
// the same clock in every page of the machine: a flash at the frame's expected display time (and, for a camera,
// its capture time), a click at the time the page's audio output plays that sample (AudioContext.
// getOutputTimestamp maps the context's clock onto performance time, output latency included) and at the time
// the audio graph took it in (that, less the output and base latencies).
'use strict';

(() => {
  const FLASH_LEVEL = 128, CLICK_LEVEL = 0.1, QUIET_S = 0.25, MAX_EVENTS = 1000;
  const probe = { flashes: [], clicks: [], frames: 0, audioBlocks: 0, peak: 0, error: null, started: false };
  window.avProbe = probe;
  const epoch = (perfMs) => performance.timeOrigin + perfMs;
  const keep = (list, item) => { if (list.length < MAX_EVENTS) list.push(item); };

  function watchPicture(video) {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 16;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    let bright = false;
    const onFrame = (now, meta) => {
      probe.frames++;
      ctx.drawImage(video, 0, 0, 16, 16);
      const px = ctx.getImageData(0, 0, 16, 16).data;
      let sum = 0;
      for (let i = 0; i < px.length; i += 4) sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
      const level = sum / (px.length / 4);
      if (!bright && level > FLASH_LEVEL) {
        keep(probe.flashes, { t: epoch(meta.expectedDisplayTime), level,
                              capture: meta.captureTime === undefined ? null : epoch(meta.captureTime) });
      }
      bright = level > FLASH_LEVEL;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  const WORKLET = `
    class Clicks extends AudioWorkletProcessor {
      constructor() { super(); this.quiet = 0; this.blocks = 0; this.peak = 0; }
      process(inputs) {
        const channel = inputs[0] && inputs[0][0];
        if (!channel) return true;
        let peak = this.peak;
        for (let i = 0; i < channel.length; i++) {
          const a = Math.abs(channel[i]);
          if (a > peak) peak = a;
          if (a > ${CLICK_LEVEL}) {
            if (this.quiet >= ${QUIET_S} * sampleRate) this.port.postMessage({ frame: currentFrame + i });
            this.quiet = 0;
          } else {
            this.quiet++;
          }
        }
        this.peak = peak;
        if (++this.blocks % 100 === 0) {   // the loudest sample of the last 100 blocks, for the report
          this.port.postMessage({ peak, blocks: 100 });
          this.peak = 0;
        }
        return true;
      }
    }
    registerProcessor('clicks', Clicks);`;

  async function watchSound(track) {
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([WORKLET], { type: 'application/javascript' })));
    const node = new AudioWorkletNode(ctx, 'clicks');
    node.port.onmessage = (e) => {
      if (e.data.peak !== undefined) {
        probe.audioBlocks += e.data.blocks;
        probe.peak = Math.max(probe.peak, e.data.peak);
        return;
      }
      const at = ctx.getOutputTimestamp();
      const t = epoch(at.performanceTime + (e.data.frame / ctx.sampleRate - at.contextTime) * 1000);
      // heard at t; taken in (processed by the graph) its output and base latency earlier
      keep(probe.clicks, { t, taken: t - (ctx.outputLatency + ctx.baseLatency) * 1000 });
    };
    ctx.createMediaStreamSource(new MediaStream([track])).connect(node);
    node.connect(ctx.destination);   // a worklet runs only while pulled; it outputs silence
    await ctx.resume();
    probe.sampleRate = ctx.sampleRate;
    probe.outputLatency = ctx.outputLatency;
  }

  probe.start = (videoId) => {
    const poll = setInterval(() => {
      const video = document.getElementById(videoId);
      const stream = video && video.srcObject;
      if (!stream || !stream.getVideoTracks().length || !stream.getAudioTracks().length) return;
      clearInterval(poll);
      probe.started = true;
      watchPicture(video);
      watchSound(stream.getAudioTracks()[0]).catch((err) => { probe.error = String(err); });
    }, 100);
  };
})();
