"""The codec commands, one module per ``dwancodec`` subcommand (arguments: :mod:`dwancodec.cli`).

- :mod:`~dwancodec.commands.encode`, :mod:`~dwancodec.commands.decode`: ``run_encode`` /
  ``run_decode``, over the file API in :mod:`~dwancodec.commands.files` (:func:`encode_file`,
  :func:`decode_file`, :func:`read_dwc_input`, :func:`atomic_output`, :func:`output_kind`).
- :mod:`~dwancodec.commands.roundtrip`: :func:`stream_roundtrip` (the live path through the
  bitstream's packets, measured) and ``run_roundtrip``.
- :mod:`~dwancodec.commands.info`, :mod:`~dwancodec.commands.demo`: ``run_info`` / ``run_demo``.
- :mod:`~dwancodec.commands.common`: what they share (:func:`load_model`, :func:`choose_n_q`,
  engines, threads, progress, scores and their formatting).

Nothing is imported here: a subcommand imports only its own module and what that needs.
"""
