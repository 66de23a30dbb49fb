// The page: controls, live numbers, spectrograms, file mode, and window.dwancodec (the API the
// tests drive). The codec itself runs in worker.js; the audio thread side is worklet.js.
//
// URL options: ?threads=N (WASM threads, default 1), ?margin=MS (output buffer beyond one
// frame, default 10), ?nq=N (initial stages), ?autostart=1 (start the microphone on load).

import { SpectrumStream, colorMap, fromBase64, toBase64, wavBlob } from './dsp.js';

const params = new URLSearchParams(location.search);
const opt = {
  threads: Math.max(1, parseInt(params.get('threads') || '1', 10)),
  marginMs: parseFloat(params.get('margin') || '10'),
  nq: parseInt(params.get('nq') || '0', 10),
  autostart: params.get('autostart') === '1',
};

const $ = (id) => document.getElementById(id);
const LUT = colorMap();

let info = null;
let live = null;        // {ctx, stream, node, ...} while the microphone runs
let lastStats = null;   // from the worker
let lastIO = null;      // from the worklet
const errors = [];
const pending = new Map();
let nextId = 1;

function status(text, isError = false) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', isError);
  if (isError) errors.push(text);
}

// --------------------------------------------------------------------------- spectrograms

class ScrollingSpectrogram {
  constructor(canvas, rate, { nfft = 512, hop = 160, floorDb = -100, topDb = -10 } = {}) {
    this.canvas = canvas;
    this.g = canvas.getContext('2d');
    this.rate = rate;
    this.stream = new SpectrumStream(nfft, hop);
    this.floorDb = floorDb;
    this.topDb = topDb;
    this.columns = [];
    this.clear();
  }

  clear() {
    this.g.fillStyle = '#000004';
    this.g.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  push(x) {
    for (const col of this.stream.push(x)) this.columns.push(col);
  }

  column(col, x) {
    const h = this.canvas.height, img = this.g.createImageData(1, h), bins = col.length;
    for (let y = 0; y < h; y++) {
      const b = Math.min(bins - 1, Math.floor((1 - (y + 0.5) / h) * bins));
      const v = (col[b] - this.floorDb) / (this.topDb - this.floorDb);
      const i = Math.max(0, Math.min(255, Math.round(v * 255))) * 3;
      img.data[4 * y] = LUT[i]; img.data[4 * y + 1] = LUT[i + 1];
      img.data[4 * y + 2] = LUT[i + 2]; img.data[4 * y + 3] = 255;
    }
    this.g.putImageData(img, x, 0);
  }

  draw() {
    const n = this.columns.length;
    if (!n) return;
    const w = this.canvas.width;
    this.g.drawImage(this.canvas, -n, 0);
    this.columns.forEach((col, i) => this.column(col, w - n + i));
    this.columns = [];
  }

  /** A whole signal, fitted to the width (file mode). */
  render(x) {
    const s = new SpectrumStream(this.stream.nfft, Math.max(1, Math.floor(x.length / this.canvas.width)));
    const cols = s.push(x);
    this.clear();
    cols.slice(0, this.canvas.width).forEach((col, i) => this.column(col, i));
  }
}

let sgIn = null, sgOut = null;

function animate() {
  if (sgIn) sgIn.draw();
  if (sgOut) sgOut.draw();
  requestAnimationFrame(animate);
}

// --------------------------------------------------------------------------- the worker

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
let resolveReady, rejectReady;
const ready = new Promise((res, rej) => { resolveReady = res; rejectReady = rej; });
ready.catch(() => {});

worker.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'progress') status(m.message);
  else if (m.type === 'ready') onReady(m.info);
  else if (m.type === 'error') {
    status(`${m.where}: ${m.message}`, true);
    if (!info) rejectReady(new Error(m.message));
  } else if (m.type === 'stats') {
    lastStats = m.stats;
    showNumbers();
  } else if (m.type === 'audio') {
    if (sgIn) sgIn.push(m.input);
    if (sgOut) sgOut.push(m.output);
  } else if (m.type === 'job-done' || m.type === 'record' || m.type === 'stopped') {
    const p = pending.get(m.id ?? m.type);
    if (p) {
      pending.delete(m.id ?? m.type);
      if (m.error) p.reject(new Error(m.error)); else p.resolve(m);
    }
  }
};
worker.onerror = (e) => {
  status(`worker: ${e.message || 'failed to start'}`, true);
  rejectReady(new Error(e.message || 'worker failed'));
};

function request(msg, key, transfer = []) {
  return new Promise((resolve, reject) => {
    pending.set(key, { resolve, reject });
    worker.postMessage(msg, transfer);
  });
}

worker.postMessage({
  type: 'init', threads: opt.threads,
  modelBase: new URL('model/', location.href).href, ortBase: new URL('ort/', location.href).href,
});

function onReady(i) {
  info = i;
  $('model').textContent = `${i.identity || i.name} · ${i.sampleRate / 1000} kHz · ` +
    `${i.frameRate} frames/s · ${i.framesPerStep} frame(s) per step · ${i.encoderNq} stages of ` +
    `${i.codebookSize} codes · onnxruntime-web ${i.ortVersion} (WASM, ${i.threads} thread` +
    `${i.threads > 1 ? 's' : ''}) · graphs ${(i.graphBytes / 1e6).toFixed(1)} MB, loaded in ` +
    `${Math.round(i.loadMs)} ms (+${Math.round(i.warmupMs)} ms warm-up)`;
  const sel = $('stages');
  for (let q = 1; q <= i.encoderNq; q++) {
    const o = document.createElement('option');
    o.value = q;
    o.textContent = `${(i.kbpsPerStage * q).toFixed(2)} kbps (${q} stage${q > 1 ? 's' : ''})`;
    sel.appendChild(o);
  }
  sel.value = String(opt.nq >= 1 && opt.nq <= i.encoderNq ? opt.nq : i.encoderNq);
  sel.disabled = false;
  $('start').disabled = false;
  // one column per 10 ms, ~32 ms windows, whatever the model's frame
  const sgHop = Math.round(i.sampleRate / 100);
  const nfft = 2 ** Math.round(Math.log2(0.032 * i.sampleRate));
  sgIn = new ScrollingSpectrogram($('sg-in'), i.sampleRate, { hop: sgHop, nfft });
  sgOut = new ScrollingSpectrogram($('sg-out'), i.sampleRate, { hop: sgHop, nfft });
  const span = $('sg-in').width * sgHop / i.sampleRate;
  $('sg-in-d').textContent = $('sg-out-d').textContent =
    `0-${i.sampleRate / 2000} kHz, last ${span.toFixed(1)} s`;
  requestAnimationFrame(animate);
  status('ready');
  resolveReady(i);
  if (opt.autostart) start().catch((e) => status(`microphone: ${e.message}`, true));
}

const stages = () => parseInt($('stages').value, 10);

// --------------------------------------------------------------------------- numbers

const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

function showNumbers() {
  const s = lastStats, io = lastIO;
  if (!s) return;
  $('n-kbps').textContent = `${fmt(s.kbps, 2)} kbps`;
  $('n-kbps-d').textContent = `${s.nq} stage${s.nq > 1 ? 's' : ''} · packets ${fmt(s.packedKbps, 2)} kbps`;
  const bufMs = io ? outputMarginMs(io, s.ctxRate) : 0;
  $('n-lat').textContent = `${fmt(s.codecLatencyMs, 0)} ms`;
  $('n-lat-d').textContent = `codec · +${fmt(s.resampleMs, 1)} resampling, ` +
    `+${fmt(bufMs, 0)} output buffer`;
  $('n-ms').textContent = `${fmt(s.meanMs, 2)} ms`;
  $('n-ms-d').textContent = `enc ${fmt(s.encMs, 2)} + dec ${fmt(s.decMs, 2)} · p95 ${fmt(s.p95Ms, 2)}`;
  $('n-rtf').textContent = fmt(s.rtf, 3);
  $('n-rtf-d').textContent = `compute / audio: ${fmt(1 / s.rtf, 1)}x real time · ` +
    `${fmt(s.seconds, 1)} s coded`;
  $('n-under').textContent = io ? String(io.underruns) : '-';
  $('n-under-d').textContent = io ? `${fmt(io.dropped * 1000 / s.ctxRate, 0)} ms dropped to catch ` +
    `up · device ${s.ctxRate / 1000} kHz` : '';
}

/** The output FIFO's target beyond one frame: what the buffering adds to the latency. */
function outputMarginMs(io, rate) {
  const frame = Math.ceil(info.hop * info.framesPerStep * rate / info.sampleRate);
  return Math.max(0, (io.prebuffer - frame) * 1000 / rate);
}

// --------------------------------------------------------------------------- live

async function start() {
  await ready;
  if (live) return;
  if (!navigator.mediaDevices || !window.AudioWorkletNode) {
    throw new Error('this page needs a secure context for the microphone and AudioWorklet: ' +
      `open it as http://127.0.0.1:${location.port}/ or http://localhost:${location.port}/`);
  }
  $('start').disabled = true;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const ctx = new AudioContext({ latencyHint: 'interactive' });
  await ctx.audioWorklet.addModule(new URL('./worklet.js', import.meta.url));
  const frame = Math.ceil(info.hop * info.framesPerStep * ctx.sampleRate / info.sampleRate);
  const node = new AudioWorkletNode(ctx, 'dwancodec-io', {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { frame, prebuffer: frame + Math.round(opt.marginMs * ctx.sampleRate / 1000),
      maxPrebuffer: frame + Math.round(0.1 * ctx.sampleRate), monitor: $('monitor').checked },
  });
  node.port.onmessage = (e) => { if (e.data.type === 'io') { lastIO = e.data; showNumbers(); } };
  const ch = new MessageChannel();
  node.port.postMessage({ type: 'connect', port: ch.port1 }, [ch.port1]);
  worker.postMessage({ type: 'live-start', port: ch.port2, ctxRate: ctx.sampleRate, nq: stages() },
    [ch.port2]);
  const src = ctx.createMediaStreamSource(stream);
  src.connect(node);
  node.connect(ctx.destination);
  await ctx.resume();
  live = { ctx, stream, node, src, startedAt: performance.now() };
  lastStats = null;
  lastIO = null;
  sgIn.clear();
  sgOut.clear();
  const track = stream.getAudioTracks()[0];
  status(`live: ${track ? track.label : 'microphone'} @ ${ctx.sampleRate} Hz`);
  const b = $('start');
  b.textContent = 'Stop';
  b.classList.add('stop');
  b.disabled = false;
}

async function stop() {
  if (!live) return null;
  const L = live;
  live = null;
  L.node.port.postMessage({ type: 'stop' });
  const done = request({ type: 'live-stop' }, 'stopped');
  L.stream.getTracks().forEach((t) => t.stop());
  L.src.disconnect();
  L.node.disconnect();
  await L.ctx.close();
  const m = await done;
  const b = $('start');
  b.textContent = 'Start microphone';
  b.classList.remove('stop');
  status('stopped');
  return { ...m.stats, io: lastIO };
}

$('start').addEventListener('click', () => {
  (live ? stop() : start()).catch((e) => { status(`microphone: ${e.message}`, true); $('start').disabled = false; });
});
$('stages').addEventListener('change', () => {
  worker.postMessage({ type: 'set-nq', nq: stages() });
});
$('monitor').addEventListener('change', () => {
  if (live) live.node.port.postMessage({ type: 'monitor', on: $('monitor').checked });
});

// --------------------------------------------------------------------------- file mode

/** Encode + decode `pcm` (Float32Array at the model rate) frame by frame from a zero state. */
async function encodeDecode(pcm, nq = null, { latents = false } = {}) {
  await ready;
  const x = Float32Array.from(pcm);
  const id = nextId++;
  return request({ type: 'job', id, pcm: x, nq: nq || stages(), latents }, id, [x.buffer]);
}

async function decodeFile(file) {
  await ready;
  const bytes = await file.arrayBuffer();
  // decodeAudioData resamples to the context's rate: the model rate here
  const ac = new OfflineAudioContext(1, 1, info.sampleRate);
  const buf = await ac.decodeAudioData(bytes);
  const x = new Float32Array(buf.length);
  for (let c = 0; c < buf.numberOfChannels; c++) {
    const d = buf.getChannelData(c);
    for (let i = 0; i < x.length; i++) x[i] += d[i] / buf.numberOfChannels;
  }
  return x;
}

async function fileMode(file) {
  if (live) await stop();
  status(`decoding ${file.name}...`);
  const x = await decodeFile(file);
  const nq = stages();
  const r = await encodeDecode(x, nq);
  const y = r.audio.subarray(0, x.length);
  const url = (blob) => URL.createObjectURL(blob);
  $('file-in').src = url(wavBlob(x, info.sampleRate));
  const out = url(wavBlob(y, info.sampleRate));
  $('file-out').src = out;
  const a = $('file-download');
  a.href = out;
  a.download = `${file.name.replace(/\.[^.]+$/, '')}.dwancodec-${(info.kbpsPerStage * nq).toFixed(2)}kbps.wav`;
  $('file-result').hidden = false;
  $('file-stats').textContent = `${(x.length / info.sampleRate).toFixed(2)} s · ${r.frames} frames at ` +
    `${(info.kbpsPerStage * nq).toFixed(2)} kbps (${r.packetBytes} bytes of packets) · ` +
    `compute ${r.computeMs.toFixed(0)} ms = ${(r.computeMs / r.frames).toFixed(2)} ms per frame ` +
    `(RTF ${(r.computeMs / r.audioMs).toFixed(3)})`;
  sgIn.render(x);
  sgOut.render(y);
  status(`decoded ${file.name}`);
  $('file-out').play().catch(() => {});
  return r;
}

const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer.files[0];
  if (f) fileMode(f).catch((err) => status(`file: ${err.message}`, true));
});
$('file').addEventListener('change', (e) => {
  const f = e.target.files[0];
  if (f) fileMode(f).catch((err) => status(`file: ${err.message}`, true));
});

// --------------------------------------------------------------------------- API for tests

window.dwancodec = {
  ready,
  get info() { return info; },
  encodeDecode,
  start,
  stop,
  stats: () => ({ codec: lastStats, io: lastIO, running: !!live, errors: [...errors] }),
  record: () => request({ type: 'record', id: 'rec' }, 'rec'),
  setStages(nq) { $('stages').value = String(nq); worker.postMessage({ type: 'set-nq', nq }); },
};
window.dwancodecEncodeDecode = encodeDecode;

/** The same with base64 in and out, for the DevTools protocol (JSON only). */
window.dwancodecTest = {
  async encodeDecode(b64, nq) {
    const r = await encodeDecode(fromBase64(b64, Float32Array), nq, { latents: true });
    return { frames: r.frames, nq: r.nq, codes: toBase64(r.codes), audio: toBase64(r.audio),
      latents: r.latents ? toBase64(r.latents) : null, computeMs: r.computeMs,
      stepMs: Array.from(r.stepMs), audioMs: r.audioMs, packetBytes: r.packetBytes };
  },
  async record() {
    const r = await window.dwancodec.record();
    return { frames: r.frames, encoderNq: r.encoderNq, input: toBase64(r.input),
      audio: toBase64(r.audio), codes: toBase64(r.codes), latents: toBase64(r.latents),
      nq: Array.from(r.nq), stats: r.stats };
  },
};
