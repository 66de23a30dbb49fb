// AudioWorklet processor: the audio thread's side of the live loop. Each render quantum
// (128 samples at the device rate) it sends the microphone block to the codec worker and plays
// decoded audio from a FIFO. Playback starts once `prebuffer` samples are queued; a quantum
// that finds fewer than it needs is an underrun (silence is played, the FIFO is primed again
// and the prebuffer grows by one quantum, up to `maxPrebuffer`). When more than one frame beyond
// the prebuffer is queued (the codec fell behind and caught up in a burst), the oldest samples
// are dropped down to the prebuffer, so the output latency stays bounded.

class DwanCodecIO extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.prebuffer = o.prebuffer || 480;
    this.frame = o.frame || 960;
    this.maxPrebuffer = o.maxPrebuffer || 4800;
    this.fifo = new Float32Array(1 << 16);
    this.read = 0;
    this.count = 0;
    this.playing = false;
    this.underruns = 0;
    this.dropped = 0;
    this.quanta = 0;
    this.received = 0;
    this.energyIn = 0;
    this.energyOut = 0;
    this.monitor = o.monitor !== false;
    this.codec = null;
    this.stopped = false;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === 'connect') {
        this.codec = m.port;
        this.codec.onmessage = (ev) => { if (ev.data.type === 'out') this.enqueue(ev.data.samples); };
      } else if (m.type === 'monitor') this.monitor = m.on;
      else if (m.type === 'stop') this.stopped = true;
    };
  }

  enqueue(x) {
    const cap = this.fifo.length;
    this.received += x.length;
    for (let i = 0; i < x.length; i++) {
      if (this.count === cap) {  // should not happen: drop the oldest
        this.read = (this.read + 1) % cap;
        this.count--;
        this.dropped++;
      }
      this.fifo[(this.read + this.count) % cap] = x[i];
      this.count++;
    }
    if (this.count > this.prebuffer + this.frame) {
      const drop = this.count - this.prebuffer;
      this.read = (this.read + drop) % cap;
      this.count -= drop;
      this.dropped += drop;
    }
  }

  process(inputs, outputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    const n = outputs[0][0].length;
    const block = new Float32Array(n);
    if (input && input.length) {
      const ch = input.length;
      for (let c = 0; c < ch; c++) {
        const x = input[c];
        for (let i = 0; i < n; i++) block[i] += x[i] / ch;
      }
    }
    for (let i = 0; i < n; i++) this.energyIn += block[i] * block[i];
    if (this.codec) this.codec.postMessage({ type: 'in', samples: block }, [block.buffer]);

    const out = outputs[0];
    if (!this.playing && this.count >= this.prebuffer) this.playing = true;
    if (this.playing) {
      const cap = this.fifo.length;
      const take = Math.min(n, this.count);
      for (let i = 0; i < take; i++) {
        const v = this.fifo[(this.read + i) % cap];
        this.energyOut += v * v;
        if (this.monitor) for (const ch of out) ch[i] = v;
      }
      this.read = (this.read + take) % cap;
      this.count -= take;
      if (take < n) {
        this.underruns++;
        this.playing = false;
        this.prebuffer = Math.min(this.maxPrebuffer, this.prebuffer + n);
      }
    }
    this.quanta++;
    if (this.quanta % 94 === 0) {  // ~4 times a second at 48 kHz
      this.port.postMessage({
        type: 'io', underruns: this.underruns, dropped: this.dropped, fifo: this.count,
        prebuffer: this.prebuffer, playing: this.playing, quanta: this.quanta, quantum: n,
        received: this.received, rmsIn: Math.sqrt(this.energyIn / (94 * n)),
        rmsOut: Math.sqrt(this.energyOut / (94 * n)),
      });
      this.energyIn = 0;
      this.energyOut = 0;
    }
    return true;
  }
}

registerProcessor('dwancodec-io', DwanCodecIO);
