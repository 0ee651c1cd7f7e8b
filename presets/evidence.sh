# The evidence run: does ETO beat SFT, Best-of-N and RFT on ScienceWorld at the scale this
# project's default hardware (2 CPU cores, the bundled 135M model) allows in about six hours?
#
#   bash run_eto.sh --preset evidence sciworld evidence                 # SFT, ETO rounds 1 and 2
#   bash run_eto.sh --preset evidence --method bon sciworld evidence    # Best-of-N, same SFT model
#   bash run_eto.sh --preset evidence --method rft sciworld evidence    # RFT, same SFT model
#   python scripts/publish_results.py logs/evidence results/sciworld-evidence
#
# All methods are evaluated on the same tasks: the first 48 seen (dev) and 48 unseen (test) tasks,
# two of each of the 24 types per split (configs/task/sciworld_evidence.json). Every stage resumes
# after a kill (stage markers, episode files, trainer checkpoints), so the run may span sessions or
# machines: rerun the same command. The sizes and learning rates below were chosen by pilot runs
# on train tasks only (presets/evidence_pilot.sh; results/sciworld-evidence/pilots.md), never on
# the test tasks. What suits a 135M model comes from the demo preset (no in-context example, this
# project's prompts, 128 new tokens, bf16 autocast on CPU).

source "$(dirname "${BASH_SOURCE[0]}")/demo.sh"

EXP_CONFIG="sciworld_evidence"   # train: the first 240 train tasks (10 of most types; all of the few that have fewer)
# The run's state lives in the repository, so that a session or machine that continues it has
# every finished stage (markers, logs, episodes, pairs, the SFT data); only checkpoints are left
# out (too large), and a missing one is trained again, with its weights checked, when needed.
RUN_STATE="results/sciworld-evidence/run"
SFT_DATA="$RUN_STATE/${EXP_CONFIG}_sft.json"
LOG_ROOT="$RUN_STATE" OUTPUT_DIR="$RUN_STATE/episodes" PAIRS_DIR="$RUN_STATE/pairs"
ROUNDS=2
EVAL_SPLITS="dev test"           # seen and unseen, 48 tasks each (the task config's max_tasks)
EVAL_MAX_TASKS=""

BON_SAMPLES=4                    # Best-of-4 at temperature 0.7 on the 96 test tasks
RFT_SAMPLES=2                    # RFT: 2 samples per train task at temperature 0.7, one round

SFT_BATCH=8
SFT_MICRO_BATCH=1
SFT_ARGS=(--num_train_epochs 2 --learning_rate 1e-4 --warmup_ratio 0.05 --lr_scheduler_type cosine
          --model_max_length 2048 --logging_steps 1 --save_strategy steps --save_steps 10 --save_total_limit 1)

DPO_BATCH=8
DPO_MICRO_BATCH=1
DPO_ARGS=(--num_train_epochs 1 --warmup_ratio 0.1 --lr_scheduler_type constant_with_warmup
          --model_max_length 2048 --logging_steps 1 --save_strategy steps --save_steps 5 --save_total_limit 1)

round_settings() {  # the paper's round-to-round ratios (beta x5, lr /2) at the demo's 10x lr
  if (( $1 == 1 )); then BETA=0.1; LR=1e-5; else BETA=0.5; LR=5e-6; fi
}
