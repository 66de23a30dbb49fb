"""Length and latency arithmetic, as small pure functions (no torch)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def conv_context(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """Past samples a causal conv must cache so that chunked == whole-signal output.

    Output ``i`` of a chunk ends at chunk position ``i * stride + stride - 1`` (it sees its own
    stride block and nothing later). With ``context`` cached samples in front, output ``i`` covers
    ``cat[i * stride : i * stride + (kernel_size - 1) * dilation + 1]``, so
    ``context = (kernel_size - 1) * dilation - stride + 1``.

    >>> conv_context(7)            # depthwise ConvNeXt conv: 6 past frames
    6
    >>> conv_context(8, stride=4)  # downsampling conv, kernel 2 * stride
    4
    >>> conv_context(4, stride=4)  # patchify: no memory
    0
    """
    context = (kernel_size - 1) * dilation - stride + 1
    if context < 0:
        raise ValueError(
            f"causal conv with kernel {kernel_size}, dilation {dilation} and stride {stride} "
            "would skip input samples; use kernel_size >= stride"
        )
    return context


def frames_for_samples(num_samples: int, hop_length: int) -> int:
    """Code frames that cover ``num_samples`` (the last one zero-padded).

    >>> frames_for_samples(16000, 320)
    50
    >>> frames_for_samples(16001, 320)
    51
    >>> frames_for_samples(0, 320)
    0
    """
    return math.ceil(num_samples / hop_length)


def pad_to_hop(num_samples: int, hop_length: int) -> int:
    """Zeros to append so the length is a whole number of frames.

    >>> pad_to_hop(1000, 320)
    280
    >>> pad_to_hop(960, 320)
    0
    """
    return frames_for_samples(num_samples, hop_length) * hop_length - num_samples


def algorithmic_latency(hop_length: int, encoder_lookahead: int = 0, head_delay: int = 0) -> int:
    """Samples from an input sample's arrival until its decoded sample can be emitted (worst case).

    The encoder is fully causal, so a frame's code exists once its last sample arrived: the
    framing delay is one hop (worst case for the first sample of a frame). The ISTFT head is
    aligned so that code frame ``t`` finalises output samples ``[t * hop, (t + 1) * hop)``
    (``head_delay = 0``; see :mod:`dwancodec.nn.istft`).

    >>> algorithmic_latency(320)        # 20 ms at 16 kHz
    320
    >>> algorithmic_latency(160)        # 10 ms low-latency config
    160
    """
    return hop_length + encoder_lookahead + head_delay


def bitrate(frame_rate: float, num_quantizers: int, codebook_size: int) -> float:
    """Bits per second of ``num_quantizers`` codes per frame at their information width.

    >>> round(bitrate(50, 8, 8 * 8 * 8 * 6 * 5))
    5563
    >>> bitrate(50, 1, 1024)
    500.0
    """
    return frame_rate * num_quantizers * math.log2(codebook_size)


def n_q_for_bitrate(kbps: float, frame_rate: float, codebook_size: int,
                    num_codebooks: int, stage_bits: Sequence[float] | None = None) -> int:
    """The most stages whose bitrate (:func:`bitrate`) is at most ``kbps``, capped at
    ``num_codebooks``: the one bitrate -> n_q rule of the models, the runtime and the CLI.

    One stage of the default model is ``50 * log2(15360) = 695.4`` bit/s, so 2 kbps buys two
    stages, 6 kbps all 8 (8 stages are 5.56 kbps), and 0.5 kbps is below the lowest rate:

    >>> n_q_for_bitrate(2.0, 50, 15360, 8), n_q_for_bitrate(6.0, 50, 15360, 8)
    (2, 8)
    >>> n_q_for_bitrate(0.5, 50, 15360, 8)
    Traceback (most recent call last):
    ValueError: bitrate 0.5 kbps is below the lowest this model offers (0.70 kbps)

    ``stage_bits``: for entropy-coded files, each stage's mean coded bits per frame (kept
    with the model's entropy tables, measured where they were fitted); the rates are then
    their running sums. With the default model's (about 11.7, 12.0, 12.2, 11.0, 11.0, 9.5,
    8.3, 5.4 bits), 3 kbps buys five stages (2.89 kbps) where the fixed rate buys four:

    >>> n_q_for_bitrate(3.0, 50, 15360, 8, [11.7, 12.0, 12.2, 11.0, 11.0, 9.5, 8.3, 5.4])
    5
    """
    if isinstance(kbps, bool) or not isinstance(kbps, (int, float)) or not math.isfinite(kbps) \
            or kbps <= 0:
        raise ValueError(f"bitrate must be a positive number of kbps, got {kbps!r}")
    if stage_bits:
        rates = [frame_rate * sum(stage_bits[:n]) / 1000
                 for n in range(1, min(num_codebooks, len(stage_bits)) + 1)]
        if kbps < rates[0]:
            raise ValueError(f"bitrate {kbps} kbps is below the lowest this model offers "
                             f"({rates[0]:.2f} kbps, entropy-coded)")
        return sum(1 for r in rates if r <= kbps + 1e-9)
    per_stage = bitrate(frame_rate, 1, codebook_size) / 1000
    if kbps < per_stage:
        raise ValueError(
            f"bitrate {kbps} kbps is below the lowest this model offers ({per_stage:.2f} kbps)"
        )
    return min(num_codebooks, int(kbps / per_stage + 1e-9))


def synthesis_window(n_fft: int, kind: str = "hann") -> list[float]:
    """The head's synthesis window as floats: periodic Hann, or the MDCT sine window.

    >>> [round(v, 3) for v in synthesis_window(4)]
    [0.0, 0.5, 1.0, 0.5]
    >>> [round(v, 3) for v in synthesis_window(4, "sine")]
    [0.383, 0.924, 0.924, 0.383]
    """
    if kind == "sine":
        return [math.sin(math.pi * (i + 0.5) / n_fft) for i in range(n_fft)]
    return [0.5 - 0.5 * math.cos(2 * math.pi * i / n_fft) for i in range(n_fft)]


def blind_profile(hop_length: int, n_fft: int, istft_hop: int, head_delay: int = 0,
                  window: str = "hann") -> list[float]:
    """Per output sample of a code frame's block, the share of its overlap-add weight that
    comes from windows emitted by code frames that had *not yet seen* that input sample.

    Code frame ``t`` has seen input ``[0, (t + 1) * hop)`` and emits ``hop / istft_hop``
    windows of ``n_fft`` samples starting at ``t * hop + u * istft_hop - head_delay``; output
    sample ``s`` is the window-weighted sum of every window covering it. A window of a frame
    that ended before ``s`` is an extrapolation: no loss can make that part match the input.
    (For the MDCT head, whose overlap-add is not a weighted average, the squared window is the
    weight: ``w^2`` sums to 1 under Princen-Bradley.)

    >>> p = blind_profile(320, 320, 80)   # v1 head: all blind at a block start, none from 15 ms
    >>> round(p[0], 2), round(p[80], 2), round(p[120], 2), round(p[240], 2)
    (1.0, 0.75, 0.5, 0.0)
    """
    w = synthesis_window(n_fft, window)
    weight = [v * v for v in w] if window == "sine" else w
    frames_per_code = hop_length // istft_hop
    profile = []
    for offset in range(hop_length):
        seen = blind = 0.0
        # Frames whose windows can reach this sample: a window ends n_fft samples after its start.
        first = -(n_fft + head_delay) // hop_length - 1
        for t in range(first, head_delay // hop_length + 2):
            for u in range(frames_per_code):
                pos = offset - (t * hop_length + u * istft_hop - head_delay)
                if 0 <= pos < n_fft:
                    if offset >= (t + 1) * hop_length:
                        blind += weight[pos]
                    else:
                        seen += weight[pos]
        profile.append(blind / (blind + seen) if blind + seen > 0 else 0.0)
    return profile


def blind_share(hop_length: int, n_fft: int, istft_hop: int, head_delay: int = 0,
                window: str = "hann") -> float:
    """Mean of :func:`blind_profile` over a block: the share of the output that the head
    extrapolates beyond what the encoder has seen (0 = every output sample is decided by
    frames that saw it).

    >>> round(blind_share(320, 320, 80), 3)   # default-v1: 38 % of each block is a guess
    0.377
    >>> round(blind_share(320, 160, 80), 3)   # a 10 ms window at the same 20 ms latency
    0.127
    >>> blind_share(160, 240, 80, head_delay=160)   # 10 ms frames + 10 ms synthesis delay
    0.0
    """
    profile = blind_profile(hop_length, n_fft, istft_hop, head_delay, window)
    return sum(profile) / len(profile)
