#!/usr/bin/env bash
# Issue 12's ablation: fine-tune the shipped model (default-v1) for the same number of steps,
# same data order (seed 0), same thread count, one change (or combination) per variant.
#   bash recipes/ablation.sh VARIANT [STEPS]      (from the repo root, venv active)
# Checkpoints and metrics.csv go to ${RUNS:-/work/runs}/abl-VARIANT (outside git); --resume
# makes a rerun continue exactly where it stopped. Two variants side by side, one thread each.
set -euo pipefail
variant=$1
steps=${2:-2000}
D=${DATA:-../shared/data}
runs=${RUNS:-/work/runs}
PHASE='"waveform_l1": 10, "complex_stft": 15, "phase_ip": 1, "phase_gd": 1, "phase_iaf": 1'
model='{}'
weights='{}'
gan=(--set gan_start_step=1000000000)
case $variant in
    base) ;;                                         # default-v1's recipe: mel 15 + stft 1
    phase) weights="{$PHASE}" ;;                     # + phase-aware losses
    fmod) weights='{"frame_mod": 5}' ;;              # + the frame-rate buzz loss
    phase-fmod) weights="{$PHASE, \"frame_mod\": 5}" ;;  # phase losses + buzz loss
    head160) weights="{$PHASE}"                      # + 10 ms synthesis window (blind 13 %)
             model='{"decoder.n_fft": 160, "decoder.istft_hop": 80}' ;;
    complex) weights="{$PHASE}"                      # + complex (re, im) output
             model='{"decoder.n_fft": 160, "decoder.istft_hop": 80, "decoder.head": "complex"}' ;;
    mdct) weights="{$PHASE}"                         # + MDCT output (sine window, TDAC)
          model='{"decoder.n_fft": 160, "decoder.istft_hop": 80, "decoder.head": "mdct"}' ;;
    complex-gan) weights="{$PHASE}"                  # + the cheap GAN from the first step
                 model='{"decoder.n_fft": 160, "decoder.istft_hop": 80, "decoder.head": "complex"}'
                 gan=(--set gan_start_step=0 --set discriminators=stft1d
                      --set disc_segment_seconds=0.5) ;;
    mdct-gan) weights="{$PHASE}"
              model='{"decoder.n_fft": 160, "decoder.istft_hop": 80, "decoder.head": "mdct"}'
              gan=(--set gan_start_step=0 --set discriminators=stft1d
                   --set disc_segment_seconds=0.5) ;;
    complex-rfsq) weights="{$PHASE, \"residual\": 1}"   # + residual stages that refine
                  model='{"decoder.n_fft": 160, "decoder.istft_hop": 80, "decoder.head": "complex", "quantizer.stage_gain": 2.0}' ;;
    phase-gan) weights="{$PHASE}"                    # phase-aware losses + the cheap GAN
               gan=(--set gan_start_step=0 --set discriminators=stft1d
                    --set disc_segment_seconds=0.5) ;;
    phase-rfsq) weights="{$PHASE, \"residual\": 1}"  # phase-aware losses + refining stages
                model='{"quantizer.stage_gain": 2.0}' ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
esac
exec dwancodec train \
    --train-data-path "$D/train-16k/speech-wb/ast-en" "$D/train-16k/speech-wb/ast-es" \
        "$D/train-16k/speech-wb/ast-it" "$D/train-16k/speech-nb" "$D/train-16k/music-wb" \
    --val-data-path "$D/val-16k" --experiment-name "abl-$variant" --save "$runs/abl-$variant" \
    --init-from dwancodec/assets/default --batch-size 8 --segment-seconds 1.0 \
    --max-steps "$steps" --num-workers 0 --threads 1 --log csv --resume --quiet \
    --lr 5e-4 --set warmup_steps=100 --set min_lr_ratio=1.0 \
    --set val_every=500 --set val_segments=9 --set val_segment_seconds=4 --set save_every=250 \
    --set "loss_weights=$weights" --set "model_overrides=$model" "${gan[@]}"
