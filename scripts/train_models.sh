#!/usr/bin/env bash
# The recipe of the bundled models: synthetic corpus -> cache -> four trainings -> evaluation.
#   bash scripts/train_models.sh [WORK_DIR]      (CPU; about 13 hours of training on 2 cores)
# Set DEVICE=cuda to train on a GPU, MINUTES_SCALE to train longer (e.g. 4).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-work}
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
SCALE=${MINUTES_SCALE:-1}
CORPUS=$WORK/synth-100
CACHE=$WORK/cache-synth-100
mkdir -p "$WORK"

[ -d "$CORPUS" ] || $PY -m convsep synth "$CORPUS" --tracks-train 100 --tracks-test 50 --seconds 60 --seed 0 --jobs 2
[ -f "$CACHE/index.json" ] || $PY -m convsep prepare "$CORPUS" "$CACHE" --subsets train

common=(--device "$DEVICE" --steps-per-epoch 300 --epochs 1000 --valid-seconds 10 --patience 8 --seed 0 --no-progress)
minutes() { $PY -c "print($1 * $SCALE)"; }

# 1. The improved model: wider, log-compressed normalised input, ReLU, all augmentations, MSE.
$PY -m convsep train "$CACHE" -o "$WORK/runs/convsep-plus" --model convsep-plus --loss mse \
    --optimiser adam --lr 1e-3 --batch-size 16 --blocks-per-excerpt 4 --max-minutes "$(minutes 30)" "${common[@]}"

# 2. The seed's stereo model with the seed's augmentations (random excerpts, cross-song mixing,
#    channel muting, source muting) and the DeepConvSep loss.
$PY -m convsep train "$CACHE" -o "$WORK/runs/convsep-stereo" --model convsep-stereo --loss deepconvsep \
    --optimiser adam --lr 1e-3 --batch-size 16 --blocks-per-excerpt 4 \
    --augment cross_song,channel_mute,source_dropout,silence_rejection --max-minutes "$(minutes 40)" "${common[@]}"

# 3. The faithful mono DeepConvSep: its loss, Adadelta (lr 1.0), batch 32, no augmentation.
$PY -m convsep train "$CACHE" -o "$WORK/runs/deepconvsep" --model deepconvsep --loss deepconvsep \
    --optimiser adadelta --lr 1.0 --batch-size 32 --blocks-per-excerpt 1 --augment none \
    --max-minutes "$(minutes 15)" "${common[@]}"

# 4. The low-latency model of `convsep stream`: step 2's model fine-tuned with the loss on block
#    position 28 only, the frame that causal inference with one frame of look-ahead (29.0 ms)
#    takes from each block; its validation scores that causal separation. One torch thread.
OMP_NUM_THREADS=1 $PY -m convsep train "$CACHE" -o "$WORK/realtime/convsep-stereo-rt1" --model convsep-stereo \
    --loss deepconvsep --optimiser adam --lr 5e-4 --batch-size 16 --blocks-per-excerpt 4 \
    --augment cross_song,channel_mute,source_dropout,silence_rejection --lookahead 1 \
    --init "$WORK/runs/convsep-stereo/best.pt" --max-minutes "$(minutes 25)" "${common[@]}"
# Its causal quality at look-ahead 0, 1, 3, 7 against the offline default model, and bundling:
#   $PY scripts/evaluate_realtime.py "$CORPUS" --tracks 20 --seconds 20 --models default "$WORK/realtime/convsep-stereo-rt1/best.pt"
#   $PY scripts/bundle_realtime.py "$WORK/realtime/convsep-stereo-rt1"

# 5. The default model for real music: step 2's model fine-tuned with real singing. MIR-1K's
#    training singers are mixed into the batches (half the excerpts get a real voice; karaoke
#    excerpts, a quarter then a whole batch more, are scored as vocals / accompaniment), their loss stops at
#    the recordings' 8 kHz band; the held-out singers' real karaoke mixes pick the best epoch.
#    a) on the original corpus, b) on the varied corpus (several GM banks, recorded drum kits,
#    MIR-1K and Berklee voices, pedalboard production). MSE through the fused training step.
MIR1K=${MIR1K:-../shared/data/real/mir1k}
VARIED=$WORK/synth-varied-100
VARIED_CACHE=$WORK/cache-synth-varied
[ -d "$VARIED" ] || $PY -m convsep synth "$VARIED" --tracks-train 100 --tracks-test 20 --seconds 30 --seed 0 --jobs 2
[ -f "$VARIED_CACHE/index.json" ] || $PY -m convsep prepare "$VARIED" "$VARIED_CACHE" --subsets train
real=(--model convsep-stereo --loss mse --optimiser adam --lr 5e-4 --batch-size 16 --blocks-per-excerpt 4
      --augment cross_song,channel_mute,source_dropout,silence_rejection --mir1k "$MIR1K" --karaoke-cache "$WORK"
      --real-valid-clips 24 --device "$DEVICE" --steps-per-epoch 150 --epochs 1000 --valid-seconds 10
      --patience 0 --seed 0 --no-progress)
$PY -m convsep train "$CACHE" -o "$WORK/runs/real-stage1" --init "$WORK/runs/convsep-stereo/best.pt" \
    --karaoke-share 0.25 --max-minutes "$(minutes 25)" "${real[@]}"
$PY -m convsep train "$VARIED_CACHE" -o "$WORK/runs/real-stage2" --init "$WORK/runs/real-stage1/best.pt" \
    --karaoke-share 1.0 --max-minutes "$(minutes 40)" "${real[@]}"
# c) real-wide: real-stage2's model widened (conv1 50 -> 128 filters, conv2 30 -> 48, bottleneck
#    128 -> 256; the new units start with zero outgoing weights, so it starts as real-stage2) and
#    trained on both corpora at once with MIR-1K singing, a cosine schedule over 80 epochs.
$PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/wide-mixed" --init "$WORK/runs/real-stage2/best.pt" \
    "${real[@]}" --model-config '{"conv1_filters": 128, "conv2_filters": 48, "bottleneck": 256}' \
    --schedule cosine --karaoke-share 0.5 --steps-per-epoch 200 --epochs 80 --max-minutes "$(minutes 105)"
# d) two more cosine cycles in bfloat16 (twice the blocks per second on a CPU with bf16 units),
#    karaoke three quarters of a batch more: a short one from wide-mixed's best, then a long
#    one from its best, chosen on 48 held-out clips instead of 24.
wide=(--model-config '{"conv1_filters": 128, "conv2_filters": 48, "bottleneck": 256}' --schedule cosine
      --karaoke-share 0.75 --steps-per-epoch 200 --precision bf16 --lr 3e-4)
$PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/wide-mixed2" --init "$WORK/runs/wide-mixed/best.pt" \
    "${real[@]}" "${wide[@]}" --epochs 26 --seed 2 --max-minutes "$(minutes 19)"
$PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/wide-long" --init "$WORK/runs/wide-mixed2/best.pt" \
    "${real[@]}" "${wide[@]}" --epochs 140 --real-valid-clips 48 --seed 3 --max-minutes "$(minutes 112)"
# e) one more cosine cycle from its best, lr 2e-4 over 110 epochs, the MIR-1K excerpts played at
#    speeds in [1/1.19, 1.19] (up to 3 semitones up or down, tempo alike) as new singers;
#    stopped after 96 epochs (68 minutes, the learning rate near zero), best at epoch 82.
$PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/wide-speed" --init "$WORK/runs/wide-long/best.pt" \
    "${real[@]}" "${wide[@]}" --lr 2e-4 --epochs 110 --real-valid-clips 48 --real-speed 1.19 --seed 4 \
    --max-minutes "$(minutes 68)"
# f) one more from its best, lr 3e-4 over 55 epochs, the speeds as in e) and each MIR-1K voice
#    through its own random smooth equaliser of up to +-6 dB (a new timbre at the same pitch);
#    it ran on one thread beside another run and stopped after 46 epochs (72 minutes), best at 45.
OMP_NUM_THREADS=1 $PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/eq-speed" \
    --init "$WORK/runs/wide-speed/best.pt" "${real[@]}" "${wide[@]}" --epochs 55 --real-valid-clips 48 \
    --real-speed 1.19 --real-eq 6 --seed 5 --max-minutes "$(minutes 72)"
# g) and one from its best with stronger equalisers (up to +-10 dB), lr 2e-4 over 45 epochs;
#    stopped after 39 epochs (40 minutes), best at epoch 29.
$PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/eq-strong" --init "$WORK/runs/eq-speed/best.pt" \
    "${real[@]}" "${wide[@]}" --lr 2e-4 --epochs 45 --real-valid-clips 48 --real-speed 1.19 --real-eq 10 --seed 6 \
    --max-minutes "$(minutes 40)"
# h) one more cycle from its best with the same settings, lr 2e-4 over 36 epochs, on one thread
#    beside a variant whose voices also had their formants moved (--real-formant 1.15, not used:
#    see docs/results.md); all 36 epochs in 76 minutes of wall clock, best at epoch 24.
OMP_NUM_THREADS=1 $PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/eq-more" \
    --init "$WORK/runs/eq-strong/best.pt" "${real[@]}" "${wide[@]}" --lr 2e-4 --epochs 36 --real-valid-clips 48 \
    --real-speed 1.19 --real-eq 10 --seed 7 --max-minutes "$(minutes 75)"
# i) eq-more's best moved to 2048-point frames (21.5 Hz bins instead of 43 Hz; the same hop, so
#    the same instants): the last layer resampled along frequency, the first refitted by least
#    squares on training excerpts to see what it saw (scripts/reframe_model.py), then one more
#    cosine cycle at the new frame length, lr 2e-4 over 45 epochs, both threads; stopped after
#    37 epochs (67 minutes, the learning rate down to 1.5e-5), best at epoch 22.
$PY scripts/reframe_model.py "$WORK/runs/eq-more/best.pt" "$WORK/models/reframe2048.pt" --n-fft 2048 \
    --corpus "$CORPUS" --corpus "$VARIED" --mir1k "$MIR1K" --ridge 0.01
wide2048=(--model-config '{"conv1_filters": 128, "conv2_filters": 48, "bottleneck": 256, "n_fft": 2048,
          "input_scale": 0.02209708691207961}')
$PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/fft2048" --init "$WORK/models/reframe2048.pt" \
    "${real[@]}" "${wide[@]}" "${wide2048[@]}" --lr 2e-4 --epochs 45 --real-valid-clips 48 \
    --real-speed 1.19 --real-eq 10 --seed 11 --max-minutes "$(minutes 92)"
# j) fft2048's best moved on to 4096-point frames (10.8 Hz bins) the same way, conv1 fitted on 96
#    excerpts, then one cosine cycle, lr 2e-4 over 20 epochs, both threads (57 minutes,
#    resumed once with --resume after a --max-minutes stop), best at the last epoch.
$PY scripts/reframe_model.py "$WORK/runs/fft2048/best.pt" "$WORK/models/fft2048-4096.pt" --n-fft 4096 \
    --corpus "$CORPUS" --corpus "$VARIED" --mir1k "$MIR1K" --ridge 0.01 --per-corpus 32
wide4096=(--model-config '{"conv1_filters": 128, "conv2_filters": 48, "bottleneck": 256, "n_fft": 4096,
          "input_scale": 0.015625000000000003}')
$PY -m convsep train "$CACHE" "$VARIED_CACHE" -o "$WORK/runs/fft4096" --init "$WORK/models/fft2048-4096.pt" \
    "${real[@]}" "${wide[@]}" "${wide4096[@]}" --lr 2e-4 --epochs 20 --real-valid-clips 48 \
    --real-speed 1.19 --real-eq 10 --seed 12 --max-minutes "$(minutes 60)"
# Scores on the held-out singers (169 clips x voice at 0 and -5 dB), as in docs/results.md:
#   $PY -m convsep evaluate --root "$MIR1K" --two-stems vocals --split valid --levels 0,-5 \
#       -m default -m "$WORK/runs/real-stage2/best.pt" -o "$WORK/eval-mir1k"

# 6. Real four-stem songs (the MUSDB18 training previews and the CC0 album, ../shared/data/real):
#    decoded once into a cache (the split comes from convsep/data/real_validation.json), then
#    the default model of step 5 moved to hop 1024 (its filters as they are: a 30-frame block
#    now sees 0.70 s instead of 0.17 s, and costs a quarter per second of music) and trained on
#    the real songs alone: remixes across songs (cross-song p 0.5, gains 0.25-1.25, channel
#    swap), a third of the excerpts played 1/1.12-1.12x as fast (pitch and tempo, per source),
#    the album's bass-in-other songs as a second half-batch scored as vocals / drums /
#    bass+other, bf16 matrix products, MSE through the fused step; the best epoch by the real
#    validation set's mean median global SDR. a) real-a: one epoch of 150 steps at lr 3e-4;
#    b) real-b: from real-a, cosine from lr 3e-4 over 22 epochs, stopped by --max-minutes.
#    (step 5's default model is the one bundled before this step: `--init default` means it.)
REAL=${REAL:-../shared/data/real}
REAL_CACHE=$WORK/cache-real
[ -f "$REAL_CACHE/index.json" ] || $PY -m convsep prepare "$REAL" "$REAL_CACHE" --jobs 2
real4=(--model convsep-stereo --model-config '{"n_fft": 4096, "hop": 1024, "conv1_filters": 128, "conv2_filters": 48,
       "bottleneck": 256, "input_scale": 0.015625000000000003}' --loss mse --optimiser adam --lr 3e-4
       --batch-size 16 --blocks-per-excerpt 4 --precision bf16 --valid-seconds 30 --patience 0 --no-progress
       --speed-max 1.12 --speed-p 0.3 --grouped-share 0.5 --steps-per-epoch 150 --device "$DEVICE")
# (real-a ran with --schedule cosine --epochs 70 and was stopped by hand after its first epoch)
$PY -m convsep train "$REAL_CACHE" -o "$WORK/runs/real-a" --init default "${real4[@]}" --epochs 1 --seed 0
$PY -m convsep train "$REAL_CACHE" -o "$WORK/runs/real-b" --init "$WORK/runs/real-a/best.pt" "${real4[@]}" \
    --schedule cosine --epochs 22 --seed 0 --max-minutes "$(minutes 100)"
# (real-b was stopped by hand after 13 epochs, its best at 12: the real songs alone had made the
#  model forget MIR-1K's singers, 3.00 dB vocals on 120 held-out karaoke mixes against 6.57.)
# c) real-c: from real-b, MIR-1K singing back in (a fifth of the excerpts' vocals replaced by a
#    training singer, karaoke excerpts a quarter-batch more), cosine from lr 1e-4 over 8 epochs,
#    the best still chosen on the real four-stem validation set (--select-on synthetic: the
#    cache's own validation split); stopped by hand after 7 epochs, best at 2.
$PY -m convsep train "$REAL_CACHE" -o "$WORK/runs/real-c" --init "$WORK/runs/real-b/best.pt" "${real4[@]}" \
    --schedule cosine --epochs 8 --lr 1e-4 --mir1k "$MIR1K" --karaoke-cache "$WORK" --real-vocals-p 0.2 \
    --karaoke-share 0.25 --real-valid-clips 24 --select-on synthetic --seed 5 --max-minutes "$(minutes 25)"
# d) real-wb: real-c's model widened without changing its function (conv1 128 -> 256, conv2
#    48 -> 64, bottleneck 256 -> 512: the same cost per second, see docs/benchmarks.md) and
#    trained with the songs balanced: a song weighs at most 10 s of excerpt starts (--track-cap;
#    before it, the album's 5-minute 2.Lithium was 55% of the excerpts beside 73 previews of
#    7 s) and the bass-in-other songs a fifth of a batch more instead of a half; cosine from lr
#    3e-4 over 40 epochs, stopped after 17, best at 15.
wide512=(--model-config '{"n_fft": 4096, "hop": 1024, "conv1_filters": 256, "conv2_filters": 64, "bottleneck": 512,
         "input_scale": 0.015625000000000003}')
balanced=(--track-cap 10 --grouped-share 0.2 --mir1k "$MIR1K" --karaoke-cache "$WORK" --real-vocals-p 0.2
          --karaoke-share 0.25 --real-valid-clips 24 --select-on synthetic)
$PY -m convsep train "$REAL_CACHE" -o "$WORK/runs/real-wb" --init "$WORK/runs/real-c/best.pt" "${real4[@]}" \
    "${wide512[@]}" "${balanced[@]}" --schedule cosine --epochs 40 --lr 3e-4 --seed 9 --max-minutes "$(minutes 80)"
# e) from real-wb's best, cosine from lr 1e-4 over 16 epochs with a moving average of the
#    weights (--ema 0.998, about the last 500 steps) validated and saved; two runs side by side
#    on one thread each: real-wr on the real songs alone, real-ws with 30 tracks of the varied
#    synthetic corpus beside them (about half of the non-grouped excerpts).
SYNTH30=$WORK/synth-varied-30
SYNTH30_CACHE=$WORK/cache-synth-varied-30
[ -d "$SYNTH30" ] || $PY -m convsep synth "$SYNTH30" --tracks-train 30 --tracks-test 1 --seconds 30 --seed 0 --jobs 2
[ -f "$SYNTH30_CACHE/index.json" ] || $PY -m convsep prepare "$SYNTH30" "$SYNTH30_CACHE" --subsets train
fine=(--init "$WORK/runs/real-wb/best.pt" "${real4[@]}" "${wide512[@]}" "${balanced[@]}" --schedule cosine
      --epochs 16 --lr 1e-4 --ema 0.998 --seed 10 --max-minutes "$(minutes 50)")
OMP_NUM_THREADS=1 $PY -m convsep train "$REAL_CACHE" -o "$WORK/runs/real-wr" "${fine[@]}" &
OMP_NUM_THREADS=1 $PY -m convsep train "$REAL_CACHE" "$SYNTH30_CACHE" -o "$WORK/runs/real-ws" "${fine[@]}"
wait
# f) The loss and the augmentation, each changed alone against real-wr (docs/results.md; none
#    bundled: nothing passed the spread of the validation set). Two at a time, one thread each;
#    each was stopped by hand after the epochs that docs/results.md lists.
tweak() { local name=$1 seed=$2; shift 2
  OMP_NUM_THREADS=1 $PY -m convsep train "$REAL_CACHE" -o "$WORK/runs/$name" "${fine[@]}" --seed "$seed" "$@"; }
tweak real-wp 10 --target phase-sensitive & tweak real-wq 11 --target phase-sensitive --lr 2e-4 --ema 0; wait
tweak real-wl 12 --target phase-sensitive --level-balance & tweak real-wm 12 --level-balance; wait
tweak real-wx 13 --cross-song-p 1.0 & tweak real-wy 13 --speed-max 1.2 --speed-p 0.6; wait
# 7. The low-latency model for real songs: step 4's model fine-tuned on the same data with the
#    loss on the frame that causal inference at look-ahead 1 (29.0 ms) takes, one thread:
#    a) rt-a: lr 5e-4 (cosine over 20 epochs, stopped by hand after 4; best at the first):
#       bundled as `realtime-small`; b) rt-wide: rt-a widened without changing its function
#       (conv1 50 -> 128, conv2 30 -> 48, bottleneck 128 -> 256), cosine from lr 3e-4 over 15
#       epochs (best at 6): bundled as `realtime`. (rt-b, rt-a at lr 1e-4 over 10 epochs, did
#       not do better: 2.48 against 2.50.)
rt=(--model convsep-stereo --lookahead 1 --loss mse --optimiser adam --batch-size 16 --blocks-per-excerpt 4
    --precision bf16 --valid-seconds 30 --patience 0 --no-progress --speed-max 1.12 --speed-p 0.3
    --grouped-share 0.5 --steps-per-epoch 150 --device "$DEVICE")
OMP_NUM_THREADS=1 $PY -m convsep train "$REAL_CACHE" -o "$WORK/runs/rt-a" --init realtime "${rt[@]}" --lr 5e-4 \
    --schedule cosine --epochs 20 --seed 1 --max-minutes "$(minutes 3)"
OMP_NUM_THREADS=1 $PY -m convsep train "$REAL_CACHE" -o "$WORK/runs/rt-wide" --init "$WORK/runs/rt-a/best.pt" "${rt[@]}" \
    --model-config '{"conv1_filters": 128, "conv2_filters": 48, "bottleneck": 256}' --lr 3e-4 --schedule cosine \
    --epochs 15 --seed 1 --max-minutes "$(minutes 35)"
# (rt-wb, rt-wide's best with the songs balanced as in step 6 d and --ema 0.998, cosine from lr 2e-4 over
#  30 epochs, streamed 2.73 against 2.67: vocals +0.39, bass -0.18; not bundled.)
# 8. `free`: a model trained only on freely licensed data, for commercial work: `synthetic` (the
#    classic corpus: FluidR3_GM, MIT; a formant singer) fine-tuned at its own size and frames on
#    the CC0 album (6 songs, 5 of them bass-in-other as half a batch) beside 30 new tracks of the
#    classic corpus; no MUSDB18, no MIR-1K. 3.Sodium alone picks the epoch, scored whole (its
#    middle 30 s have no vocals); cosine from lr 3e-4 over 30 epochs with --ema 0.998, best at 14.
FREE_SYNTH=$WORK/synth-free-30
[ -d "$FREE_SYNTH" ] || $PY -m convsep synth "$FREE_SYNTH" --tracks-train 30 --tracks-test 1 --seconds 30 --seed 1 \
    --jobs 2 --banks fluid --voices synthetic --production classic
[ -f "$WORK/cache-synth-free-30/index.json" ] || $PY -m convsep prepare "$FREE_SYNTH" "$WORK/cache-synth-free-30" --subsets train
mkdir -p "$WORK/cc0-root" && ln -sfn "$(realpath "$REAL/eif_cc0")" "$WORK/cc0-root/eif_cc0"
[ -f "$WORK/cache-cc0/index.json" ] || $PY -m convsep prepare "$WORK/cc0-root" "$WORK/cache-cc0"
$PY -m convsep train "$WORK/cache-cc0" "$WORK/cache-synth-free-30" -o "$WORK/runs/free-a" --init synthetic \
    --model convsep-stereo --loss mse --optimiser adam --lr 3e-4 --schedule cosine --epochs 30 --batch-size 16 \
    --blocks-per-excerpt 4 --precision bf16 --valid-seconds 310 --patience 0 --no-progress --speed-max 1.12 \
    --speed-p 0.3 --grouped-share 0.5 --steps-per-epoch 150 --ema 0.998 --seed 20 --device "$DEVICE" \
    --max-minutes "$(minutes 32)"
# Scores on the real validation set, the streaming path, the figure, and bundling:
#   $PY -m convsep evaluate --root "$REAL" --split valid -m default -m synthetic -m "$WORK/runs/real-c/best.pt" -o "$WORK/eval-real"
#   $PY scripts/evaluate_stream_real.py "$REAL" --stream realtime "$WORK/runs/rt-a/best.pt" "$WORK/runs/rt-wide/best.pt" --offline
#   $PY scripts/bundle_real_songs_model.py "$WORK/runs/rt-a" --base realtime --name realtime-small
#   $PY scripts/bundle_real_songs_model.py "$WORK/runs/rt-a" "$WORK/runs/rt-wide" --base realtime --name realtime
#   $PY scripts/bundle_real_songs_model.py "$WORK/runs/real-a" "$WORK/runs/real-b" "$WORK/runs/real-c" --evaluation "$WORK/eval-real"
#   (the default of step 6 d: real-wb, chosen over real-wr and real-ws on whole songs, at -16 dBFS; and `free`:)
#   $PY -m convsep evaluate --root "$REAL" --split valid -m "$WORK/models/real-wb-lvl16.pt" -m "$WORK/models/real-ws-lvl16.pt" \
#       -m "$WORK/runs/free-a/best.pt" -o "$WORK/eval-real2"
#   $PY scripts/bundle_real_songs_model.py "$WORK/runs/real-wb" --evaluation "$WORK/eval-real2" --method real-wb-lvl16 --input-level-db -16
#   $PY scripts/bundle_real_songs_model.py "$WORK/runs/free-a" --base synthetic --name free --free "CORPUS (licences)" \
#       --evaluation "$WORK/eval-real2" --method best
#   $PY -m convsep evaluate --root "$REAL" --split valid -m default -m synthetic -m free -m realtime -o "$WORK/eval-final"
#   $PY scripts/quality_speed.py "$WORK/eval-final" --models default synthetic free realtime
#   then both bundled again with --seconds-per-minute from its table (the web app's model menu shows it)

# Evaluate every model and the oracles on the test split; then bundle the best one, e.g.
#   $PY scripts/bundle_model.py "$WORK/runs/convsep-stereo" "$WORK/eval"
bash scripts/evaluate_models.sh "$WORK"
