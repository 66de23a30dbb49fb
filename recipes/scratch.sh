#!/usr/bin/env bash
# Issue 12, round 2: from-scratch runs on v1's schedule (lr 1e-3, 500 warm-up steps, cosine to
# 5 % at step 30000, batch 8 x 1 s, seed 0, one thread), so each curve can be read against
# default-v1's at the same step and against the others at the same CPU time.
#   bash recipes/scratch.sh VARIANT [MAX_MINUTES]   (from the repo root, venv active)
# GAN_START=N starts the GAN of head160-phase-gan at step N (default 4000).
# STEPS=N ends the cosine at step N instead of 30000 (a run that must anneal within a budget);
# INIT=BUNDLE starts from a bundle's weights (tensors of another shape, e.g. a new head, keep
# their initialisation); NAME= names the run folder (default scratch-VARIANT); LR= sets the peak
# learning rate (default 1e-3; a warm restart from a trained bundle uses less); TRAIN=wb trains on
# the wideband speech folders only (no narrowband speech, no music: does capacity spent on them
# cost wideband speech quality?). EMA=D keeps an exponential moving average of the weights
# (decay D, e.g. 0.999) that validation and the bundles use; the checkpoints hold both, so
# raw and averaged weights can be scored from the same run. ADV= and FM= set the adversarial
# and feature-matching weights of the GAN variant (default 1 and 2); DISC= its discriminators
# (default stft1d; mpd: HiFi-GAN's periods 2-11, which judge a voice's periodicity; both:
# stft1d,mpd), DISC_CH= their width (default 32) and DISC_WARMUP=N the steps in which they
# train alone before the generator sees them (default 0). DEPTH=N sets the decoder's
# number of ConvNeXt blocks (default 6); with INIT= the blocks the source lacks start as the
# identity, so a deeper trunk warm-starts from the source's exact function. ENC_DEPTH=N sets
# the number of ConvNeXt blocks in the encoder's last stage (256 channels at the 50 Hz code-frame
# rate; default 2); with INIT= the added blocks start as the identity too. HEAD= sets the
# decoder head (magphase, complex, mdct); with INIT= its output layer starts fresh. SUBFRAME=N
# adds N ConvNeXt blocks at the synthesis-frame rate to the head (with INIT=, as the identity).
# STFT_W=W sets the MR-STFT loss weight (default 1, v1's): its spectral convergence term weighs
# the loud bins, i.e. the low-band harmonics that recipes/error_split.py finds PESQ loses most on.
# STFT_HR_W=W sets the weight of the same loss at 1024 and 2048 points (default 0), the
# resolutions at which a voice's harmonics are separate peaks (losses.HARMONIC_RESOLUTIONS).
# LB_W=W sets the weight of the low-band harmonic loss (losses.LowBandHarmonicLoss; default 0),
# LB_CUT=HZ its upper edge (default 2000). PH_RES= sets the (n_fft, hop) pairs of the phase
# losses as JSON (default [[320, 80]]; e.g. [[320, 80], [1024, 256]] adds harmonic resolution).
# PH_POW=P weights each bin's phase error by the target's magnitude to the power P (default 0.3,
# nearly flat; 1 gives the loud bins their share of the gradient).
# EXTRA="DIR ..." adds training folders (e.g. /work/data-extra/train-16k from
# recipes/fetch_extra_speech.sh: 41 more wideband voice groups in 22 languages, which default-v1
# trained on and rounds 2-10 did not). EXTRA_REPEAT=F draws the EXTRA folders' audio F times as
# often as the shared set's (train_data_repeat; default 1: by length, so the 267 extra minutes
# outweigh the shared 147 almost two to one; 0.55 draws them half and half).
# NB_REPEAT=F (with EXTRA_REPEAT) draws the shared narrowband speech F times as often: the extra
# corpus is all wideband, so mixing it in cuts narrowband's share (round 15: lmix lost val-16k's
# narrowband clips); 1.7 keeps its share of the draws at EXTRA_REPEAT=0.3.
# EXC=harmonic adds the harmonic excitation to the head (decoder.excitation: a learned complex
# filter on a pulse train at a predicted f0 whose phase carries across frames; with INIT= its
# filter starts at 0, so the run starts from the source's exact function). F0_W=W sets the
# weight of its f0 loss (octaves of error against the input's pitch track; default 1).
# EXC_LR=S scales the excitation filter's learning rate (default 1).
# FREEZE=1 trains the decoder only (encoder and quantizer fixed, so the codes do not change;
# the step skips the encoder's backward).
# WAV_W=, CPLX_W= and PH_W= set the phase-aware weights (default 10, 15 and 1 for each of IP, GD,
# IAF): waveform L1 and the complex STFT MSE are regression losses on phase-bearing values, so
# where the phase is uncertain their optimum shrinks the magnitude (the smeared harmonics);
# the anti-wrapping phase losses do not shrink it. PH_IP_W=, PH_GD_W= and PH_IAF_W= set one of
# the three apart from PH_W (round 15: a pulse-timing error of d samples is a group-delay error
# of 2 pi d / n_fft per bin, inside the anti-wrap's basin for any d under n_fft / 2, where the
# IP and IAF errors of the bins above ~1 kHz are already past pi).
# PESQ_W=W adds PESQ-WB's own disturbance as a loss (training/perceptual.PesqLoss; 0.1 D +
# 0.0309 A in raw-MOS points, about 2 for the shipped decodes; default 0). PESQ_A=W sets A's
# weight inside it (default 0.0309; 0: the symmetric disturbance D alone). MELG_W=W adds the
# mel guard (losses.BandMelLoss: log-mel L1 on the mel bands below 150 Hz and above 7 kHz alone,
# the bands PESQ-WB does not or hardly hears, where round 19's restart lost mel; default 0);
# MELG_BANDS='[[0, 8000]]' moves its bands (there: the whole mel distance, as ship_check scores it);
# MELG_STAGES=N scores only the batch items decoded from at most N stages (the low bitrates).
# PERC_MIN=N scores the pesq and stoi losses only on items decoded from at least N stages;
# PERC_LOW=F keeps the items below N in them at F times the weight (default 0).
# STOI_W=W adds 1 - STOI (training/intelligibility.StoiLoss; default 0).
# QDROP=F sets the share of batch items trained at a random stage count (quantizer dropout;
# default 0.5, so n_q 8 gets 9/16 of the items and n_q 1 only 1/16; 1 draws every count alike:
# round 16's soup ingredient for the low stages). SEED=N sets the run's seed (data order,
# crops, dropout draws; default 0), e.g. for two restarts that differ only in their noise.
# Checkpoints every 250 steps to ${RUNS:-/work/runs}/scratch-VARIANT (outside git); rerunning
# the same command resumes exactly (data order, RNG, optimizer). MAX_MINUTES stops a session's
# share cleanly at a checkpoint; 0 runs to step 30000.
set -euo pipefail
variant=$1
minutes=${2:-0}
D=${DATA:-../shared/data}
runs=${RUNS:-/work/runs}
steps=${STEPS:-30000}
name=${NAME:-scratch-$variant}
init=()
lr=()
if [[ -n ${LR:-} ]]; then lr=(--lr "$LR"); fi
extra=()
if [[ -n ${EMA:-} ]]; then extra+=(--set "ema_decay=$EMA"); fi
if [[ -n ${FREEZE:-} ]]; then extra+=(--set freeze_encoder=true); fi
if [[ -n ${EXC_LR:-} ]]; then extra+=(--set "excitation_lr_scale=$EXC_LR"); fi
if [[ -n ${LB_CUT:-} ]]; then extra+=(--set "lowband_cutoff_hz=$LB_CUT"); fi
if [[ -n ${PH_RES:-} ]]; then extra+=(--set "phase_resolutions=$PH_RES"); fi
if [[ -n ${PH_POW:-} ]]; then extra+=(--set "phase_weight_power=$PH_POW"); fi
if [[ -n ${PESQ_A:-} ]]; then extra+=(--set "pesq_asymmetry_weight=$PESQ_A"); fi
if [[ -n ${MELG_BANDS:-} ]]; then extra+=(--set "mel_guard_bands_hz=$MELG_BANDS"); fi
if [[ -n ${MELG_STAGES:-} ]]; then extra+=(--set "mel_guard_max_stages=$MELG_STAGES"); fi
if [[ -n ${PERC_MIN:-} ]]; then extra+=(--set "perceptual_min_stages=$PERC_MIN"); fi
if [[ -n ${PERC_LOW:-} ]]; then extra+=(--set "perceptual_low_weight=$PERC_LOW"); fi
train=("$D/train-16k/speech-wb/ast-en" "$D/train-16k/speech-wb/ast-es" "$D/train-16k/speech-wb/ast-it")
case ${TRAIN:-all} in
    all) train+=("$D/train-16k/speech-nb" "$D/train-16k/music-wb") ;;
    wb) ;;
    *) echo "unknown TRAIN=${TRAIN} (all or wb)" >&2; exit 2 ;;
esac
if [[ -n ${EXTRA:-} ]]; then
    read -r -a more <<< "$EXTRA"
    if [[ -n ${EXTRA_REPEAT:-} ]]; then
        rep=()
        for t in "${train[@]}"; do
            if [[ $t == */speech-nb ]]; then rep+=("${NB_REPEAT:-1}"); else rep+=(1); fi
        done
        for _ in "${more[@]}"; do rep+=("$EXTRA_REPEAT"); done
        extra+=(--set "train_data_repeat=$(IFS=,; echo "${rep[*]}")")
    fi
    train+=("${more[@]}")
fi
if [[ -n ${INIT:-} ]]; then init=(--set "init_from=$INIT"); fi
# default-v1's loss weights, spelled out so that "base" stays v1 when the defaults move on.
V1="\"waveform_l1\": 0, \"stft\": ${STFT_W:-1}, \"stft_hr\": ${STFT_HR_W:-0}, \"mel\": 15, \"complex_stft\": 0, \"phase_ip\": 0, \"phase_gd\": 0, \"phase_iaf\": 0, \"lowband\": ${LB_W:-0}"
ph=${PH_W:-1}
PHASE="\"waveform_l1\": ${WAV_W:-10}, \"complex_stft\": ${CPLX_W:-15}, \"phase_ip\": ${PH_IP_W:-$ph}, \"phase_gd\": ${PH_GD_W:-$ph}, \"phase_iaf\": ${PH_IAF_W:-$ph}"
model='{}'
weights="{$V1}"
gan=(--set gan_start_step=1000000000)
case $variant in
    base) ;;                                          # default-v1's recipe on today's data
    head160-phase) weights="{$V1, $PHASE}"            # 10 ms window (blind 12.7 %) + phase losses
                   model='{"decoder.n_fft": 160, "decoder.istft_hop": 80}' ;;
    phase) weights="{$V1, $PHASE}" ;;                 # phase losses on the 20 ms window
    head160) model='{"decoder.n_fft": 160, "decoder.istft_hop": 80}' ;;
    head160-phase-gan) weights="{$V1, $PHASE, \"adversarial\": ${ADV:-1}, \"feature_matching\": ${FM:-2}}"
                       # + the cheap 1-D STFT GAN (0.5 s crops)
                       model='{"decoder.n_fft": 160, "decoder.istft_hop": 80}'
                       gan=(--set "gan_start_step=${GAN_START:-4000}" --set "discriminators=${DISC:-stft1d}"
                            --set disc_segment_seconds=0.5 --set "disc_channels=${DISC_CH:-32}"
                            --set "disc_warmup_steps=${DISC_WARMUP:-0}") ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
esac
# Adds "KEY": VALUE to the model overrides (VALUE as JSON).
override() {
    if [[ $model == '{}' ]]; then model="{\"$1\": $2}"
    else model="${model%\}}, \"$1\": $2}"; fi
}
# magphase, complex or mdct (with INIT=, a new head's output layer starts fresh)
if [[ -n ${HEAD:-} ]]; then override decoder.head "\"$HEAD\""; fi
if [[ -n ${DEPTH:-} ]]; then override decoder.depth "$DEPTH"; fi
if [[ -n ${ENC_DEPTH:-} ]]; then override encoder.depths "[1, 1, 1, $ENC_DEPTH]"; fi
if [[ -n ${SUBFRAME:-} ]]; then override decoder.subframe_depth "$SUBFRAME"; fi
if [[ -n ${EXC:-} ]]; then override decoder.excitation "\"$EXC\""; fi
if [[ -n ${F0_W:-} ]]; then weights="${weights%\}}, \"f0\": $F0_W}"; fi
if [[ -n ${PESQ_W:-} ]]; then weights="${weights%\}}, \"pesq\": $PESQ_W}"; fi
if [[ -n ${MELG_W:-} ]]; then weights="${weights%\}}, \"mel_guard\": $MELG_W}"; fi
if [[ -n ${STOI_W:-} ]]; then weights="${weights%\}}, \"stoi\": $STOI_W}"; fi
if [[ -n ${QDROP:-} ]]; then override quantizer.quantizer_dropout "$QDROP"; fi
if [[ -n ${SEED:-} ]]; then extra+=(--set "seed=$SEED"); fi
exec dwancodec train \
    --train-data-path "${train[@]}" \
    --val-data-path "$D/val-16k" --experiment-name "$name" \
    --save "$runs/$name" --batch-size 8 --segment-seconds 1.0 \
    --max-steps "$steps" --num-workers 0 --threads 1 --log csv --resume --quiet \
    --set val_every=1000 --set val_segments=9 \
    --set val_segment_seconds=4 --set save_every=250 --set "max_minutes=$minutes" \
    --set "loss_weights=$weights" --set "model_overrides=$model" "${gan[@]}" "${init[@]}" "${lr[@]}" "${extra[@]}"
