# Pilot runs for presets/evidence.sh, on train tasks only: SFT on the expert trajectories of the
# first 48 train tasks (2 per type), one ETO round, each model evaluated on 48 other train tasks
# (2 per type: the "heldout" split of configs/task/sciworld_pilot.json). No test task is played.
#
#   PILOT_SFT_LR=1e-4 bash run_eto.sh --preset evidence_pilot sciworld pilot_a
#
# PILOT_SFT_LR, PILOT_SFT_EPOCHS, PILOT_DPO_LR and PILOT_DPO_BETA set the trial's values (default:
# the evidence preset's); results/sciworld-evidence/pilots.md records what each trial gave and
# what it cost, which is how the evidence preset's sizes were chosen.

source "$(dirname "${BASH_SOURCE[0]}")/evidence.sh"

EXP_CONFIG="sciworld_pilot"
SFT_DATA="data/${EXP_CONFIG}_sft.json"
OUTPUT_DIR=outputs PAIRS_DIR=data_pm LOG_ROOT=logs   # a pilot's state is not committed
ROUNDS=1
EVAL_SPLITS="heldout"

SFT_ARGS=(--num_train_epochs "${PILOT_SFT_EPOCHS:-2}" --learning_rate "${PILOT_SFT_LR:-1e-4}" --warmup_ratio 0.05
          --lr_scheduler_type cosine --model_max_length 2048 --logging_steps 1 --save_strategy steps
          --save_steps 10 --save_total_limit 1)
round_settings() { BETA="${PILOT_DPO_BETA:-0.1}"; LR="${PILOT_DPO_LR:-1e-5}"; }
