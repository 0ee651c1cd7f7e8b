# The full ETO run: the paper's settings (Song et al., 2024; the original run_eto.sh).
# Sourced by run_eto.sh after TASK, NGPU and the paths are known; every variable here may be
# changed in a copy of this file (bash run_eto.sh --preset path/to/copy.sh ...).

EXP_CONFIG="$TASK"                    # eval_agent task config used by every stage
SFT_DATA="data/${EXP_CONFIG}_sft.json"  # expert trajectories; regenerated offline when missing
EVAL_SPLITS="test"                    # splits evaluated after SFT and after each round
EVAL_MAX_TASKS=""                     # empty: the whole split
EXPLORE_MAX_TASKS=""                  # empty: every train task
# Exploration decodes greedily, as the original's runs did: the pairs then hold the failures of the
# policy that evaluation measures (also greedy), and reruns are reproducible. 0.7 (the original's
# unused explore config) samples more varied failures instead.
EXPLORE_TEMPERATURE=0.0
NUM_EXAMPLES=0                        # in-context examples for fine-tuned policies (their SFT data has none)
case "$TASK" in                       # the paper's number of ETO rounds
  alfworld*) ROUNDS=1 ;;
  *) ROUNDS=2 ;;
esac

# SFT: 3 epochs, lr 2e-5, global batch 64.
SFT_BATCH=64
SFT_MICRO_BATCH=4
SFT_ARGS=(--num_train_epochs 3 --learning_rate 2e-5 --weight_decay 0. --warmup_ratio 0.03
          --lr_scheduler_type cosine --model_max_length 4096 --logging_steps 5
          --save_strategy epoch --save_total_limit 1)

# DPO: 3 epochs per round, global batch 32; beta and lr per round below.
DPO_BATCH=32
DPO_MICRO_BATCH=2
DPO_ARGS=(--num_train_epochs 3 --weight_decay 0. --warmup_ratio 0.1 --lr_scheduler_type constant_with_warmup
          --model_max_length 4096 --max_target_length 3072 --logging_steps 5
          --save_strategy epoch --save_total_limit 1)

# Used only where CUDA is present (train.py drops them with a note otherwise). FSDP wraps the
# model's own decoder-layer class (transformers reads it from the model).
GPU_TRAIN_ARGS=(--bf16 True --tf32 True --fsdp "full_shard auto_wrap" --gradient_checkpointing True)

round_settings() {  # $1: round number -> BETA, LR
  if (( $1 == 1 )); then BETA=0.1; LR=1e-6; else BETA=0.5; LR=5e-7; fi
}
