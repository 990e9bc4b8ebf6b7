// The voice in the browser client (loaded before app.js): the sender's microphone, playing the avatar's voice,
// and its level. The server relays the sender's voice to every viewer, held back by the avatar's latency so it
// is sent with the mouth it belongs to (realtime/stream/lipsync.py); voice and picture arrive in one
// MediaStream, so the browser keeps them in step from there (RTCP sender reports).
'use strict';

// What a voice call asks of a microphone; browsers apply what they offer.
const VOICE_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

// The camera, with the microphone when there is one. A missing or refused microphone is no reason not to send
// the camera: the result then has no audio track, and .voiceError says why.
async function openCameraAndVoice() {
  try {
    return await navigator.mediaDevices.getUserMedia({ video: true, audio: VOICE_CONSTRAINTS });
  } catch (err) {
    const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    camera.voiceError = err.name || String(err);
    return camera;
  }
}

// Play a <video> with its sound. Where the browser refuses sound without a user gesture, play it muted and
// unmute on the first click or key; onBlocked(true) then, onBlocked(false) once the sound plays.
function playWithSound(video, onBlocked) {
  video.muted = false;
  video.play().catch((err) => {
    if (err.name !== 'NotAllowedError') return;
    video.muted = true;
    video.play().catch(() => {});
    if (onBlocked) onBlocked(true);
    const unmute = () => {
      video.muted = false;
      video.play().catch(() => {});
      if (onBlocked) onBlocked(false);
    };
    document.addEventListener('pointerdown', unmute, { once: true });
    document.addEventListener('keydown', unmute, { once: true });
  });
}

// The audio level (0..1) this page measures from getStats: its own microphone for a sender ('media-source'),
// the voice it receives for a viewer ('inbound-rtp'); null without one.
function voiceLevel(report, role) {
  let level = null;
  report.forEach((s) => {
    if (s.kind !== 'audio' || s.audioLevel === undefined) return;
    if ((role === 'sender' && s.type === 'media-source') || (role !== 'sender' && s.type === 'inbound-rtp')) {
      level = s.audioLevel;
    }
  });
  return level;
}

// A level (0..1, or dBFS from the server) as dBFS text.
function dbfs(level, isDb) {
  if (level === null || level === undefined) return '-';
  const db = isDb ? level : (level > 0 ? 20 * Math.log10(level) : -Infinity);
  return db <= -90 ? 'silent' : `${db.toFixed(0)} dBFS`;
}

if (typeof module !== 'undefined') module.exports = { VOICE_CONSTRAINTS, voiceLevel, dbfs };
