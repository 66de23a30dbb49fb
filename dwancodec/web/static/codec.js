// The codec's step graphs on onnxruntime-web, driven by the sidecar (dwancodec_onnx.json)
// exactly like dwancodec/runtime/onnx_codec.py drives them on ONNX Runtime: every state input
// `state_in.K` is fed the previous call's `state_out.K` (zeros at the start), with the names,
// shapes and dtypes listed in the sidecar, read at run time. Nothing about the model's
// architecture is assumed beyond the step-graph contract:
//   encoder_step: audio [1, 1, k*hop] float32 + states -> codes [1, n_enc, k] int64 (+ latents)
//   decoder_step: codes [1, N, k] int64, n_q [] int64 + states -> audio [1, 1, k*hop] float32

export const FORMAT = 'dwancodec-onnx';
export const FORMAT_VERSIONS = [1];

const TYPED = { float32: Float32Array, int64: BigInt64Array };

export class ContractError extends Error {}

function need(cond, msg) {
  if (!cond) throw new ContractError(msg);
}

function dims(shape, where) {
  need(Array.isArray(shape), `${where}: shape missing`);
  return shape.map((d, i) => {
    if (typeof d === 'number') return d;
    need(i === 0, `${where}: symbolic dimension ${JSON.stringify(d)} past the batch axis`);
    return 1;  // batch
  });
}

function zeros(ort, dtype, shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  need(dtype in TYPED, `unsupported tensor dtype ${dtype}`);
  return new ort.Tensor(dtype, new TYPED[dtype](n), shape);
}

/** Check the sidecar and work out each graph input's and output's role. */
export function readContract(meta) {
  need(meta && meta.format === FORMAT, `not a DwanCodec ONNX sidecar (format ${FORMAT})`);
  need(FORMAT_VERSIONS.includes(meta.format_version),
    `sidecar format version ${meta.format_version}; this page reads ${FORMAT_VERSIONS}`);
  for (const key of ['sample_rate', 'hop_length', 'frames_per_step', 'num_codebooks',
    'encoder_n_q', 'codebook_size', 'latency_ms']) {
    need(typeof meta[key] === 'number', `sidecar has no numeric ${key}`);
  }
  const k = meta.frames_per_step, hop = meta.hop_length;
  const graph = (name, stateKey) => {
    const g = meta.graphs && meta.graphs[name];
    need(g && typeof g.file === 'string', `sidecar lists no ${name} graph`);
    need(Array.isArray(g.inputs) && Array.isArray(g.outputs), `${name}: no inputs/outputs list`);
    const state = meta[stateKey];
    need(Array.isArray(state), `sidecar has no ${stateKey} list`);
    const stateIn = new Set(state.map((s) => s.input)), stateOut = new Set(state.map((s) => s.output));
    const io = (list) => list.map((t) => ({ ...t, dims: dims(t.shape, `${name} ${t.name}`) }));
    const inputs = io(g.inputs), outputs = io(g.outputs);
    for (const s of state) {
      need(inputs.some((t) => t.name === s.input), `${name} has no input ${s.input}`);
      need(outputs.some((t) => t.name === s.output), `${name} has no output ${s.output}`);
      need(s.dtype in TYPED, `${name} state ${s.key}: unsupported dtype ${s.dtype}`);
    }
    return {
      file: g.file, state, inputs, outputs,
      extraIn: inputs.filter((t) => !stateIn.has(t.name)),
      extraOut: outputs.filter((t) => !stateOut.has(t.name)),
    };
  };
  const enc = graph('encoder_step', 'encoder_state');
  const dec = graph('decoder_step', 'decoder_state');
  // encoder: the one float input is the audio; the int64 output the codes; a float output
  // (if any) the latents
  const audioIn = enc.extraIn.filter((t) => t.dtype === 'float32' && t.dims.length === 3);
  need(audioIn.length === 1 && enc.extraIn.length === 1,
    `encoder_step must have one non-state input (audio), has ${enc.extraIn.map((t) => t.name)}`);
  need(audioIn[0].dims[2] === k * hop,
    `encoder_step audio takes ${audioIn[0].dims[2]} samples, sidecar says ${k} x ${hop}`);
  const codesOut = enc.extraOut.filter((t) => t.dtype === 'int64' && t.dims.length === 3);
  need(codesOut.length === 1, 'encoder_step must have one int64 [B, n_q, k] output (codes)');
  need(codesOut[0].dims[1] === meta.encoder_n_q && codesOut[0].dims[2] === k,
    `encoder_step codes shape ${codesOut[0].shape} disagrees with encoder_n_q/frames_per_step`);
  const latentsOut = enc.extraOut.find((t) => t.dtype === 'float32' && t.dims.length === 3);
  // decoder: int64 rank 3 = codes, int64 rank 0 = n_q; the float output is the audio
  const codesIn = dec.extraIn.filter((t) => t.dtype === 'int64' && t.dims.length === 3);
  const nqIn = dec.extraIn.filter((t) => t.dtype === 'int64' && t.dims.length === 0);
  need(codesIn.length === 1, 'decoder_step must have one int64 [B, N, k] input (codes)');
  need(nqIn.length <= 1 && dec.extraIn.length === codesIn.length + nqIn.length,
    `decoder_step has unexpected inputs ${dec.extraIn.map((t) => t.name)}`);
  need(codesIn[0].dims[1] === meta.num_codebooks && codesIn[0].dims[2] === k,
    `decoder_step codes shape ${codesIn[0].shape} disagrees with num_codebooks/frames_per_step`);
  const audioOut = dec.extraOut.filter((t) => t.dtype === 'float32' && t.dims.length === 3);
  need(audioOut.length === 1 && audioOut[0].dims[2] === k * hop,
    'decoder_step must have one float32 [B, 1, k*hop] output (audio)');
  return {
    sampleRate: meta.sample_rate, hop, framesPerStep: k, stepSamples: k * hop,
    numCodebooks: meta.num_codebooks, encoderNq: meta.encoder_n_q,
    codebookSize: meta.codebook_size, latencyMs: meta.latency_ms,
    frameRate: meta.sample_rate / hop,
    enc: { ...enc, audio: audioIn[0], codes: codesOut[0], latents: latentsOut || null },
    dec: { ...dec, codes: codesIn[0], nq: nqIn[0] || null, audio: audioOut[0] },
  };
}

function sameNames(session, g, name) {
  const want = (list) => list.map((t) => t.name).sort().join(',');
  const have = (list) => [...list].sort().join(',');
  need(have(session.inputNames) === want(g.inputs),
    `${name}: the graph's inputs [${session.inputNames}] differ from the sidecar's`);
  need(have(session.outputNames) === want(g.outputs),
    `${name}: the graph's outputs [${session.outputNames}] differ from the sidecar's`);
}

/** One model: two sessions and the contract. Steps take and return explicit state. */
export class StepCodec {
  static async load(ort, modelBase, { onProgress = () => {} } = {}) {
    const r = await fetch(modelBase + 'dwancodec_onnx.json');
    need(r.ok, `could not fetch the sidecar: HTTP ${r.status}`);
    const meta = await r.json();
    const c = readContract(meta);
    const options = { executionProviders: ['wasm'], graphOptimizationLevel: 'all',
      executionMode: 'sequential', logSeverityLevel: 3 };
    const open = async (g, name) => {
      onProgress(`loading ${g.file}`);
      const res = await fetch(modelBase + g.file);
      need(res.ok, `could not fetch ${g.file}: HTTP ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const s = await ort.InferenceSession.create(bytes, options);
      sameNames(s, g, name);
      return { session: s, bytes: bytes.length };
    };
    const enc = await open(c.enc, 'encoder_step');
    const dec = await open(c.dec, 'decoder_step');
    return new StepCodec(ort, meta, c, enc, dec);
  }

  constructor(ort, meta, contract, enc, dec) {
    this.ort = ort;
    this.meta = meta;
    this.c = contract;
    this.encSession = enc.session;
    this.decSession = dec.session;
    this.graphBytes = enc.bytes + dec.bytes;
    const c = contract;
    this.audioData = new Float32Array(c.stepSamples);
    this.audioTensor = new ort.Tensor('float32', this.audioData, c.enc.audio.dims);
    this.codesData = new BigInt64Array(c.numCodebooks * c.framesPerStep);
    this.codesTensor = new ort.Tensor('int64', this.codesData, c.dec.codes.dims);
    this.nqData = new BigInt64Array(1);
    this.nqTensor = new ort.Tensor('int64', this.nqData, []);
  }

  info() {
    const c = this.c, m = this.meta.model || {};
    return {
      name: m.name, identity: m.identity, sampleRate: c.sampleRate, hop: c.hop,
      framesPerStep: c.framesPerStep, numCodebooks: c.numCodebooks, encoderNq: c.encoderNq,
      codebookSize: c.codebookSize, latencyMs: c.latencyMs, frameRate: c.frameRate,
      graphBytes: this.graphBytes, ortVersion: this.ort.env.versions && this.ort.env.versions.web,
      encoderState: c.enc.state.length, decoderState: c.dec.state.length,
    };
  }

  /** kbps with the first `nq` stages (frame_rate * nq * log2(codebook_size), as in Python). */
  kbps(nq) {
    return this.c.frameRate * nq * Math.log2(this.c.codebookSize) / 1000;
  }

  initialState(which) {
    const g = which === 'encoder' ? this.c.enc : this.c.dec;
    const st = {};
    for (const s of g.state) st[s.key] = zeros(this.ort, s.dtype, [1, ...s.shape]);
    return st;
  }

  /**
   * One encoder step: `pcm` (stepSamples floats) + state -> {codes: Int32Array stage-major
   * [encoderNq][k], latents: Float32Array [D][k] | null, state}.
   */
  async encodeStep(pcm, state) {
    const g = this.c.enc;
    this.audioData.set(pcm);
    const feeds = { [g.audio.name]: this.audioTensor };
    for (const s of g.state) feeds[s.input] = state[s.key];
    const out = await this.encSession.run(feeds);
    const next = {};
    for (const s of g.state) next[s.key] = out[s.output];
    const raw = out[g.codes.name].data;
    const codes = new Int32Array(raw.length);
    for (let i = 0; i < raw.length; i++) codes[i] = Number(raw[i]);
    const latents = g.latents ? out[g.latents.name].data : null;
    return { codes, latents, state: next };
  }

  /**
   * One decoder step: `codes` (Int32Array stage-major [nq][k]) with `nq` stages + state ->
   * {audio: Float32Array (stepSamples), state}. Stages past nq are fed as zeros, as in Python.
   */
  async decodeStep(codes, nq, state) {
    const g = this.c.dec, k = this.c.framesPerStep;
    this.codesData.fill(0n);
    for (let i = 0; i < nq * k; i++) this.codesData[i] = BigInt(codes[i]);
    const feeds = { [g.codes.name]: this.codesTensor };
    if (g.nq) {
      this.nqData[0] = BigInt(nq);
      feeds[g.nq.name] = this.nqTensor;
    }
    for (const s of g.state) feeds[s.input] = state[s.key];
    const out = await this.decSession.run(feeds);
    const next = {};
    for (const s of g.state) next[s.key] = out[s.output];
    return { audio: out[g.audio.name].data, state: next };
  }
}
