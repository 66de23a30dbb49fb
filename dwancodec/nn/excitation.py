"""Harmonic excitation for the synthesis head: a filtered pulse train at a predicted f0.

Why: the head's synthesis windows are 10 ms long, shorter than two periods of a low voice, so a
voice's harmonics exist only as pulses placed at the right spot in successive windows, i.e. in
the per-frame phases the network has to predict. The anti-wrapping phase losses stay near their
random-phase values and the error split (docs/training-log.md, round 8) puts most of the lost
PESQ in the harmonic fine structure below 2 kHz. A source-filter path makes that structure a
property of the architecture (as the neural source-filter vocoders and DDSP do): the network
predicts an f0 per synthesis frame and a complex filter per bin; the frame's pulse train
carries its phase over from the previous frame, so consecutive windows agree where they
overlap.

Synthesis frame ``i`` (window ``[i * hop, i * hop + n_fft)``, see :mod:`dwancodec.nn.istft`)::

    f0_i    = f0_min * (f0_max / f0_min) ** sigmoid(z_i)              (predicted, Hz; then
                                                                     on a 1/256-octave grid)
    c_i     = frac(phase + sum_{j < i} f0_j * hop / sr)              (cycles at the window start)
    e_i[m]  = 0.1 sum_{k=1}^{K_i} cos(2 pi k (c_i + f0_i m / sr)) / sqrt(K_i / 2), m < n_fft
    K_i     = floor(f_top / f0_i)                               (harmonics below sr / 4)
    X_i     = H_i * rfft(e_i)                                        (H_i: complex, predicted)

so ``e_i`` and ``e_{i+1}`` start in phase where the second window begins and drift apart only
by the change of f0 across the overlap. The harmonic sum is the Dirichlet kernel
(:func:`harmonic_sum`), so the cost does not grow with the number of harmonics. The state is
the phase ``c`` (cycles in ``[0, 1)``) after the last frame. f0 lies on a 1/256-octave grid
and the phase advances in integer ticks of 2**-24 cycles read from a table of that grid, so a
long offline decode has exactly the phases of a stream of short steps (except where f0 sits
on a rounding tie of the grid). f0 reaches the excitation without a gradient (the gradient of
a sinusoid in its frequency oscillates); it is learned from the pitch track of the input
(:func:`dwancodec.nn.pitch.pitch_track`, loss ``f0``). In training the pulse train runs at
that track's f0 where the input is clearly periodic (teacher forcing, as neural source-filter
vocoders train): a filter learned against a still-wrong predicted f0 only adds noise (a first
run without it doubled the mel distance in 1000 steps). ``H`` starts at 0, so a model
warm-started from one without the excitation decodes exactly as before until training moves
``H``.

Where f0 and the phase come from (``DecoderConfig.excitation``): ``harmonic`` as above;
``tracked`` tracks f0 on the head's own decode of the same frames (:meth:`track`: the current
code frame's block against its past, so no latency and nothing to learn) and scales the
pulses by its voicing; ``locked`` also places the pulses where the decode's own pulses are
(:meth:`locked_starts`) instead of running the phase free. An experiment: none beat the
control in training-log round 11, so the default is ``none``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..streaming.state import State, Stateful, StateSpec

F0_MIN = 50.0   # Hz: the lowest voice f0 the excitation can follow
F0_MAX = 500.0  # Hz
F0_STEPS = 256  # f0 grid of the excitation, steps per octave
# rms of the pulse train: about a voice's level, so that the filter starts near 1 and its
# gradient does not dwarf the rest of the network's under one clipped norm
EXCITATION_RMS = 0.1
TICKS = 1 << 24  # phase resolution: ticks per cycle (a float32 in [0, 1) holds it exactly)
LOCK_HARMONICS = 6  # harmonics whose phases align a "locked" pulse train with the decode
LOCK_GRID = 64      # phase grid of that alignment (cycles / 64)


def rfft_basis(n_fft: int) -> Tensor:
    """``[n_fft, 2 * (n_fft // 2 + 1)]`` matrix R with ``x @ R == cat(re, im)`` of ``rfft(x)``.

    >>> x = torch.randn(3, 8)
    >>> bool(torch.allclose(x @ rfft_basis(8), torch.cat([torch.fft.rfft(x).real,
    ...                                                   torch.fft.rfft(x).imag], -1), atol=1e-5))
    True
    """
    n = torch.arange(n_fft, dtype=torch.float64)[:, None]
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * n * k / n_fft
    return torch.cat([torch.cos(angle), -torch.sin(angle)], dim=1).to(torch.float32)


def harmonic_sum(theta: Tensor, k: Tensor) -> Tensor:
    """``sum_{j=1}^{k} cos(j theta)`` for ``theta`` in ``[-pi, pi]``, ``k`` >= 1 (broadcast).

    The Dirichlet kernel ``sin((k + 1/2) theta) / (2 sin(theta / 2)) - 1/2``; near
    ``theta = 0``, where the ratio loses float32 precision, its Taylor series
    ``k - theta**2 k (k + 1)(2 k + 1) / 12`` (the next term is below 1e-2 for k <= 160). On
    ``[-pi, pi]`` the kernel's argument stays small where its denominator does.

    >>> t = torch.tensor([0.0, 0.3, -3.0]); k = torch.tensor(5.0)
    >>> bool(torch.allclose(harmonic_sum(t, k), sum(torch.cos(j * t) for j in range(1, 6)),
    ...                     atol=1e-4))
    True
    """
    half = torch.sin(0.5 * theta)
    small = half.abs() < 1e-3
    # The masked denominator keeps the unused branch finite, so no NaN reaches a gradient.
    ratio = torch.sin((k + 0.5) * theta) / (2 * torch.where(small, torch.ones_like(half), half))
    taylor = k - theta * theta * (k * (k + 1) * (2 * k + 1) / 12)
    return torch.where(small, taylor, ratio - 0.5)


class HarmonicExcitation(Stateful):
    """Trunk features ``[B, dim, F]`` -> the harmonic part of ``F * U`` synthesis frames
    ``[B, F * U, 2 * n_bins]`` (``cat(re, im)``) and their f0 ``[B, F * U]`` (log2 Hz).

    State: ``phase`` ``[1]``, the pulse train's phase in cycles after the last frame (not for
    ``locked``, whose phase comes from the decode); for ``tracked`` and ``locked`` also
    ``history`` ``[history]`` (the decode's last samples, for the pitch search) and ``tail``
    ``[n_fft - istft_hop]`` (the pulses' own overlap-add tail).
    """

    def __init__(self, dim: int, frames_per_code: int, n_fft: int, istft_hop: int,
                 sample_rate: int, tracked: bool = False, locked: bool = False) -> None:
        super().__init__()
        self.tracked = tracked or locked
        self.locked = locked
        self.frames_per_code = frames_per_code
        self.hop = frames_per_code * istft_hop  # code frame
        self.n_fft = n_fft
        self.istft_hop = istft_hop
        self.sample_rate = sample_rate
        self.n_bins = n_fft // 2 + 1
        # Harmonics below a quarter of the rate (4 kHz at 16 kHz), where the error split finds
        # the lost PESQ; higher up, an f0 error of 1 % already misplaces a harmonic by a
        # quarter of the spacing, and the head's own frames carry that band.
        self.f_top = 0.25 * sample_rate
        # A one-hidden-layer readout: a linear one reached only ~190 cents median error on
        # val-16k speech after 1000 steps (training-log round 11).
        # "tracked" reads f0 off the head's own decoded audio instead (no f0 to learn).
        self.f0 = None if self.tracked else nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, frames_per_code))
        # Tracked: one code frame of decoded audio is the analysed segment, and the lags
        # reach back to F0_MIN; the samples before the segment are the carried history.
        # (whole code frames of history, so the buffers are slices of one reshape)
        self.track_win = self.hop
        need = self.track_win + math.ceil(sample_rate / F0_MIN) - self.hop
        self.history = -(-need // self.hop) * self.hop
        self.filter = nn.Linear(dim, frames_per_code * 2 * self.n_bins)
        # Zero filter: the path adds nothing until training moves it (warm starts decode as
        # before).
        nn.init.zeros_(self.filter.weight)
        nn.init.zeros_(self.filter.bias)
        self.register_buffer("basis", rfft_basis(n_fft), persistent=False)
        self.register_buffer("offsets", torch.arange(n_fft, dtype=torch.float32),
                             persistent=False)
        # Tables over the f0 grid (index 0 = the grid point at or below F0_MIN).
        self.grid_start = math.floor(math.log2(F0_MIN) * F0_STEPS)
        grid = torch.arange(self.grid_start, math.ceil(math.log2(F0_MAX) * F0_STEPS) + 1,
                            dtype=torch.float64)
        f0 = torch.exp2(grid / F0_STEPS)
        self.register_buffer("ticks", torch.round(f0 * istft_hop / sample_rate * TICKS).long(),
                             persistent=False)  # phase advance per hop
        self.register_buffer("rate", (f0 / sample_rate).float(), persistent=False)  # per sample
        self.register_buffer("harmonics", torch.floor(self.f_top / f0).clamp_min(1).float(),
                             persistent=False)  # K

    def state_spec(self) -> dict[str, StateSpec]:
        spec = {} if self.locked else {"phase": StateSpec((1,))}
        if self.tracked:
            spec["history"] = StateSpec((self.history,))
            spec["tail"] = StateSpec((self.n_fft - self.istft_hop,))
        return spec

    def track(self, audio: Tensor, history: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decoded audio ``[B, F * hop]`` + history -> (log2 f0 ``[B, F]``, voicing confidence
        ``[B, F]``, new history): the pitch of each code frame's block from it and the past
        only (:func:`dwancodec.nn.pitch.nccf_pitch`), so it adds no latency."""
        from .pitch import nccf_pitch  # pitch imports this module's constants

        full = torch.cat([history, audio.detach()], dim=-1)
        length = self.history + self.hop
        f = audio.shape[-1] // self.hop
        if f == 0:
            empty = audio.new_zeros(audio.shape[0], 0)
            return empty, empty, full[:, full.shape[-1] - self.history:]
        blocks = full.reshape(full.shape[0], -1, self.hop)  # [B, history / hop + F, hop]
        r = self.history // self.hop
        buf = torch.cat([blocks[:, j: j + f] for j in range(r + 1)], dim=-1)  # [B, F, length]
        log_f0, conf = nccf_pitch(buf, self.track_win, length - self.track_win,
                                  self.sample_rate,
                                  direct=torch.onnx.is_in_onnx_export())  # FFT is cheaper
        return log_f0, conf, full[:, full.shape[-1] - self.history:]

    def grid_index(self, log_f0: Tensor) -> Tensor:
        """log2 f0 -> index into the f0 grid's tables (nearest grid point, clamped)."""
        idx = (torch.round(log_f0 * F0_STEPS) - self.grid_start).long()
        return idx.clamp(0, self.ticks.shape[0] - 1)

    def log2_f0(self, x: Tensor) -> Tensor:
        """``[B, dim, F]`` -> predicted f0 per synthesis frame ``[B, F * U]`` (log2 Hz)."""
        assert self.f0 is not None, "a tracked excitation predicts no f0"
        b, _, f = x.shape
        z = self.f0(x.transpose(1, 2)).reshape(b, f * self.frames_per_code)
        lo, hi = math.log2(F0_MIN), math.log2(F0_MAX)
        return lo + (hi - lo) * torch.sigmoid(z)

    def run(self, x: Tensor, state: State, teacher: Tensor | None = None
            ) -> tuple[Tensor, Tensor, State]:
        """(harmonic coefficients ``[B, n, 2 * n_bins]``, predicted log2 f0 ``[B, n]``, new
        state). ``teacher`` (training only): log2 f0 ``[B, n]`` that drives the pulse train
        instead of the prediction where it is not NaN."""
        log_f0 = self.log2_f0(x)
        drive = log_f0.detach()
        if teacher is not None:
            drive = torch.where(torch.isnan(teacher), drive, teacher)
        out, new_phase = self.filtered_pulses(x, state["phase"], drive, None)
        return out, log_f0, {"phase": new_phase}

    def run_tracked(self, x: Tensor, state: State, audio: Tensor
                    ) -> tuple[Tensor, Tensor, State]:
        """Like :meth:`run`, with f0 tracked on ``audio`` ``[B, F * hop]`` (the head's own
        decode of these frames); the pulse train is scaled by the voicing confidence."""
        log_f0, conf, history = self.track(audio, state["history"])
        u = self.frames_per_code
        drive = log_f0.repeat_interleave(u, dim=1)
        gain = conf.repeat_interleave(u, dim=1)
        if self.locked:
            starts = self.locked_starts(audio, log_f0)
            out, _ = self.filtered_pulses(x, None, drive, gain, starts)
            return out, drive, {"history": history}
        out, new_phase = self.filtered_pulses(x, state["phase"], drive, gain)
        return out, drive, {"phase": new_phase, "history": history}

    def locked_starts(self, audio: Tensor, log_f0: Tensor) -> Tensor:
        """The pulse train's phase (cycles) at each synthesis window's start ``[B, F * U]``,
        aligned with the decode's own periodicity: per code frame, the phase ``p`` that
        maximises ``sum_k Re(c_k exp(-2 pi i k p))`` over a 64-point grid, where ``c_k`` is
        the block's projection on harmonic ``k`` of its tracked f0 (k <= 6). So the pulses
        land where the decode's glottal pulses are, and the filter adds to the decoded
        harmonics instead of beating against them."""
        b, t = audio.shape
        f = t // self.hop
        block = audio.detach().reshape(b, f, self.hop)
        cyc = self.rate[self.grid_index(log_f0)]  # [B, F] cycles per sample, as the pulses
        n = torch.arange(self.hop, dtype=audio.dtype, device=audio.device)
        k = torch.arange(1, LOCK_HARMONICS + 1, dtype=audio.dtype, device=audio.device)
        arg = 2 * math.pi * k[:, None] * n[None, :] * cyc[..., None, None]  # [B, F, K, hop]
        re = (block[..., None, :] * torch.cos(arg)).sum(-1)  # [B, F, K]
        im = -(block[..., None, :] * torch.sin(arg)).sum(-1)
        grid = torch.arange(LOCK_GRID, dtype=audio.dtype, device=audio.device) / LOCK_GRID
        ang = 2 * math.pi * k[:, None] * grid[None, :]  # [K, G]
        score = re @ torch.cos(ang) + im @ torch.sin(ang)  # [B, F, G]
        p = score.argmax(dim=-1).to(audio.dtype) / LOCK_GRID  # [B, F]
        offs = torch.arange(self.frames_per_code, dtype=audio.dtype, device=audio.device)
        starts = p[..., None] + cyc[..., None] * (offs * self.istft_hop)  # [B, F, U]
        starts = starts.reshape(b, f * self.frames_per_code)
        return starts - torch.floor(starts)

    def filtered_pulses(self, x: Tensor, phase_state: Tensor | None, drive: Tensor,
                        gain: Tensor | None, starts: Tensor | None = None
                        ) -> tuple[Tensor, Tensor | None]:
        """Features ``[B, dim, F]``, phase ``[B, 1]``, f0 ``[B, n]`` (log2 Hz, no gradient),
        optional per-frame gain ``[B, n]`` -> (``H * rfft(e)`` ``[B, n, 2 * n_bins]``, new
        phase ``[B, 1]``)."""
        b, _, f = x.shape
        n = f * self.frames_per_code
        # No gradient through the sinusoids. f0 on a grid of 1/256 octave (4.7 cents, below
        # what a listener resolves), and every quantity the phase needs read from tables of
        # that grid: the phase integrates f0, so float noise (a long offline step and short
        # streaming steps differ by ~1e-7, exp2 by an ulp between vector and scalar code)
        # would make the two drift apart. On the grid, with the advance per hop in integer
        # ticks of 2**-24 cycles, they agree exactly except where f0 sits on a rounding tie.
        idx = self.grid_index(drive)  # [B, n]
        last = None
        if starts is None:  # free-running: the phase carried over from the last frame
            assert phase_state is not None
            ticks = self.ticks[idx]  # int64 advance per hop
            phase = torch.round(phase_state * TICKS).long()  # [B, 1], exact
            ends = phase + torch.cumsum(ticks, dim=1)  # after each frame
            starts = torch.remainder(ends - ticks, TICKS).float() * (1.0 / TICKS)  # exact
            last = torch.remainder(ends[:, -1:], TICKS) if n else phase
            last = last.float() * (1.0 / TICKS)
        t = starts[..., None] + self.rate[idx][..., None] * self.offsets  # [B, n, n_fft] cycles
        theta = (2 * math.pi) * (t - torch.round(t))  # [-pi, pi]: see harmonic_sum
        k = self.harmonics[idx][..., None]  # [B, n, 1]
        e = harmonic_sum(theta, k) * (EXCITATION_RMS * torch.rsqrt(0.5 * k))
        if gain is not None:
            e = e * gain[..., None]
        spec = e @ self.basis  # [B, n, 2 * n_bins]
        er, ei = spec.split(self.n_bins, dim=-1)
        h = self.filter(x.transpose(1, 2)).reshape(b, n, 2 * self.n_bins)
        hr, hi = h.split(self.n_bins, dim=-1)
        out = torch.cat([hr * er - hi * ei, hr * ei + hi * er], dim=-1)
        return out, last

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        if self.tracked:  # it needs the decode of the same frames: ISTFTHead.run passes it
            raise TypeError("a tracked excitation runs through run_tracked(x, state, audio)")
        out, _, new_state = self.run(x, state)
        return out, new_state
