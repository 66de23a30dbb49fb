// The codec worker: owns the onnxruntime-web sessions and runs, off the page's main thread,
//   live:  device-rate blocks from the AudioWorklet -> resample to the model rate -> encoder
//          step -> packet (bit-packed codes) -> decoder step -> resample back -> AudioWorklet
//   jobs:  a whole signal at the model rate, frame by frame (file mode, tests)
// Every ONNX run goes through one queue, so live frames and jobs never overlap.

import { StepCodec } from './codec.js';
import { Resampler, codeBits, packCodes, unpackCodes } from './dsp.js';

let ort = null;
let codec = null;
let queue = Promise.resolve();
let live = null;

const post = (msg, transfer = []) => self.postMessage(msg, transfer);
const now = () => performance.now();

function enqueue(fn) {
  const p = queue.then(fn);
  queue = p.catch(() => {});
  return p;
}

function fail(where, e) {
  post({ type: 'error', where, message: (e && e.message) || String(e) });
}

async function init({ modelBase, ortBase, threads }) {
  try {
    ort = await import(ortBase + 'ort.wasm.min.mjs');
  } catch (e) {
    throw new Error(`could not load onnxruntime-web from ${ortBase} (${e.message}); run ` +
      '`dwancodec web --setup` on the server');
  }
  ort.env.wasm.wasmPaths = ortBase;
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  const t0 = now();
  codec = await StepCodec.load(ort, modelBase, { onProgress: (m) => post({ type: 'progress', message: m }) });
  const loadMs = now() - t0;
  // Warm-up: the browser compiles WebAssembly twice (a quick baseline, then optimized code in
  // the background for the functions that run often). Steps of noise let that happen before
  // the first real frame: at least 1 s, then on while a window of 10 steps is still >15 %
  // faster than the one before (at most 6 s).
  const t1 = now();
  const st = newStreams();
  const noise = new Float32Array(codec.c.stepSamples);
  let steps = 0, windowStart = now(), previous = Infinity;
  for (;;) {
    for (let i = 0; i < noise.length; i++) noise[i] = 0.1 * (Math.random() - 0.5);
    await codecStep(st, noise, codec.c.encoderNq);
    if (++steps % 10) continue;
    const mean = (now() - windowStart) / 10;
    windowStart = now();
    const improving = mean < 0.85 * previous;
    previous = mean;
    if (now() - t1 > 6000 || (now() - t1 > 1000 && !improving)) break;
  }
  const info = codec.info();
  info.loadMs = loadMs;
  info.warmupMs = now() - t1;
  info.warmupSteps = steps;
  info.threads = threads;
  info.crossOriginIsolated = self.crossOriginIsolated;
  info.kbpsPerStage = codec.kbps(1);
  post({ type: 'ready', info });
}

/** Encode + decode one step; codes travel as a packet of bit-packed indices. */
async function codecStep(st, pcm, nq) {
  const t0 = now();
  const e = await codec.encodeStep(pcm, st.enc);
  st.enc = e.state;
  const t1 = now();
  const k = codec.c.framesPerStep;
  const packet = packCodes(e.codes, nq * k, st.bits);  // first nq stages (stage-major)
  const received = unpackCodes(packet, nq * k, st.bits);
  const d = await codec.decodeStep(received, nq, st.dec);
  st.dec = d.state;
  const t2 = now();
  return { codes: e.codes, latents: e.latents, audio: d.audio, packetBytes: packet.length,
    encMs: t1 - t0, decMs: t2 - t1 };
}

function newStreams() {
  return { enc: codec.initialState('encoder'), dec: codec.initialState('decoder'),
    bits: codeBits(codec.c.codebookSize) };
}

// ---------------------------------------------------------------------------------------
// Jobs: a whole signal, frame by frame, from a zero state (file mode; tests compare this with
// the Python runtime's OnnxStreamingEncoder/Decoder push + flush).

async function job({ id, pcm, nq, latents: wantLatents }) {
  const c = codec.c, k = c.framesPerStep, step = c.stepSamples;
  nq = Math.max(1, Math.min(c.encoderNq, nq | 0 || c.encoderNq));
  const frames = Math.ceil(pcm.length / c.hop);
  const steps = Math.ceil(frames / k);
  const st = newStreams();
  const codes = new Int32Array(nq * frames);        // stage-major [nq][frames]
  const audio = new Float32Array(frames * c.hop);
  const D = c.enc.latents ? c.enc.latents.dims[1] : 0;
  const lat = wantLatents && D ? new Float32Array(D * frames) : null;  // [D][frames]
  const frame = new Float32Array(step);
  const stepMs = [];
  let bytes = 0;
  for (let s = 0; s < steps; s++) {
    frame.fill(0);
    frame.set(pcm.subarray(s * step, Math.min(pcm.length, (s + 1) * step)));
    const r = await codecStep(st, frame, nq);
    stepMs.push(r.encMs + r.decMs);
    if (s % 250 === 249) post({ type: 'progress', message: `coding: ${Math.round(100 * s / steps)} %` });
    bytes += r.packetBytes;
    for (let t = 0; t < k; t++) {
      const f = s * k + t;
      if (f >= frames) break;
      for (let q = 0; q < nq; q++) codes[q * frames + f] = r.codes[q * k + t];
      if (lat) for (let j = 0; j < D; j++) lat[j * frames + f] = r.latents[j * k + t];
      audio.set(r.audio.subarray(t * c.hop, (t + 1) * c.hop), f * c.hop);
    }
  }
  const total = stepMs.reduce((a, b) => a + b, 0);
  const result = { id, frames, nq, codes, audio, latents: lat, stepMs: Float64Array.from(stepMs),
    computeMs: total, audioMs: frames * 1000 / c.frameRate, packetBytes: bytes };
  post({ type: 'job-done', ...result },
    [codes.buffer, audio.buffer, result.stepMs.buffer, ...(lat ? [lat.buffer] : [])]);
}

// ---------------------------------------------------------------------------------------
// Live

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function liveStart({ port, ctxRate, nq, recordSeconds = 20 }) {
  if (live) liveStop();
  const c = codec.c;
  const recFrames = Math.ceil(recordSeconds * c.frameRate);
  live = {
    port, ctxRate, nq, st: newStreams(),
    rsIn: new Resampler(ctxRate, c.sampleRate), rsOut: new Resampler(c.sampleRate, ctxRate),
    pending: new Float32Array(0), frames: 0, computeMs: 0, encMs: 0, decMs: 0, bytes: 0,
    recent: [], maxMs: 0, startedAt: now(), deviceSamples: 0,
    rec: { frames: 0, max: recFrames, input: new Float32Array(recFrames * c.hop),
      codes: new Int32Array(recFrames * c.encoderNq), nq: new Uint8Array(recFrames),
      D: c.enc.latents ? c.enc.latents.dims[1] : 0,
      latents: new Float32Array(c.enc.latents ? recFrames * c.enc.latents.dims[1] : 0),
      audio: new Float32Array(recFrames * c.hop) },
    viewIn: [], viewOut: [], lastStats: 0,
  };
  port.onmessage = (e) => {
    if (e.data.type === 'in') onInput(e.data.samples);
  };
  port.start();
}

function onInput(samples) {
  const L = live;
  if (!L) return;
  L.deviceSamples += samples.length;
  const x = L.rsIn.push(samples);
  const merged = new Float32Array(L.pending.length + x.length);
  merged.set(L.pending);
  merged.set(x, L.pending.length);
  L.pending = merged;
  const step = codec.c.stepSamples;
  while (L.pending.length >= step) {
    const frame = L.pending.slice(0, step);
    L.pending = L.pending.subarray(step);
    enqueue(() => liveFrame(L, frame)).catch((e) => fail('live', e));
  }
}

async function liveFrame(L, frame) {
  if (live !== L) return;  // stopped meanwhile
  const c = codec.c, k = c.framesPerStep, nq = L.nq;
  const r = await codecStep(L.st, frame, nq);
  const out = L.rsOut.push(r.audio);
  L.port.postMessage({ type: 'out', samples: out }, [out.buffer]);
  const ms = r.encMs + r.decMs;
  L.frames += k;
  L.computeMs += ms;
  L.encMs += r.encMs;
  L.decMs += r.decMs;
  L.maxMs = Math.max(L.maxMs, ms);
  L.bytes += r.packetBytes;
  L.recent.push(ms);
  if (L.recent.length > 500) L.recent.shift();
  const R = L.rec;
  for (let t = 0; t < k && R.frames < R.max; t++, R.frames++) {
    const f = R.frames;
    R.input.set(frame.subarray(t * c.hop, (t + 1) * c.hop), f * c.hop);
    R.audio.set(r.audio.subarray(t * c.hop, (t + 1) * c.hop), f * c.hop);
    for (let q = 0; q < c.encoderNq; q++) R.codes[f * c.encoderNq + q] = r.codes[q * k + t];
    for (let j = 0; j < R.D; j++) R.latents[f * R.D + j] = r.latents[j * k + t];
    R.nq[f] = nq;
  }
  L.viewIn.push(frame);
  L.viewOut.push(Float32Array.from(r.audio));
  if (L.viewIn.length >= 2) {
    const cat = (list) => {
      const o = new Float32Array(list.reduce((a, b) => a + b.length, 0));
      let p = 0;
      for (const b of list) { o.set(b, p); p += b.length; }
      return o;
    };
    const a = cat(L.viewIn), b = cat(L.viewOut);
    L.viewIn = [];
    L.viewOut = [];
    post({ type: 'audio', input: a, output: b }, [a.buffer, b.buffer]);
  }
  if (now() - L.lastStats > 250) {
    L.lastStats = now();
    post({ type: 'stats', stats: liveStats(L) });
  }
}

function liveStats(L) {
  const c = codec.c;
  const frameMs = 1000 / c.frameRate;
  const sorted = [...L.recent].sort((a, b) => a - b);
  const audioMs = L.frames * frameMs;
  return {
    frames: L.frames, seconds: audioMs / 1000, nq: L.nq,
    kbps: codec.kbps(L.nq), packedKbps: audioMs ? L.bytes * 8 / audioMs : 0,
    meanMs: L.frames ? L.computeMs / (L.frames / c.framesPerStep) : 0,
    encMs: L.frames ? L.encMs / (L.frames / c.framesPerStep) : 0,
    decMs: L.frames ? L.decMs / (L.frames / c.framesPerStep) : 0,
    p50Ms: percentile(sorted, 0.5), p95Ms: percentile(sorted, 0.95), maxMs: L.maxMs,
    rtf: audioMs ? L.computeMs / audioMs : 0,
    codecLatencyMs: c.latencyMs + (c.framesPerStep - 1) * frameMs,
    resampleMs: 1000 * (L.rsIn.delaySeconds + L.rsOut.delaySeconds),
    ctxRate: L.ctxRate, modelRate: c.sampleRate,
    wallSeconds: (now() - L.startedAt) / 1000, deviceSeconds: L.deviceSamples / L.ctxRate,
    recordedFrames: L.rec.frames,
  };
}

function liveStop() {
  if (!live) return null;
  const L = live;
  live = null;
  L.port.onmessage = null;
  L.port.close();
  return liveStats(L);
}

function liveRecord(id) {
  const L = live || self.lastLive;
  if (!L) return post({ type: 'record', id, frames: 0 });
  const c = codec.c, R = L.rec, n = R.frames;
  const input = R.input.slice(0, n * c.hop), audio = R.audio.slice(0, n * c.hop);
  const codes = R.codes.slice(0, n * c.encoderNq), nq = R.nq.slice(0, n);
  const latents = R.latents.slice(0, n * R.D);
  post({ type: 'record', id, frames: n, encoderNq: c.encoderNq, input, audio, codes, nq, latents,
    stats: liveStats(L) }, [input.buffer, audio.buffer, codes.buffer, nq.buffer, latents.buffer]);
}

self.onmessage = async (e) => {
  const m = e.data;
  try {
    if (m.type === 'init') await init(m);
    else if (m.type === 'job') await enqueue(() => job(m));
    else if (m.type === 'live-start') liveStart(m);
    else if (m.type === 'live-stop') {
      const L = live;
      const stats = liveStop();
      self.lastLive = L;
      await queue;
      post({ type: 'stopped', stats });
    } else if (m.type === 'set-nq') {
      if (live) live.nq = Math.max(1, Math.min(codec.c.encoderNq, m.nq | 0));
    } else if (m.type === 'record') liveRecord(m.id);
  } catch (err) {
    fail(m.type, err);
    if (m.type === 'job') post({ type: 'job-done', id: m.id, error: err.message || String(err) });
  }
};
