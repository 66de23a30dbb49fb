"""Length and latency arithmetic, as small pure functions (no torch)."""

from __future__ import annotations

import math


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
    5566
    >>> bitrate(50, 1, 1024)
    500.0
    """
    return frame_rate * num_quantizers * math.log2(codebook_size)
