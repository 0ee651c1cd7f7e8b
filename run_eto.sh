#!/usr/bin/env bash
# ETO: SFT -> eval -> for each round: explore the train split -> pairs -> DPO -> eval -> report;
# or, from the same SFT model and its evaluation, one of the paper's baselines and variants
# (--method); or self-play without expert data.
#
# Usage: bash run_eto.sh [--preset full|demo|FILE] [--method METHOD] [--rounds N] [--workers N]
#                        [--engine auto|vllm|hf] <task> [exp_name] [model_path] [save_dir]
#        bash run_eto.sh demo            (= --preset demo sciworld demo: the whole loop on CPU, ~11.5 min with vLLM)
#
#   task        sciworld | alfworld | webshop (an eval_agent task config)
#   exp_name    names the run: models <save_dir>/<exp>-<model>-<task>-{sft,dpo-iter-N}, logs/<exp>/
#   model_path  the chat model to start from (default: models/SmolLM2-135M-Instruct, made by setup.sh)
#   save_dir    where trained models go (default: checkpoints)
#   --preset    presets/<name>.sh or a file: sizes, learning rates, rounds (default: full)
#   --method    eto (default: trajectory-level pairs); step: step-level pairs (the expert's action
#               against the agent's after a replayed expert prefix); mixture: both kinds of pair;
#               selfplay: no expert trajectories and no SFT: the base model's own episodes (best
#               against worst of several per task) train ETO, RFT and RFT then ETO;
#               bon: Best-of-N sampling of the SFT policy on the test tasks; rft:
#               rejection-sampling fine-tuning (SFT again on expert + successful explored episodes);
#               ppo: the SFT policy plays the train tasks and is optimised for their reward, on-policy.
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
# "unchanged".
set -euo pipefail
CALLER_DIR="$PWD" RUN_ARGS=("$@")
cd "$(dirname "${BASH_SOURCE[0]}")"
SCRIPT="$PWD/$(basename "${BASH_SOURCE[0]}")"
from_caller() { [[ "$1" == /* || ! -e "$CALLER_DIR/$1" || "$CALLER_DIR" == "$PWD" ]] && echo "$1" || echo "$CALLER_DIR/$1"; }
[[ -n "${VIRTUAL_ENV:-}" || ! -f .venv/bin/activate ]] || source .venv/bin/activate

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }  # the header comment
exec 3>&2 4>&1  # the terminal's stderr and stdout, for messages from inside a stage (whose output goes to its log)
die() { echo "run_eto.sh: $*" >&3; exit 1; }

# ---------------------------------------------------------------------------- arguments
PRESET=full ROUNDS_FLAG="" WORKERS="" ENGINE_FLAG="" METHOD=eto NO_EXPERT=""
POSITIONAL=()
while (( $# )); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --preset) PRESET="${2:?--preset needs a value}"; shift 2 ;;
    --rounds) ROUNDS_FLAG="${2:?--rounds needs a value}"; shift 2 ;;
    --workers) WORKERS="${2:?--workers needs a value}"; shift 2 ;;
    --engine) ENGINE_FLAG="${2:?--engine needs a value}"; shift 2 ;;
    --method) METHOD="${2:?--method needs a value}"; shift 2 ;;
    --no_expert) NO_EXPERT=1; shift ;;
    --*) die "unknown option $1 (see --help)" ;;
    *) POSITIONAL+=("$1"); shift ;;
  esac
done
(( ${#POSITIONAL[@]} >= 1 )) || { usage >&2; exit 2; }
TASK="${POSITIONAL[0]}"
if [[ "$TASK" == demo ]]; then PRESET=demo; TASK=sciworld; POSITIONAL[1]="${POSITIONAL[1]:-demo}"; fi
EXP="${POSITIONAL[1]:-eto}"
MODEL_PATH="${POSITIONAL[2]:-models/SmolLM2-135M-Instruct}"
SAVE_DIR="${POSITIONAL[3]:-checkpoints}"
# Paths given on the command line are relative to where the command was run.
[[ -z "${POSITIONAL[2]:-}" ]] || MODEL_PATH="$(from_caller "${MODEL_PATH%/}")"
[[ -z "${POSITIONAL[3]:-}" ]] || SAVE_DIR="$(from_caller "$SAVE_DIR")"
[[ "$PRESET" != */* && "$PRESET" != *.sh ]] || PRESET="$(from_caller "$PRESET")"
for path in "$MODEL_PATH" "$SAVE_DIR" "$PRESET"; do
  [[ "$path" != *[[:space:]]* ]] || die "paths may not contain spaces: '$path'"
done

[[ -f "eval_agent/configs/task/$TASK.json" ]] || die "unknown task '$TASK' (choose from: $(ls eval_agent/configs/task | sed -n 's/\.json$//p' | grep -v _ | tr '\n' ' '))"
[[ -f "$MODEL_PATH/config.json" ]] || die "model folder '$MODEL_PATH' not found or has no config.json (run 'bash setup.sh' first)"
[[ "$EXP" =~ ^[A-Za-z0-9._-]+$ ]] || die "exp_name '$EXP' may only use letters, digits, '.', '_' and '-'"
PRESET_FILE="$PRESET"; [[ -f "$PRESET_FILE" ]] || PRESET_FILE="presets/$PRESET.sh"
[[ -f "$PRESET_FILE" ]] || die "unknown preset '$PRESET' (choose from: $(ls presets | sed -n 's/\.sh$//p' | tr '\n' ' ') or give a file)"

NGPU=$(python -c "import torch; print(torch.cuda.device_count())")
WORKERS="${WORKERS:-$(( NGPU > 0 ? NGPU : 1 ))}"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer"
OUTPUT_DIR=outputs PAIRS_DIR=data_pm LOG_ROOT=logs GPU_TRAIN_ARGS=() CPU_TRAIN_ARGS=() WORKER_ARGS=""
source "$PRESET_FILE"
LOG_DIR="$LOG_ROOT/$EXP"
STAGES="$LOG_DIR/stages"
mkdir -p "$LOG_DIR" "$STAGES"
# One run per experiment: a second run_eto.sh on it refuses while this one lives (at once, before
# the slower checks below). The lock goes with this process however it ends (kill -9 included);
# no child holds it (spawn closes it).
exec 9>"$LOG_DIR/.lock"
flock -n 9 || die "experiment '$EXP' is already running (another run_eto.sh holds $LOG_DIR/.lock); wait for it or stop it"
[[ "$METHOD" =~ ^(eto|step|mixture|bon|rft|ppo|selfplay)$ ]] || die "--method must be eto, step, mixture, bon, rft, ppo or selfplay"
[[ -z "$NO_EXPERT" || "$METHOD" == selfplay ]] || die "--no_expert: only --method selfplay runs without expert trajectories"
# Self-play prompts the untuned model, which needs an example of the reply format to act at all.
[[ "$METHOD" != selfplay ]] || NUM_EXAMPLES="$SELFPLAY_NUM_EXAMPLES"
[[ "$METHOD" == rft ]] && ROUNDS="${RFT_ROUNDS:-1}"
ROUNDS="${ROUNDS_FLAG:-$ROUNDS}"
[[ "$ROUNDS" =~ ^[0-9]+$ ]] || die "--rounds must be a non-negative integer"
ENGINE="${ENGINE_FLAG:-$ENGINE}"
[[ "$ENGINE" =~ ^(auto|vllm|hf)$ ]] || die "--engine must be auto, vllm or hf"
ENGINE_CHOICE="$ENGINE"  # PPO's trainer decides what "auto" means for its own rollouts
ENGINE="$(python -m fastchat.launch --engine "$ENGINE" --print-engine)"
CONCURRENCY="$(concurrency_for "$ENGINE")"
[[ -f "eval_agent/configs/task/$EXP_CONFIG.json" || -f "$EXP_CONFIG" ]] || die "preset '$PRESET' needs task config '$EXP_CONFIG', which does not exist"
CONFIG_NAME="$(basename "$EXP_CONFIG" .json)"
# How the policy is prompted and decodes, the same in every evaluation and exploration.
AGENT_ARGS=(--num_examples "$NUM_EXAMPLES" --prompts "$PROMPTS" --max_new_tokens "$MAX_NEW_TOKENS")

mkdir -p "$SAVE_DIR" "$PAIRS_DIR"
BASE_NAME="$(basename "$MODEL_PATH")"
if (( NGPU > 0 )); then
  TRAIN=(torchrun --nproc_per_node "$NGPU" --master_port "${MASTER_PORT:-20001}"); DEVICE_TRAIN_ARGS=("${GPU_TRAIN_ARGS[@]}")
  SERVE_THREADS=""
else
  TRAIN=(python); DEVICE_TRAIN_ARGS=("${CPU_TRAIN_ARGS[@]}")
  # tcmalloc: 1.21x faster CPU training than glibc's malloc, same loss (benchmarks/cpu_allocator.py)
  ALLOCATOR=$(python -c "from eto.engines import cpu_allocator; print(cpu_allocator())")
  [[ -z "$ALLOCATOR" ]] || TRAIN=(env "LD_PRELOAD=$ALLOCATOR${LD_PRELOAD:+:$LD_PRELOAD}" python)
  # The same data and seeds train other weights on a CPU whose kernels differ (AVX-512 or AMX
  # against AVX2; bf16 autocast only where the CPU has bf16). CPU_TRAIN_PORTABLE=N pins what
  # decides the sums: ATen's and MKL's AVX2 code paths (MKL's conditional numerical
  # reproducibility), oneDNN at most AVX2, N threads; with fp32 (no --bf16 in CPU_TRAIN_ARGS), for a
  # run that may continue on another machine. It costs speed: 1.9x the time of bf16 autocast on an
  # AMX CPU, 1.26x that of default fp32 (a 4-conversation SFT here; results/sciworld-evidence/pilots.md).
  if [[ -n "${CPU_TRAIN_PORTABLE:-}" ]]; then
    [[ "$CPU_TRAIN_PORTABLE" =~ ^[1-9][0-9]*$ ]] || die "CPU_TRAIN_PORTABLE must be a thread count"
    TRAIN=(env ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS="$CPU_TRAIN_PORTABLE"
           MKL_NUM_THREADS="$CPU_TRAIN_PORTABLE" "${TRAIN[@]}")
  fi
  # CPU: the cores are shared out among the workers. An episode alternates between generating and
  # stepping its env, so a worker rarely competes with the env's JVM; on 2 cores, 2 threads for one
  # worker measured 2.5 s per agent step against 4.2 s with 1 (same episodes, same actions).
  SERVE_THREADS=$(( $(nproc) / WORKERS > 0 ? $(nproc) / WORKERS : 1 ))
fi

# ---------------------------------------------------------------------------- process control
# Whatever this script starts dies with it, even when it is killed with SIGKILL and no trap runs:
# the kernel sends each child SIGTERM when its parent dies (Linux's parent-death signal, set by
# util-linux's setpriv); the launcher's servers, ScienceWorld's JVM and torchrun's workers follow
# their own parents the same way. So a rerun never finds a trainer still writing its folder.
WITH_PARENT=()
setpriv --pdeathsig TERM true 2>/dev/null && WITH_PARENT=(setpriv --pdeathsig TERM)
spawn() { "${WITH_PARENT[@]}" "$@" 9>&- 4>&- & }  # in the background; $! is its pid

SERVER_PID="" SERVER_MODEL="" CHILDREN=()
stop_servers() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID="" SERVER_MODEL=""
}
cleanup() {
  local code=$? pid
  trap - EXIT INT TERM
  for pid in "${CHILDREN[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${CHILDREN[@]}"; do wait "$pid" 2>/dev/null || true; done  # e.g. a checkpoint being written
  stop_servers
  exit "$code"
}
trap cleanup EXIT
trap 'echo "run_eto.sh: interrupted; rerun the same command to resume" >&3; exit 130' INT
trap 'echo "run_eto.sh: terminated; rerun the same command to resume" >&3; exit 143' TERM

# Serve a model folder (controller + $WORKERS workers) unless it is already served; returns once
# the controller lists it (launch.py polls over HTTP and then writes the ready file).
serve() {
  local path="$1" ready="$LOG_DIR/servers.ready" waited=0
  [[ "$SERVER_MODEL" == "$path" ]] && kill -0 "$SERVER_PID" 2>/dev/null && return
  ensure_model "$path"
  stop_servers
  rm -f "$ready"
  spawn python -m fastchat.launch --model-path "$path" --num-workers "$WORKERS" --controller-port 0 \
    --log-dir "$LOG_DIR/servers" --ready-file "$ready" --engine "$ENGINE" ${SERVE_THREADS:+--torch-threads "$SERVE_THREADS"} ${WORKER_ARGS:+"--worker-args=$WORKER_ARGS"} \
    >> "$LOG_DIR/servers.log" 2>&1
  SERVER_PID=$!
  until [[ -f "$ready" ]]; do
    kill -0 "$SERVER_PID" 2>/dev/null || die "the FastChat servers for $path failed to start; see $LOG_DIR/servers.log"
    (( waited++ < 7200 )) || die "the FastChat servers for $path were not ready after 30 min; see $LOG_DIR/servers.log"
    sleep 0.25
  done
  CONTROLLER_URL=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['controller_url'])" "$ready")
  SERVER_MODEL="$path"
  echo "serving $(basename "$path") at $CONTROLLER_URL ($WORKERS $ENGINE worker(s))"
}

# run_stage NAME "key=value ..." COMMAND...: skip if marked done, else run with its log, then mark.
run_stage() {
  local name="$1" facts="$2"; shift 2
  local log="$LOG_DIR/$name.log" start=$SECONDS model=""
  [[ "$1" == train_model && " $facts " =~ \ model=([^ ]+) ]] && model="${BASH_REMATCH[1]}"
  if [[ -f "$STAGES/$name.json" ]]; then
    if [[ -n "$model" && ! -f "$model/eto_training.json" ]]; then
      REMAKE["$model"]="$name $(printf '%q ' "$@")"
      echo "[done] $name  (its model is not on this machine: trained again if a later stage needs it)"
    else
      echo "[done] $name"
    fi
    return
  fi
  echo "[run ] $name  (log: $log)"
  echo "==== $(date -u '+%F %T') $name: $*" >> "$log"
  if ! "$@" >> "$log" 2>&1; then
    echo "run_eto.sh: stage '$name' failed; last lines of $log:" >&3
    tail -n 15 "$log" >&3
    exit 1
  fi
  [[ -z "$model" ]] || facts+=" weights=$(weights_of "$model") $(weights_facts "$model" "$@")$(training_facts "$model")"
  # shellcheck disable=SC2086
  python -m eval_agent.report mark --dir "$STAGES" --stage "$name" --seconds $((SECONDS - start)) $facts
  build_report
  echo "       finished in $((SECONDS - start)) s"
  grep -E "average reward|^win:|pairs ->|^saved |successful episodes" "$log" | tail -n 2 | sed 's/^/       /' || true
}
stage_done() { [[ -f "$STAGES/$1.json" ]]; }
# A run continued on another machine (from committed markers, episodes and pairs; checkpoints are
# too large to commit) finds its finished training stages without their models. Such a stage runs
# again when a later stage needs its model, and its weights are compared with the fingerprints its
# marker recorded. CPU training is not bit-identical across processors: other bits within rounding
# distance of the first (eto.weights' sketch) are the same model, and the run goes on. Further
# off, what finished after it may have used another model, so it is moved to $LOG_DIR/superseded/
# and the run starts again from the top, making it again from the new model (eval_agent.report).
declare -A REMAKE=()  # model folder -> "STAGE COMMAND..." of the finished stage that made it
weights_of() { cat "$1"/*.safetensors | sha256sum | cut -c1-16; }
sketch_of() { python -m eto.weights sketch "$1"; }
weights_facts() {  # weights_facts MODEL TRAINING COMMAND...: its sketch, and how far training moved it
  local model="$1" prev="" arg start=""; shift
  for arg in "$@"; do [[ "$prev" == --model_name_or_path ]] && start="$arg"; prev="$arg"; done
  python -m eto.weights facts "$model" ${start:+--start "$start"}
}
training_facts() {  # what the trainer recorded that the marker should carry: the DPO loss terms
  python -c 'import json, sys; terms = json.load(open(sys.argv[1])).get("data", {}).get("loss_type")
if terms: print(" loss=" + "+".join([terms] if isinstance(terms, str) else terms), end="")' "$1/eto_training.json"
}
ensure_model() {
  local path="$1" spec name start=$SECONDS status=0
  [[ -n "${REMAKE[$path]:-}" && ! -f "$path/eto_training.json" ]] || return 0
  spec="${REMAKE[$path]}"; name="${spec%% *}"
  unset 'REMAKE[$path]'
  stop_servers
  echo "[redo] $name  (a later stage needs $path; log: $LOG_DIR/$name.log)" >&3
  echo "==== $(date -u '+%F %T') $name again: its model was not on this machine" >> "$LOG_DIR/$name.log"
  if ! eval "${spec#* }" >> "$LOG_DIR/$name.log" 2>&1; then
    echo "run_eto.sh: stage '$name' (made again) failed; last lines of $LOG_DIR/$name.log:" >&3
    tail -n 15 "$LOG_DIR/$name.log" >&3
    exit 1
  fi
  python -m eval_agent.report remade --dir "$STAGES" --stage "$name" --seconds $((SECONDS - start)) \
    --weights "$(weights_of "$path")" --sketch "$(sketch_of "$path")" --archive "$LOG_DIR/superseded" --episodes_root "$OUTPUT_DIR" >&3 || status=$?
  (( status == 0 )) || { (( status == 3 )) && start_again; exit 1; }  # 3: eval_agent.report.RESTART
}
start_again() {  # finished stages were superseded: run this command again from the top, in this process
  (( ${ETO_RUN_STARTS:-0} < 5 )) || die "started again 5 times; the run's state keeps changing, see $LOG_DIR/superseded/"
  stop_servers
  export ETO_RUN_STARTS=$(( ${ETO_RUN_STARTS:-0} + 1 ))
  echo "[again] run_eto.sh ${RUN_ARGS[*]}" >&3
  cd "$CALLER_DIR"
  exec bash "$SCRIPT" "${RUN_ARGS[@]}" >&4 2>&3 9>&-
}
build_report() {  # report.md/png (stages), compare.md/png (methods) and view.html (episodes, pairs), from the markers so far
  python -m eval_agent.report build --dir "$STAGES" --output "$LOG_DIR/report" \
    --title "$EXP: $CONFIG_NAME from $BASE_NAME" > /dev/null
  python -m eval_agent.view "$LOG_DIR" --title "$EXP: $CONFIG_NAME from $BASE_NAME" > /dev/null
}

# Long commands run as background children and are waited for, so that a signal reaches the trap
# at once (bash defers traps while a foreground command runs) and the trap can stop them.
run_child() {
  spawn "$@"
  local pid=$! status=0
  CHILDREN+=("$pid")
  wait "$pid" || status=$?
  CHILDREN=()  # one child at a time
  return "$status"
}

# ---------------------------------------------------------------------------- stage commands
grad_accum() { local n=$(( $1 / ($2 * (NGPU > 0 ? NGPU : 1)) )); echo $(( n > 0 ? n : 1 )); }

train_model() {  # train_model sft|dpo|ppo OUTPUT_DIR ARGS...: a finished folder counts as done
  local kind="$1" out="$2"; shift 2
  if [[ -f "$out/eto_training.json" ]]; then echo "$out already holds a trained model"; return; fi
  local arg prev=""
  for arg in "$@"; do  # the models it starts from (and a DPO reference) must exist first
    [[ "$prev" != --model_name_or_path && "$prev" != --ref_model_name_or_path ]] || ensure_model "$arg"
    prev="$arg"
  done
  local script=fastchat/train/train.py
  [[ "$kind" != sft ]] && script="fastchat/train/train_$kind.py"
  run_child "${TRAIN[@]}" "$script" --output_dir "$out" --report_to none "${DEVICE_TRAIN_ARGS[@]}" "$@"
}

evaluate() {  # evaluate MODEL_PATH SPLIT [EXP_NAME TEMPERATURE SAMPLES]: every task of the split (default: greedy, once)
  local name; name="$(basename "$1")"
  serve "$1"
  run_child python -m eval_agent.main --agent_config fastchat --model_name "$name" --exp_config "$EXP_CONFIG" \
    --split "$2" --controller_address "$CONTROLLER_URL" --output_dir "$OUTPUT_DIR" --exp_name "${3:-_$2}" \
    ${4:+--temperature "$4"} --num_samples "${5:-1}" \
    "${AGENT_ARGS[@]}" --concurrency "$CONCURRENCY" ${EVAL_MAX_TASKS:+--max_tasks "$EVAL_MAX_TASKS"}
}

eval_stages() {  # eval_stages STAGE_PREFIX REPORT_ROW MODEL_PATH "FACTS" [FOLDER_SUFFIX [COMMAND]]: one stage per split in $EVAL_SPLITS
  local split
  for split in $EVAL_SPLITS; do
    run_stage "$1_$split" "row=$2 split=$split episodes=$OUTPUT_DIR/$(basename "$3")/${CONFIG_NAME}_$split${5:-} $4" \
      "${6:-evaluate}" "$3" "$split" "_$split${5:-}"
  done
}

# A round whose data came out empty (no pair differs in reward, no episode succeeded) has nothing to
# learn from: its policy stays as it was, and its rows repeat that policy's evaluation instead of
# training and evaluating a copy. The markers say so (unchanged=1), and so does the comparison.
no_records() {  # no_records FILE: true when the JSON list in FILE is empty
  local n
  n=$(python -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$1" 2>/dev/null) \
    || die "cannot read $1 (delete the stage marker that made it to make it again)"
  (( n == 0 ))
}
same_records() {  # same_records FILE1 FILE2: true when both JSON files hold the same records
  local same
  same=$(python -c "import json,sys; print(json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])))" "$1" "$2" 2>/dev/null) \
    || die "cannot read $1 or $2 (delete the stage marker that made it to make it again)"
  [[ "$same" == True ]]
}
unchanged() { echo "nothing to train on: $1 stays the policy; its evaluation stands"; }
keep_policy() {  # keep_policy TRAIN_STAGE EVAL_PREFIX REPORT_ROW MODEL "FACTS" [EVAL_FOLDER_SUFFIX]
  run_stage "$1" "model=$4 unchanged=1" unchanged "$4"
  eval_stages "$2" "$3" "$4" "$5 unchanged=1" "${6:-}" unchanged
}

explore() {  # explore MODEL_PATH [EXP_NAME TEMPERATURE SAMPLES EVAL_AGENT_ARGS...]: the train split in $WORKERS parallel parts
  local name pids=() failed=0; name="$(basename "$1")"
  serve "$1"
  for (( j = 0; j < WORKERS; j++ )); do
    spawn python -m eval_agent.main --agent_config fastchat --model_name "$name" --exp_config "$EXP_CONFIG" \
      --split train --controller_address "$CONTROLLER_URL" --output_dir "$OUTPUT_DIR" --exp_name "${2:-_train}" \
      --temperature "${3:-$EXPLORE_TEMPERATURE}" --num_samples "${4:-1}" "${AGENT_ARGS[@]}" --concurrency "$CONCURRENCY" \
      --part_num "$WORKERS" --part_idx "$j" \
      ${EXPLORE_MAX_TASKS:+--max_tasks "$EXPLORE_MAX_TASKS"} "${@:5}"
    pids+=($!); CHILDREN+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  CHILDREN=()
  return "$failed"
}

# ---------------------------------------------------------------------------- the loop
echo "ETO run '$EXP': task $TASK (config $CONFIG_NAME), preset $PRESET, method $METHOD, $ROUNDS round(s), $WORKERS worker(s), $NGPU GPU(s)"
echo "  engine $ENGINE${WORKER_ARGS:+ ($WORKER_ARGS)}, $CONCURRENCY episode(s) in flight per worker"
echo "  start model $MODEL_PATH -> $SAVE_DIR/ | logs $LOG_DIR/"

SFT_MODEL="$SAVE_DIR/$EXP-$BASE_NAME-$CONFIG_NAME-sft"
run_sft() {  # expert trajectories -> SFT -> its evaluation, and the expert's own on the same tasks
  [[ -f "$SFT_DATA" ]] || rm -f "$STAGES/expert_data.json"  # made by us, then deleted: make it again
  if [[ -f "$SFT_DATA" ]] && ! stage_done expert_data; then
    echo "[data] expert trajectories: $SFT_DATA"
  else
    run_stage expert_data "data=$SFT_DATA" \
      run_child python -m eval_agent.expert_trajectories --task "$EXP_CONFIG" --split train --output "$SFT_DATA" --prompts "$PROMPTS"
  fi

  run_stage sft "model=$SFT_MODEL" train_model sft "$SFT_MODEL" \
    --model_name_or_path "$MODEL_PATH" --data_path "$SFT_DATA" "${SFT_ARGS[@]}" \
    --per_device_train_batch_size "$SFT_MICRO_BATCH" --gradient_accumulation_steps "$(grad_accum "$SFT_BATCH" "$SFT_MICRO_BATCH")"

  eval_stages eval_sft SFT "$SFT_MODEL" "method=sft round=0"

  # The environment's own expert on the same tasks (no model, no server): the reference row of
  # the comparison and the expert's curve of reward by step (the paper's Figure 3).
  local split
  for split in $EVAL_SPLITS; do
    run_stage "eval_expert_$split" "row=expert method=expert round=0 split=$split episodes=$OUTPUT_DIR/expert/${CONFIG_NAME}_$split" \
      run_child python -m eval_agent.main --agent_config expert --model_name expert --exp_config "$EXP_CONFIG" \
        --split "$split" --output_dir "$OUTPUT_DIR" --exp_name "_$split" "${AGENT_ARGS[@]}" ${EVAL_MAX_TASKS:+--max_tasks "$EVAL_MAX_TASKS"}
  done
}

run_dpo_rounds() {  # run_dpo_rounds trajectory|step|mixture: explore -> pairs -> DPO against the round's policy -> eval
  local level="$1" i tag=dpo stage="" explored sources
  [[ "$level" == trajectory ]] || { tag="$level-dpo"; stage="${level}_"; }  # ETO keeps the original's names
  CURRENT="$SFT_MODEL"
  for (( i = 1; i <= ROUNDS; i++ )); do
    round_settings "$i"
    [[ "$level" != step ]] || { BETA="$STEP_BETA"; LR="$STEP_LR"; }
    NEXT="$SAVE_DIR/$EXP-$BASE_NAME-$CONFIG_NAME-$tag-iter-$i"
    PAIRS="$PAIRS_DIR/${CONFIG_NAME}_pm_${EXP}_${stage}$i.json"
    explored="$OUTPUT_DIR/$(basename "$CURRENT")/${CONFIG_NAME}_train" sources=()
    # Methods share a round's explorations of the same policy (the files of finished episodes).
    if [[ "$level" != step ]]; then
      run_stage "${stage}round${i}_explore" "row=${stage}round_$i" explore "$CURRENT"
      sources+=(--episodes_dir "$explored")
    fi
    if [[ "$level" != trajectory ]]; then
      run_stage "${stage}round${i}_explore_step" "row=${stage}round_$i" explore "$CURRENT" _train_step "" 1 \
        --prefix_data "$SFT_DATA" --prefix_seed "$STEP_SEED"
      sources+=(--step_episodes_dir "${explored}_step")
    fi
    run_stage "${stage}round${i}_pairs" "row=${stage}round_$i pairs=$PAIRS" \
      run_child python construct_preference.py --task "$EXP_CONFIG" --golden_traj_path "$SFT_DATA" --output_path "$PAIRS" \
        "${sources[@]}"
    if no_records "$PAIRS"; then
      keep_policy "${stage}round${i}_dpo" "${stage}round${i}_eval" "${stage}round_$i" "$CURRENT" "method=${METHOD} round=$i"
      continue
    fi
    stage_done "${stage}round${i}_dpo" || stop_servers  # free the devices for training
    run_stage "${stage}round${i}_dpo" "model=$NEXT beta=$BETA lr=$LR" train_model dpo "$NEXT" \
      --model_name_or_path "$CURRENT" --ref_model_name_or_path "$CURRENT" --data_path "$PAIRS" \
      --beta "$BETA" --learning_rate "$LR" "${DPO_ARGS[@]}" \
      --per_device_train_batch_size "$DPO_MICRO_BATCH" --gradient_accumulation_steps "$(grad_accum "$DPO_BATCH" "$DPO_MICRO_BATCH")"
    eval_stages "${stage}round${i}_eval" "${stage}round_$i" "$NEXT" "method=${METHOD} round=$i"
    CURRENT="$NEXT"
  done
}

run_best_of_n() {  # Best-of-N: the SFT policy samples BON_SAMPLES episodes per test task
  local split folder
  for split in $EVAL_SPLITS; do
    folder="$OUTPUT_DIR/$(basename "$SFT_MODEL")/${CONFIG_NAME}_${split}_bon"
    run_stage "bon_eval_$split" "row=best_of_$BON_SAMPLES method=bon round=0 split=$split samples=$BON_SAMPLES episodes=$folder" \
      evaluate "$SFT_MODEL" "$split" "_${split}_bon" "$BON_TEMPERATURE" "$BON_SAMPLES"
  done
  CURRENT="$SFT_MODEL"
}

run_rft_rounds() {  # RFT: explore (RFT_SAMPLES per task) -> expert + every success so far -> SFT from the base model -> eval
  local i episodes=() trained_on="$SFT_DATA"
  CURRENT="$SFT_MODEL"
  for (( i = 1; i <= ROUNDS; i++ )); do
    NEXT="$SAVE_DIR/$EXP-$BASE_NAME-$CONFIG_NAME-rft-iter-$i"
    RFT_DATA="$PAIRS_DIR/${CONFIG_NAME}_rft_${EXP}_$i.json"
    episodes+=(--episodes_dir "$OUTPUT_DIR/$(basename "$CURRENT")/${CONFIG_NAME}_train_rft")
    run_stage "rft_round${i}_explore" "row=rft_round_$i" explore "$CURRENT" _train_rft "$RFT_TEMPERATURE" "$RFT_SAMPLES"
    run_stage "rft_round${i}_data" "row=rft_round_$i data=$RFT_DATA" \
      run_child python construct_rft_data.py --task "$EXP_CONFIG" --golden_traj_path "$SFT_DATA" --output_path "$RFT_DATA" "${episodes[@]}"
    # No new success: the same data, start and settings as the policy's own training would make that
    # policy again (the same bits on CPU: CPU_TRAIN_PORTABLE), so it stays, with its evaluation.
    if same_records "$RFT_DATA" "$trained_on"; then
      keep_policy "rft_round${i}_sft" "rft_round${i}_eval" "rft_round_$i" "$CURRENT" "method=rft round=$i"
      continue
    fi
    stage_done "rft_round${i}_sft" || stop_servers
    run_stage "rft_round${i}_sft" "model=$NEXT" train_model sft "$NEXT" \
      --model_name_or_path "$MODEL_PATH" --data_path "$RFT_DATA" "${SFT_ARGS[@]}" \
      --per_device_train_batch_size "$SFT_MICRO_BATCH" --gradient_accumulation_steps "$(grad_accum "$SFT_BATCH" "$SFT_MICRO_BATCH")"
    eval_stages "rft_round${i}_eval" "rft_round_$i" "$NEXT" "method=rft round=$i"
    CURRENT="$NEXT" trained_on="$RFT_DATA"
  done
}

run_ppo() {  # PPO: the SFT policy plays the train tasks (PPO_GENERATIONS episodes each per step) for their reward
  NEXT="$SAVE_DIR/$EXP-$BASE_NAME-$CONFIG_NAME-ppo"
  stage_done ppo_train || stop_servers  # rollouts are generated by the trainer itself
  run_stage ppo_train "row=ppo model=$NEXT beta=$PPO_BETA lr=$PPO_LR" train_model ppo "$NEXT" \
    --model_name_or_path "$SFT_MODEL" --task "$EXP_CONFIG" "${AGENT_ARGS[@]}" --rollout_engine "$ENGINE_CHOICE" \
    ${EXPLORE_MAX_TASKS:+--max_tasks "$EXPLORE_MAX_TASKS"} \
    --num_generations "$PPO_GENERATIONS" --temperature "$PPO_TEMPERATURE" --beta "$PPO_BETA" --learning_rate "$PPO_LR" \
    "${PPO_ARGS[@]}" --per_device_train_batch_size "$PPO_MICRO_BATCH" \
    --gradient_accumulation_steps "$(grad_accum $(( PPO_TASKS_PER_STEP * PPO_GENERATIONS )) "$PPO_MICRO_BATCH")"
  eval_stages ppo_eval ppo "$NEXT" "method=ppo round=1"
  CURRENT="$NEXT"
}

# The untuned model's folders are named after the experiment too: its name alone is shared by every
# experiment that starts from it, with whatever self-play settings each uses.
run_selfplay() {  # no expert: ETO, RFT and RFT then ETO from the base model's own episodes (the paper's Table 5)
  local tag="$SAVE_DIR/$EXP-$BASE_NAME-$CONFIG_NAME-selfplay" data="$PAIRS_DIR/${CONFIG_NAME}_rft_${EXP}_selfplay.json"
  local base_eval="_selfplay_$EXP" rft="$tag-rft" rft_eval=""
  eval_stages selfplay_base_eval selfplay_base "$MODEL_PATH" "method=selfplay_base round=0" "$base_eval"
  selfplay_dpo selfplay "$MODEL_PATH" "$base_eval" "$tag-eto" selfplay_eto
  run_stage selfplay_rft_data "row=selfplay_rft data=$data" \
    run_child python construct_rft_data.py --task "$EXP_CONFIG" --no_expert --output_path "$data" \
      --episodes_dir "$OUTPUT_DIR/$BASE_NAME/${CONFIG_NAME}_train_selfplay_$EXP"
  if no_records "$data"; then  # no success: RFT is the base model itself
    rft="$MODEL_PATH" rft_eval="$base_eval"
    keep_policy selfplay_rft_sft selfplay_rft_eval selfplay_rft "$rft" "method=selfplay_rft round=1" "$rft_eval"
  else
    stage_done selfplay_rft_sft || stop_servers
    run_stage selfplay_rft_sft "model=$rft" train_model sft "$rft" \
      --model_name_or_path "$MODEL_PATH" --data_path "$data" "${SFT_ARGS[@]}" \
      --per_device_train_batch_size "$SFT_MICRO_BATCH" --gradient_accumulation_steps "$(grad_accum "$SFT_BATCH" "$SFT_MICRO_BATCH")"
    eval_stages selfplay_rft_eval selfplay_rft "$rft" "method=selfplay_rft round=1"
  fi
  selfplay_dpo selfplay_rft_eto "$rft" "$rft_eval" "$tag-rft-eto" selfplay_rft_eto
}

# selfplay_dpo STAGE MODEL MODEL_EVAL_SUFFIX NEXT METHOD: MODEL plays each train task SELFPLAY_SAMPLES
# times -> best/worst pairs -> DPO -> eval (MODEL's own evaluation stands if no pair)
selfplay_dpo() {
  local stage="$1" model="$2" next="$4" method="$5" pairs="$PAIRS_DIR/${CONFIG_NAME}_pm_${EXP}_$1.json"
  round_settings 1
  CURRENT="$model"
  run_stage "${stage}_explore" "row=$method" explore "$model" "_train_selfplay_$EXP" "$SELFPLAY_TEMPERATURE" "$SELFPLAY_SAMPLES"
  run_stage "${stage}_pairs" "row=$method pairs=$pairs" \
    run_child python construct_selfplay_pairs.py --task "$EXP_CONFIG" --output_path "$pairs" --margin "$SELFPLAY_MARGIN" \
      --episodes_dir "$OUTPUT_DIR/$(basename "$model")/${CONFIG_NAME}_train_selfplay_$EXP"
  if no_records "$pairs"; then
    keep_policy "${stage}_dpo" "${stage}_eval" "$method" "$model" "method=$method round=1" "$3"
    return
  fi
  stage_done "${stage}_dpo" || stop_servers
  run_stage "${stage}_dpo" "model=$next beta=$BETA lr=$LR" train_model dpo "$next" \
    --model_name_or_path "$model" --ref_model_name_or_path "$model" --data_path "$pairs" \
    --beta "$BETA" --learning_rate "$LR" "${DPO_ARGS[@]}" \
    --per_device_train_batch_size "$DPO_MICRO_BATCH" --gradient_accumulation_steps "$(grad_accum "$DPO_BATCH" "$DPO_MICRO_BATCH")"
  eval_stages "${stage}_eval" "$method" "$next" "method=$method round=1"
  CURRENT="$next"
}

[[ "$METHOD" == selfplay ]] || run_sft
case "$METHOD" in
  selfplay) run_selfplay ;;
  eto) run_dpo_rounds trajectory ;;
  step|mixture) run_dpo_rounds "$METHOD" ;;
  bon) run_best_of_n ;;
  rft) run_rft_rounds ;;
  ppo) run_ppo ;;
esac
stop_servers

build_report
echo
cat "$LOG_DIR/report.md"
[[ -f "$LOG_DIR/compare.md" ]] && { echo; cat "$LOG_DIR/compare.md"; }
echo "report: $LOG_DIR/report.md, $LOG_DIR/report.png; methods: $LOG_DIR/compare.md, $LOG_DIR/compare.png; episodes and pairs: $LOG_DIR/view.html; final model: $CURRENT"
