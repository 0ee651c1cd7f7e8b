#!/usr/bin/env bash
# ETO (Song et al., 2024): behavioural cloning on expert trajectories (SFT), then rounds of
# explore the train tasks -> pairs (expert against failure) -> DPO against the round's policy,
# each policy evaluated on the held-out tasks; or, from the same SFT model, one of the paper's
# baselines and variants (--method), or self-play without expert data.
#
# Usage: bash run_eto.sh [--preset NAME|FILE] [--method METHOD] [--rounds N] [--workers N]
#                        [--engine auto|vllm|hf] [--no_expert] <task> [exp_name] [model_path] [save_dir]
#        bash run_eto.sh demo            (= --preset demo sciworld demo: the whole loop on CPU, ~11.5 min with vLLM)
#
#   task        sciworld | alfworld | webshop (an eval_agent task config)
#   exp_name    names the run: models <save_dir>/<exp>-<model>-<task>-{sft,dpo-iter-N}, logs/<exp>/
#   model_path  the chat model to start from (default: models/SmolLM2-135M-Instruct, made by setup.sh)
#   save_dir    where trained models go (default: checkpoints)
#   --preset    presets/<name>.toml or a file: sizes, learning rates, rounds (default: full)
#   --method    eto (default: trajectory-level pairs); step: step-level pairs (the expert's action
#               against the agent's after a replayed expert prefix); mixture: both kinds of pair;
#               selfplay: no expert trajectories and no SFT: the base model's own episodes (best
#               against worst of several per task) train ETO, RFT and RFT then ETO;
#               bon: Best-of-N sampling of the SFT policy on the test tasks; rft:
#               rejection-sampling fine-tuning (SFT again on expert + successful explored episodes);
#               ppo: the SFT policy plays the train tasks and is optimised for their reward, on-policy;
#               dose: a pilot's DPO dose-response: round 1's pairs, DPO at each preset dose_lr, its
#               model after each of dose_steps evaluated (results/webshop-evidence/plan.md);
#               variants: round 1's DPO once per variant named in the preset's variant_pairs_args
#               (construct_preference.py flags) or variant_dpo_args (DPO flags), each evaluated.
#               Methods of one exp_name share its SFT model and evaluation; logs/<exp>/compare.md
#               compares every method run so far, with confidence intervals
#   --no_expert no expert trajectories (only --method selfplay runs without them; it implies this)
#   --rounds    ETO (step, mixture) or RFT rounds (default from the preset: ETO 2 for webshop and sciworld, 1 for alfworld)
#   --workers   FastChat model workers / exploration parts (default: one per GPU, 1 without GPU)
#   --engine    what generates: vllm (batched: many episodes in flight per worker), hf (FastChat's
#               transformers worker, one request at a time, as the original) or auto (default:
#               vllm where it runs); episodes in flight per worker come from the preset
#
# Each finished stage leaves a marker in logs/<exp>/stages/; rerunning the same command resumes at
# the first unfinished stage (a half-finished exploration or evaluation continues where it
# stopped; training resumes from its last checkpoint). One log per stage in logs/<exp>/.
# The report is logs/<exp>/report.md and report.png (stages); logs/<exp>/compare.md and
# compare.png compare the methods run in the experiment (and the environment's expert),
# efficiency.png shows the reward each reaches by each step, and view.html (open it from disk)
# shows every evaluated episode and every pair. A round whose pairs (or, for RFT, new successes)
# come out empty trains nothing: its policy stays, its rows repeat that policy's evaluation and say
# "unchanged". The machinery (settings, stages, markers, servers, resume) is eto/pipeline/.
set -euo pipefail
RUN_ARGS=("$@") CALLER_DIR="$PWD"
cd "$(dirname "${BASH_SOURCE[0]}")"
SCRIPT="$PWD/$(basename "${BASH_SOURCE[0]}")"
[[ -n "${VIRTUAL_ENV:-}" || ! -f .venv/bin/activate ]] || source .venv/bin/activate
for arg in "$@"; do
  [[ "$arg" != -h && "$arg" != --help ]] || { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
done
export ETO_DRIVER_PID=$$  # everything the run starts (stages, servers) ends with this process

# ---------------------------------------------------------------------------- settings
# The arguments and the preset, checked and resolved (eto/pipeline/setup.py); the variables this
# script uses come back as NAME / VALUE pairs, assigned without evaluating any code.
staged="$(mktemp -d)"
trap 'rm -rf "$staged"' EXIT
python -m eto.pipeline setup --caller_dir "$CALLER_DIR" --out "$staged" -- "$@"
while IFS= read -r -d '' name && IFS= read -r -d '' value; do printf -v "$name" '%s' "$value"; done < "$staged/settings.bash"
exec 9>>"$LOCK"  # held until this process ends; a second run of the experiment is refused
python -m eto.pipeline lock 9 "$staged/settings.json"
export ETO_RUN_SETTINGS="$SETTINGS"

# ---------------------------------------------------------------------------- stages
STAGE_PID=""
stop() {  # whatever runs stops with this script; rerunning the same command resumes
  local status=$?
  trap - EXIT INT TERM
  [[ -z "$STAGE_PID" ]] || { kill -TERM "$STAGE_PID" 2>/dev/null; wait "$STAGE_PID" 2>/dev/null; } || true
  python -m eto.pipeline stop || true
  rm -rf "$staged"
  exit "$status"
}
trap stop EXIT
trap 'echo "run_eto.sh: interrupted; rerun the same command to resume" >&2; exit 130' INT
trap 'echo "run_eto.sh: terminated; rerun the same command to resume" >&2; exit 143' TERM

# python -m eto.pipeline ...: in the background and waited for, so that a signal reaches the traps
# at once. Exit 3: a model trained again on this machine differs from the one the finished stages
# used; they were moved aside, and the run starts again from the top to make them again.
pipeline() {
  python -m eto.pipeline "$@" 9>&- &
  STAGE_PID=$!
  local status=0
  wait "$STAGE_PID" || status=$?
  STAGE_PID=""
  (( status != 2 )) || exit 2  # bad input, said in one line
  if (( status == 3 )); then
    (( ${ETO_RUN_STARTS:-0} < 5 )) || { echo "run_eto.sh: started again 5 times; see $LOG_DIR/superseded/" >&2; exit 1; }
    export ETO_RUN_STARTS=$(( ${ETO_RUN_STARTS:-0} + 1 ))
    echo "[again] run_eto.sh ${RUN_ARGS[*]}" >&2
    python -m eto.pipeline stop
    cd "$CALLER_DIR" && exec 9>&- && rm -rf "$staged" && exec bash "$SCRIPT" "${RUN_ARGS[@]}"
  fi
  return "$status"
}
# stage NAME [--serve MODEL] [--parts N] [KEY=VALUE ...] -- COMMAND...: run COMMAND once, with its
# log logs/<exp>/NAME.log, and mark it done (its marker carries the facts); skipped when marked.
stage() { pipeline stage "$@"; }
path() { python -m eto.pipeline path "$@"; }  # the run's file names (eto/pipeline/paths.py)

evaluate() {  # evaluate STAGE ROW MODEL [KEY=VALUE ...]: MODEL plays every task of each evaluation split, greedily
  local split
  for split in "${EVAL_SPLITS[@]}"; do
    stage "$1_$split" --serve "$3" row="$2" split="$split" "${@:4}" -- \
      python -m eval_agent.main --agent_config fastchat --model_name "$(basename "$3")" --exp_config "$EXP_CONFIG" \
        --split "$split" --controller_address "$CONTROLLER" --output_dir "$OUTPUT_DIR" --exp_name "_$split" "${EVAL_ARGS[@]}"
  done
}

# ---------------------------------------------------------------------------- SFT
if [[ "$METHOD" != selfplay ]]; then
  # Expert trajectories: the environment's own expert plays the train tasks (a given file is used as is).
  stage expert_data --given "$SFT_DATA" data="$SFT_DATA" -- \
    python -m eval_agent.expert_trajectories --task "$EXP_CONFIG" --split train --output "$SFT_DATA" --prompts "$PROMPTS" \
      --episodes_dir "$(path episodes expert _train)"
  stage sft -- \
    "${TRAIN[@]}" fastchat/train/train.py --model_name_or_path "$MODEL_PATH" --data_path "$SFT_DATA" \
      --output_dir "$SFT_MODEL" "${SFT_ARGS[@]}"
  evaluate eval_sft SFT "$SFT_MODEL" method=sft round=0
  for agent in "${REFERENCE_AGENTS[@]}"; do  # the expert (and the env's baselines) on the same tasks: reference rows
    for split in "${EVAL_SPLITS[@]}"; do
      stage "eval_${agent}_$split" row="$agent" method="$agent" round=0 split="$split" model_free=1 -- \
        python -m eval_agent.main --agent_config "$agent" --model_name "$agent" --exp_config "$EXP_CONFIG" \
          --split "$split" --output_dir "$OUTPUT_DIR" --exp_name "_$split" "${EXPERT_ARGS[@]}"
    done
  done
fi

# ---------------------------------------------------------------------------- ETO
policy="$SFT_MODEL"
if [[ "$METHOD" == eto ]]; then
  for (( i = 1; i <= ROUNDS; i++ )); do
    pairs="$(path pairs "$i")" next="$(path model dpo "$i")"
    # 1. The policy plays every train task (greedily), one part per worker.
    stage "round${i}_explore" --serve "$policy" --parts "$WORKERS" row="round_$i" -- \
      python -m eval_agent.main --agent_config fastchat --model_name "$(basename "$policy")" --exp_config "$EXP_CONFIG" \
        --split train --controller_address "$CONTROLLER" --output_dir "$OUTPUT_DIR" --exp_name _train \
        --temperature "$EXPLORE_TEMPERATURE" "${EXPLORE_ARGS[@]}"
    # 2. Each episode against the expert's trajectory of its task: worse, a pair (expert chosen); better, the reverse.
    stage "round${i}_pairs" row="round_$i" pairs="$pairs" -- \
      python construct_preference.py --task "$EXP_CONFIG" --golden_traj_path "$SFT_DATA" --output_path "$pairs" \
        --episodes_dir "$(path episodes "$policy" _train)"
    if pipeline empty "$pairs"; then  # nothing to learn from: the policy and its evaluation stand
      pipeline keep "round${i}_dpo" "round${i}_eval" "round_$i" "$policy" method=eto round="$i"
      continue
    fi
    # 3. DPO on the pairs, against the round's policy as the frozen reference.
    stage "round${i}_dpo" -- \
      "${TRAIN[@]}" fastchat/train/train_dpo.py --model_name_or_path "$policy" --ref_model_name_or_path "$policy" \
        --data_path "$pairs" --output_dir "$next" --beta "${BETA[i]}" --learning_rate "${LR[i]}" "${DPO_ARGS[@]}"
    # 4. The new policy on the held-out tasks.
    evaluate "round${i}_eval" "round_$i" "$next" method=eto round="$i"
    policy="$next"
  done
  pipeline finish "$policy"
else
  pipeline method "$METHOD"  # the other methods' plans: eto/pipeline/methods.py
  pipeline finish
fi
