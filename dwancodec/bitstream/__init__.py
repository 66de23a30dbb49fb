"""The ``.dwc`` container and the streaming packet format (numpy only, no torch).

- :mod:`~dwancodec.bitstream.bits`: how codes become bits (one mixed-radix integer per frame,
  ``ceil(n_q * log2(K))`` bits, frames back to back): :func:`frame_bits`, :class:`BitPacker`,
  :func:`pack_codes` / :func:`unpack_codes`, and :class:`BitstreamError`.
- :mod:`~dwancodec.bitstream.container`: the file. :func:`to_bytes` / :func:`from_bytes`,
  :func:`write_dwc` / :func:`read_dwc` / :func:`read_dwc_from`, :class:`DwcWriter`
  (incremental, bounded memory), :class:`DwcFile` (parsed file; codes unpacked lazily in
  blocks), :class:`Header`.
- :mod:`~dwancodec.bitstream.entropy`: the entropy-coded payload (format 3): static context
  tables per FSQ digit (:class:`EntropyTables`) and a byte-wise rANS coder.
- :mod:`~dwancodec.bitstream.packets`: the live path. :func:`encode_packet` /
  :func:`decode_packet`, :class:`PacketSender`, :class:`PacketReceiver` (detects loss,
  reordering, duplicates; resynchronises after a sender restart or a long outage).

Every parse error is a :class:`BitstreamError` (a ``ValueError``) naming the problem; sizes are
checked against the actual data before anything is allocated. The byte layout is in
``docs/bitstream.md``. Everything is importable from here (``from dwancodec.bitstream import
Header``).
"""

from __future__ import annotations

from .bits import (
    MAX_CODEBOOK_SIZE,
    BitPacker,
    BitstreamError,
    check_codes,
    frame_bits,
    pack_codes,
    padding_is_zero,
    payload_bytes,
    unpack_codes,
)
from .container import (
    CHECK_BLOCK_FRAMES,
    DEFAULT_ENTROPY_BLOCK,
    ENTROPY_VERSION,
    MAGIC,
    MAX_COMPATIBLE,
    MAX_HEADER,
    MAX_HOP,
    MAX_IDENTITY,
    MAX_LEVELS,
    MAX_SAMPLE_RATE,
    MIN_HEADER,
    QUANTIZER_KINDS,
    VERSION,
    VERSIONS,
    DwcFile,
    DwcWriter,
    Header,
    check_compatible,
    decodes,
    from_bytes,
    is_codes_identity,
    is_model_identity,
    read_dwc,
    read_dwc_from,
    to_bytes,
    write_dwc,
)
from .entropy import EntropyTables, context_counts, digits_of
from .packets import (
    MAX_PACKET_FRAMES,
    PACKET_MAGIC,
    PACKET_OVERHEAD,
    PACKET_VERSION,
    RESYNC_SPAN,
    SEQ_MODULUS,
    Packet,
    PacketReceiver,
    PacketSender,
    Received,
    ReceiverStats,
    decode_packet,
    encode_packet,
)

__all__ = [
    "CHECK_BLOCK_FRAMES", "DEFAULT_ENTROPY_BLOCK", "ENTROPY_VERSION", "MAGIC",
    "MAX_CODEBOOK_SIZE", "MAX_COMPATIBLE", "MAX_HEADER", "MAX_HOP", "MAX_IDENTITY",
    "MAX_LEVELS", "MAX_PACKET_FRAMES", "MAX_SAMPLE_RATE", "MIN_HEADER", "PACKET_MAGIC",
    "PACKET_OVERHEAD", "PACKET_VERSION", "QUANTIZER_KINDS", "RESYNC_SPAN", "SEQ_MODULUS",
    "VERSION", "VERSIONS", "BitPacker", "BitstreamError", "DwcFile", "DwcWriter",
    "EntropyTables", "Header", "Packet", "PacketReceiver", "PacketSender", "Received",
    "ReceiverStats", "check_codes", "check_compatible", "context_counts", "decode_packet",
    "decodes", "digits_of", "encode_packet", "frame_bits", "from_bytes", "is_codes_identity",
    "is_model_identity", "pack_codes", "padding_is_zero", "payload_bytes", "read_dwc",
    "read_dwc_from", "to_bytes", "unpack_codes", "write_dwc",
]
