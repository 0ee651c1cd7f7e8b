# The demo: the whole ETO loop on CPU (2 cores) in about 12 minutes with vLLM serving, on a
# fixed subset of the task (configs/task/<task>_demo.json: a few short task types, a few dozen
# train tasks and a handful of test tasks). Same stages and code paths as the full run; only
# sizes, learning rates and what suits a 135M model differ (each listed below). Numbers from it
# show that the loop works, not the paper's gains.

source "$(dirname "${BASH_SOURCE[0]}")/full.sh"

EXP_CONFIG="${TASK}_demo"
SFT_DATA="data/${EXP_CONFIG}_sft.json"
ROUNDS=1
EVAL_SPLITS="test"     # unseen only: a seen evaluation would double the evaluation time
# A 135M model trained without an example copies the example's actions when one is in the prompt
# (README, "Expert trajectories"), so it is prompted as it was trained: without one.
NUM_EXAMPLES=0
PROMPTS=ours           # the expert data is regenerated offline with this project's instruction
MAX_NEW_TOKENS=128     # a Thought/Action reply of the demo policy is well under 100 tokens

BON_SAMPLES=4          # Best-of-4 and RFT with 2 samples per task: minutes, not hours, on 2 cores
RFT_SAMPLES=2
# PPO generates its rollouts with transformers in the trainer (no batching gain on 2 cores): 2
# episodes per task, 4 tasks per step, one pass over the 12 train tasks = 3 steps, 24 episodes;
# lr x10 as for DPO.
PPO_GENERATIONS=2
PPO_TASKS_PER_STEP=4
PPO_MICRO_BATCH=1
PPO_LR=1e-5
PPO_ARGS=(--num_train_epochs 1 --weight_decay 0. --lr_scheduler_type constant --model_max_length 2048
          --logging_steps 1 --save_steps 1 --save_total_limit 1)

STEP_LR=1e-6           # step-level DPO: the paper's lr x10, as for ETO's DPO below

SFT_BATCH=1
SFT_MICRO_BATCH=1
SFT_ARGS=(--num_train_epochs 2 --learning_rate 1e-4 --warmup_ratio 0.1 --lr_scheduler_type cosine
          --model_max_length 2048 --logging_steps 1 --save_strategy epoch --save_total_limit 1)

DPO_BATCH=2
DPO_MICRO_BATCH=1
DPO_ARGS=(--num_train_epochs 1 --warmup_ratio 0.1 --lr_scheduler_type constant_with_warmup
          --model_max_length 2048 --logging_steps 1 --save_strategy epoch --save_total_limit 1)

# A handful of DPO steps at the paper's lr (1e-6) barely moves a model; the demo keeps the
# paper's round-to-round ratios (beta x5, lr /2) at a 10x larger lr.
round_settings() {
  if (( $1 == 1 )); then BETA=0.1; LR=1e-5; else BETA=0.5; LR=5e-6; fi
}
