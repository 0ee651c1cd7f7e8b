#!/usr/bin/env bash
# ETO driver: SFT -> eval -> rounds of (explore -> pairs -> DPO -> eval).
# Usage: bash run_eto.sh <task|demo> [exp_name] [model_path] [save_dir]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
[[ -n "${VIRTUAL_ENV:-}" || ! -f .venv/bin/activate ]] || source .venv/bin/activate

TASK="${1:-demo}"
MODEL_PATH="${3:-models/SmolLM2-135M-Instruct}"
case "$TASK" in
  -h|--help)
    sed -n '2,3p' "$0" | sed 's/^# //'; exit 0 ;;
esac
if [[ ! -d "$MODEL_PATH" ]]; then
  echo "run_eto.sh: model folder '$MODEL_PATH' not found (run 'bash setup.sh' first)" >&2; exit 1
fi

# The exploration / preference / DPO loop is not built yet (issue "The ETO loop").
# Until it lands, the main job checks the serving stack the loop will stand on: it starts a
# FastChat controller, worker and OpenAI API server on the model and asks it one question.
echo "run_eto.sh: the ETO training loop arrives with the ETO-loop issue; for now this checks"
echo "            that '$MODEL_PATH' is served correctly by FastChat on this machine."
python -m fastchat.launch --model-path "$MODEL_PATH" --log-dir logs/fastchat \
  --ask "In one sentence: what does an agent learn from trial and error?"
