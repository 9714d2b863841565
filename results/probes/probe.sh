# Sourced by the probe scripts: run from the repository root; `probe NAME CONFIG [dmvae train args]` trains
# one validation-only run into runs/probes/NAME (one thread, no figures, no coherence), logging to
# runs/probes/NAME.log, and skips a run that has already finished, so a rerun resumes the probe.
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
mkdir -p runs/probes
probe() { [ -f "runs/probes/$1/final.json" ] || .venv/bin/dmvae train --config "$2" --out "runs/probes/$1" \
  --set train.threads=1 --set eval.figures=false --set eval.coherence=false "${@:3}" > "runs/probes/$1.log" 2>&1; }
