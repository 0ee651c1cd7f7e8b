# The full ETO run: the original's protocol and the paper's settings (Song et al., 2024; the
# original run_eto.sh and eval_agent). Sourced by run_eto.sh after TASK, NGPU and the paths are
# known; every variable here may be changed in a copy of this file
# (bash run_eto.sh --preset path/to/copy.sh ...). tests/test_protocol.py checks these values.

EXP_CONFIG="$TASK"                    # eval_agent task config used by every stage
SFT_DATA="data/${EXP_CONFIG}_sft.json"  # expert trajectories; regenerated offline when missing
case "$TASK" in                       # evaluated after SFT and after each round: seen (dev) and unseen (test)
  webshop*) EVAL_SPLITS="test" ;;     # WebShop has one test split
  *) EVAL_SPLITS="dev test" ;;
esac
EVAL_MAX_TASKS=""                     # empty: the whole split
EXPLORE_MAX_TASKS=""                  # empty: every train task
# Exploration decodes greedily, as the original's runs did (its temperature-0.7 explore config is
# never used by its scripts): the pairs then hold the failures of the policy that evaluation
# measures (also greedy), and reruns are reproducible.
EXPLORE_TEMPERATURE=0.0
NUM_EXAMPLES=1                        # one in-context example when evaluating and exploring, as the original
PROMPTS=auto                          # the original ETO's instruction and example when fetched (online), else ours
MAX_NEW_TOKENS=512                    # the original's reply budget; its stop strings are in configs/model/fastchat.json
# What generates (run_eto.sh --engine overrides): auto = vLLM where it runs, else FastChat's
# transformers worker. Episodes in flight per worker: vLLM batches the requests in flight, so many
# episodes advance per forward pass (each episode has its own env); the transformers worker
# generates one request at a time, so more in flight would only queue. 16 on vLLM measured 7.7x
# the HF worker's episodes/min on 2 CPU cores (benchmarks/exploration_throughput.py, README
# "Engines"); 8 gave 8.6 episodes/min against 9.5 for 16 in one vLLM-only run.
ENGINE=auto
WORKER_ARGS=""                        # extra flags for every model worker (python -m fastchat.launch --worker-args)
concurrency_for() {  # $1: the engine that serves -> episodes in flight per worker
  case "$1" in
    vllm) echo 16 ;;
    *) echo 1 ;;
  esac
}
case "$TASK" in                       # the paper's number of ETO rounds
  alfworld*) ROUNDS=1 ;;
  *) ROUNDS=2 ;;
esac

# Baselines (run_eto.sh --method), from the same SFT model, evaluated like it. The paper (Table 2)
# gives Best-of-N's N = 10 but no sampling temperature, and no sample count for RFT: 0.7 and 5
# are this project's choices.
BON_SAMPLES=10                        # Best-of-N: episodes sampled per test task
BON_TEMPERATURE=0.7
RFT_SAMPLES=5                         # RFT: episodes sampled per train task in each round
RFT_TEMPERATURE=0.7
RFT_ROUNDS=1                          # RFT rounds (--rounds overrides); successes of every round so far are kept
# PPO: the SFT policy plays the train tasks (each PPO_GENERATIONS times per step, sampling at
# PPO_TEMPERATURE) and is optimised for the final task reward by TRL's GRPO trainer: PPO's clipped
# loss, advantages relative to the other episodes of the same task (no value network), a KL
# penalty PPO_BETA to the SFT policy (fastchat/train/train_ppo.py). The paper states none of its
# PPO settings; these are this project's: one pass over the train tasks, at DPO's first-round lr.
PPO_GENERATIONS=4                     # episodes per task in a step (the group)
PPO_TASKS_PER_STEP=8                  # tasks per optimiser step: 32 episodes
PPO_MICRO_BATCH=2                     # episodes per forward pass per device
PPO_TEMPERATURE=0.7
PPO_BETA=0.04
PPO_LR=1e-6
PPO_ARGS=(--num_train_epochs 1 --weight_decay 0. --lr_scheduler_type constant --model_max_length 4096
          --logging_steps 1 --save_steps 1 --save_total_limit 1)

# ETO's variants (run_eto.sh --method step|mixture; the paper's Table 4, WebShop). Step-level
# pairs: the expert's action at step t against the agent's after the expert's first t-1 steps
# (eval_agent/prefixes.py). The paper does not say how t is chosen: here uniformly over the
# expert's steps, once per task, seeded by STEP_SEED. Step-level DPO runs at the better of the
# paper's two step-level settings (lr 1e-7, beta 0.5; its lr 1e-6 / beta 0.1 collapsed to 8.3);
# the mixture (trajectory and step-level pairs together) uses ETO's per-round settings.
STEP_SEED=0
STEP_BETA=0.5
STEP_LR=1e-7

# Self-play without expert trajectories (run_eto.sh --method selfplay; the paper's Table 5): the
# untuned model plays each train task SELFPLAY_SAMPLES times at temperature 1.0 (the paper's);
# a task whose best and worst episodes differ in reward by more than SELFPLAY_MARGIN gives a
# pair, and its successes are RFT's training set. The paper gives no sample count: 4 is ours.
# All self-play rows are evaluated with SELFPLAY_NUM_EXAMPLES in-context examples (the untuned
# model needs one to answer in the Thought/Action format).
SELFPLAY_SAMPLES=4
SELFPLAY_TEMPERATURE=1.0
SELFPLAY_MARGIN=0
SELFPLAY_NUM_EXAMPLES=1

# SFT: 3 epochs, lr 2e-5, global batch 64 (the original's run_eto.sh; the paper says 1e-5).
SFT_BATCH=64
SFT_MICRO_BATCH=4
SFT_ARGS=(--num_train_epochs 3 --learning_rate 2e-5 --weight_decay 0. --warmup_ratio 0.03
          --lr_scheduler_type cosine --model_max_length 4096 --logging_steps 5
          --save_strategy epoch --save_total_limit 1)

# DPO: 3 epochs per round, global batch 32; beta and lr per round below. Pairs carry no
# in-context example (construct_preference.py takes the prompt from the expert record). The
# original's command line also passes --max_prompt_length 512 --max_target_length 3072, which its
# trainer never applies: prompt + continuation are only cut to their first 4096 tokens, as here.
DPO_BATCH=32
DPO_MICRO_BATCH=2
DPO_ARGS=(--num_train_epochs 3 --weight_decay 0. --warmup_ratio 0.1 --lr_scheduler_type constant_with_warmup
          --model_max_length 4096 --logging_steps 5 --save_strategy epoch --save_total_limit 1)

# Device-specific training flags. GPUs: FSDP wraps the model's own decoder-layer class
# (transformers reads it from the model). CPUs: bf16 autocast, which the trainers keep only on a
# CPU with bf16 instructions (fp32 with a note otherwise); weights stay fp32 either way.
GPU_TRAIN_ARGS=(--bf16 True --tf32 True --fsdp "full_shard auto_wrap" --gradient_checkpointing True)
CPU_TRAIN_ARGS=(--bf16 True)
# A thread count pins CPU training's kernels (AVX2 paths, that many threads) so that another
# machine's training of the same stage gives the same weights (run_eto.sh); empty: fastest here.
CPU_TRAIN_PORTABLE=""

round_settings() {  # $1: round number -> BETA, LR
  if (( $1 == 1 )); then BETA=0.1; LR=1e-6; else BETA=0.5; LR=5e-7; fi
}
