// Signal helpers for the page (plain ES module, no dependencies): a streaming rational
// resampler, a real FFT for the spectrograms, packet packing, WAV writing, base64.

function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

function besselI0(x) {
  let sum = 1, term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

/**
 * Streaming polyphase resampler from `inRate` to `outRate` (integers), windowed-sinc
 * (Kaiser, beta 8.6, `zeroCrossings` on each side, cutoff `rolloff` x the lower Nyquist).
 * push(Float32Array) returns the output samples that the input so far determines; the output
 * lags the input by `delaySeconds` (half the filter). Equal rates pass samples through.
 */
export class Resampler {
  constructor(inRate, outRate, { zeroCrossings = 16, rolloff = 0.92 } = {}) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.identity = inRate === outRate;
    if (this.identity) {
      this.delaySeconds = 0;
      return;
    }
    const g = gcd(inRate, outRate);
    this.L = outRate / g;  // output samples per M input samples
    this.M = inRate / g;
    const fc = 0.5 * Math.min(inRate, outRate) * rolloff;  // Hz
    const halfSeconds = zeroCrossings / (2 * fc);
    this.H = Math.ceil(halfSeconds * inRate);  // half width in input samples
    this.taps = 2 * this.H;
    this.delaySeconds = this.H / inRate;
    const w = 2 * fc / inRate;  // cutoff, cycles per input sample x 2
    const beta = 8.6, i0b = besselI0(beta);
    this.table = new Float32Array(this.L * this.taps);
    for (let phi = 0; phi < this.L; phi++) {
      let sum = 0;
      const row = phi * this.taps;
      for (let j = 0; j < this.taps; j++) {
        const k = j - this.H + 1;  // input offset from floor(position)
        const d = phi / this.L - k;  // output position minus input sample position
        const r = d / this.H;
        const win = Math.abs(r) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - r * r)) / i0b;
        const x = Math.PI * w * d;
        const s = d === 0 ? w : Math.sin(x) / (Math.PI * d);
        this.table[row + j] = s * win;
        sum += s * win;
      }
      for (let j = 0; j < this.taps; j++) this.table[row + j] /= sum;  // unit DC gain
    }
    // input history: index 0 of `buf` is input sample `bufStart` (starts H-1 zeros before 0)
    this.buf = new Float32Array(4096);
    this.bufLen = this.H - 1;
    this.bufStart = -(this.H - 1);
    this.i0 = 0;   // floor of the next output's input position
    this.phi = 0;  // its fractional part, in 1/L input samples
  }

  push(x) {
    if (this.identity) return Float32Array.from(x);
    if (this.bufLen + x.length > this.buf.length) {
      const grown = new Float32Array(Math.max(this.buf.length * 2, this.bufLen + x.length));
      grown.set(this.buf.subarray(0, this.bufLen));
      this.buf = grown;
    }
    this.buf.set(x, this.bufLen);
    this.bufLen += x.length;
    const end = this.bufStart + this.bufLen;  // one past the last input index held
    const maxOut = Math.ceil((x.length + this.taps) * this.L / this.M) + 2;
    const out = new Float32Array(maxOut);
    let n = 0;
    const { L, M, H, taps, table, buf } = this;
    while (this.i0 + H < end) {
      const off = this.i0 - H + 1 - this.bufStart;
      const row = this.phi * taps;
      let acc = 0;
      for (let j = 0; j < taps; j++) acc += buf[off + j] * table[row + j];
      out[n++] = acc;
      this.phi += M;
      this.i0 += Math.floor(this.phi / L);
      this.phi %= L;
    }
    // drop input no later output needs
    const keepFrom = this.i0 - H + 1;
    const drop = keepFrom - this.bufStart;
    if (drop > 0) {
      this.buf.copyWithin(0, drop, this.bufLen);
      this.bufLen -= drop;
      this.bufStart = keepFrom;
    }
    return out.subarray(0, n);
  }
}

/** In-place radix-2 complex FFT of (re, im), length a power of two. */
export class FFT {
  constructor(n) {
    this.n = n;
    this.rev = new Uint32Array(n);
    const bits = Math.log2(n);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
    }
    this.cos = new Float32Array(n / 2);
    this.sin = new Float32Array(n / 2);
    for (let i = 0; i < n / 2; i++) {
      this.cos[i] = Math.cos(-2 * Math.PI * i / n);
      this.sin[i] = Math.sin(-2 * Math.PI * i / n);
    }
  }

  transform(re, im) {
    const { n, rev } = this;
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (j > i) {
        [re[i], re[j]] = [re[j], re[i]];
        [im[i], im[j]] = [im[j], im[i]];
      }
    }
    for (let size = 2; size <= n; size *= 2) {
      const half = size / 2, step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let k = 0; k < half; k++) {
          const c = this.cos[k * step], s = this.sin[k * step];
          const a = start + k, b = a + half;
          const tr = re[b] * c - im[b] * s, ti = re[b] * s + im[b] * c;
          re[b] = re[a] - tr; im[b] = im[a] - ti;
          re[a] += tr; im[a] += ti;
        }
      }
    }
  }
}

/** Short-time spectra in dB (full scale = 0 dB) of a stream, one column per `hop` samples. */
export class SpectrumStream {
  constructor(nfft = 512, hop = 160) {
    this.nfft = nfft;
    this.hop = hop;
    this.fft = new FFT(nfft);
    this.window = new Float32Array(nfft);
    for (let i = 0; i < nfft; i++) this.window[i] = 0.5 - 0.5 * Math.cos(2 * Math.PI * i / nfft);
    this.ring = new Float32Array(nfft);  // the last nfft samples, oldest at `pos`
    this.pos = 0;
    this.sinceColumn = 0;
    this.re = new Float32Array(nfft);
    this.im = new Float32Array(nfft);
  }

  /** Append samples; return the new columns (Float32Array of nfft/2 dB values each). */
  push(x) {
    const cols = [];
    for (let i = 0; i < x.length; i++) {
      this.ring[this.pos] = x[i];
      this.pos = (this.pos + 1) % this.nfft;
      if (++this.sinceColumn === this.hop) {
        this.sinceColumn = 0;
        cols.push(this.column());
      }
    }
    return cols;
  }

  column() {
    const { nfft, re, im } = this;
    for (let i = 0; i < nfft; i++) {
      re[i] = this.ring[(this.pos + i) % nfft] * this.window[i];
      im[i] = 0;
    }
    this.fft.transform(re, im);
    const out = new Float32Array(nfft / 2);
    const scale = nfft / 4;  // |X| of a full-scale sine under a Hann window
    for (let k = 0; k < nfft / 2; k++) {
      out[k] = 20 * Math.log10(Math.hypot(re[k], im[k]) / scale + 1e-10);
    }
    return out;
  }
}

/** 256-entry RGB colour map (dark purple -> orange -> pale yellow). */
export function colorMap() {
  const anchors = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
    [245, 125, 21], [250, 193, 39], [252, 255, 164]];
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const p = i / 255 * (anchors.length - 1), a = Math.floor(p), t = p - a;
    const b = Math.min(a + 1, anchors.length - 1);
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = anchors[a][c] * (1 - t) + anchors[b][c] * t;
  }
  return lut;
}

/** Bits per code for a codebook of `size` entries. */
export function codeBits(size) {
  return Math.max(1, Math.ceil(Math.log2(size)));
}

/** Pack `count` codes (each < 2**bits) into bytes, most significant bit first. */
export function packCodes(codes, count, bits) {
  const out = new Uint8Array(Math.ceil(count * bits / 8));
  let bitPos = 0;
  for (let i = 0; i < count; i++) {
    const v = codes[i];
    for (let b = bits - 1; b >= 0; b--, bitPos++) {
      if ((v >>> b) & 1) out[bitPos >> 3] |= 0x80 >> (bitPos & 7);
    }
  }
  return out;
}

export function unpackCodes(bytes, count, bits, into) {
  const out = into || new Int32Array(count);
  let bitPos = 0;
  for (let i = 0; i < count; i++) {
    let v = 0;
    for (let b = 0; b < bits; b++, bitPos++) v = (v << 1) | ((bytes[bitPos >> 3] >> (7 - (bitPos & 7))) & 1);
    out[i] = v;
  }
  return out;
}

/** A 16-bit PCM mono WAV file of `x` (floats in [-1, 1]). */
export function wavBlob(x, rate) {
  const buf = new ArrayBuffer(44 + x.length * 2);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, 'RIFF'); v.setUint32(4, 36 + x.length * 2, true); str(8, 'WAVE');
  str(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true);
  v.setUint16(34, 16, true); str(36, 'data'); v.setUint32(40, x.length * 2, true);
  for (let i = 0; i < x.length; i++) {
    const s = Math.max(-1, Math.min(1, x[i]));
    v.setInt16(44 + 2 * i, s < 0 ? Math.round(s * 32768) : Math.round(s * 32767), true);
  }
  return new Blob([buf], { type: 'audio/wav' });
}

export function toBase64(typed) {
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function fromBase64(b64, Type = Float32Array) {
  const s = atob(b64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return new Type(bytes.buffer);
}
