#!/usr/bin/env bash
# Records the runs the docs quote (make papers): each script at the settings
# its doc states, its run.json copied here as NAME.json, then every quoted
# value in the docs rewritten from these records (`voxlab doc --quotes`; a
# test fails when a doc and its record disagree, another when a script has
# changed since its record was made). Full-size runs take minutes each on 2
# cores; ONLY=NAME records one of them.
set -euo pipefail
cd "$(dirname "$0")/../../.."
VOXLAB=${VOXLAB:-./target/release/voxlab}
OUT=${OUT:-runs/papers}
ONLY=${ONLY:-}
# One libtorch thread: the records then repeat exactly on any machine (a
# different thread count changes the last bits of reductions, and training
# amplifies them), and a busy machine does not slow OpenMP's spinning threads.
THREADS=${THREADS:-1}

# name | script | --set arguments (the settings the docs state) [| threads:
# a run whose doc quotes its time on 2 cores records at 2 threads]
RUNS=(
  "simulated_subject|scripts/simulated_subject.rhai|noise_fwhm=0"
  "simulated_subject_smooth|scripts/simulated_subject.rhai|noise_fwhm=6"
  "takagi_captions|scripts/takagi_captions.rhai|"
  "simulated_subject_snr1|scripts/simulated_subject.rhai|snr=1.0 noise_fwhm=0"
  "quickstart|scripts/quickstart.rhai|"
  "takagi_captions_seed1|scripts/takagi_captions.rhai|seed=1"
  "takagi_captions_seed2|scripts/takagi_captions.rhai|seed=2"
  "encoding_layers_quick|scripts/encoding_layers.rhai|quick=true"
  "bnu_emotion_quick|scripts/bnu_emotion.rhai|quick=true"
  "yu_voxel_gan_quick|scripts/yu_voxel_gan.rhai|quick=true"
  "yu_voxel_gan_quick_seed1|scripts/yu_voxel_gan.rhai|quick=true seed=1"
  "yu_voxel_gan_quick_seed2|scripts/yu_voxel_gan.rhai|quick=true seed=2"
  "yu_voxel_gan|scripts/yu_voxel_gan.rhai|"
  "takagi_reconstruct_quick|scripts/takagi_reconstruct.rhai|quick=true"
  "takagi_reconstruct|scripts/takagi_reconstruct.rhai||2"
  "bnu_emotion_quick_seed1|scripts/bnu_emotion.rhai|quick=true seed=1"
  "bnu_emotion|scripts/bnu_emotion.rhai|"
  "bnu_emotion_seed1|scripts/bnu_emotion.rhai|seed=1"
  "bnu_emotion_quick_seed2|scripts/bnu_emotion.rhai|quick=true seed=2"
)

for entry in "${RUNS[@]}"; do
  IFS='|' read -r name script sets threads <<<"$entry"
  if [ -n "$ONLY" ] && [ "$ONLY" != "$name" ]; then continue; fi
  args=()
  for s in $sets; do args+=(--set "$s"); done
  echo "== $name: $script ${sets}"
  rm -rf "$OUT/$name"
  "$VOXLAB" run "$script" "${args[@]}" --threads "${threads:-$THREADS}" --out "$OUT/$name"
  cp "$OUT/$name/run.json" "docs/papers/runs/$name.json"
done

if [ -z "$ONLY" ]; then
  "$VOXLAB" doc --quotes docs/papers/*.md docs/simulated-subject.md
fi
