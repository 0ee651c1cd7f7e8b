"""The multi-process path, on CPU: ``torchrun --nproc_per_node 2`` (DDP over gloo) against one
process with the same global batch.

Uses the tiny randomly initialised Llama from conftest (real architecture, real SmolLM2
tokenizer), one torch thread per rank. The two runs see the same examples in each optimizer step
(the 2 ranks take the two halves of the single process's batch), so the losses at every step and
the final weights must agree to float rounding: DDP averages the ranks' gradients, and the losses
are normalised by the tokens of the whole global batch.
"""

import json
import os
import signal
import subprocess
import sys
import time
from unittest import mock
from pathlib import Path

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
LOSS_TOL, WEIGHT_TOL = 1e-5, 2e-5  # largest differences seen: losses 1e-6, weights 2.7e-6 (lr 1e-3)


def _conversation(i):
    return [{"from": "human", "value": "You are an agent. Reply with Thought and Action."}, {"from": "gpt", "value": "OK"},
            {"from": "human", "value": f"Task: put apple {i % 10} in box."},
            {"from": "gpt", "value": f"Thought: go.\nAction: take apple {i % 10}"},
            {"from": "human", "value": f"Observation: you took apple {i % 10}."},
            {"from": "gpt", "value": "Thought: done.\nAction: put it in box"}]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    sys.path.insert(0, os.path.dirname(__file__))
    from test_dpo import _pair

    folder = tmp_path_factory.mktemp("distributed-data")
    (folder / "sft.json").write_text(json.dumps([{"id": f"t{i}", "conversations": _conversation(i)} for i in range(32)]))
    (folder / "pairs.json").write_text(json.dumps([_pair(i % 10) | {"id": f"p{i}"} for i in range(16)]))
    return folder


def _torchrun(ranks: int, script: str, args, output, port: int, wait: bool = True):
    command = [TORCHRUN, "--nproc_per_node", str(ranks), "--master_port", str(port), script, *args,
               "--output_dir", str(output), "--report_to", "none", "--logging_steps", "1", "--seed", "3"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO_ROOT)
    if not wait:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _losses(output):
    return [e["loss"] for e in json.loads((output / "eto_training.json").read_text())["log_history"] if "loss" in e]


def _largest_weight_difference(a, b):
    from safetensors.torch import load_file

    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert first.keys() == second.keys()
    return max((first[k] - second[k]).abs().max().item() for k in first)


def _same_training(single, double, steps):
    one, two = _losses(single), _losses(double)
    assert len(one) == len(two) == steps
    assert max(abs(a - b) for a, b in zip(one, two)) < LOSS_TOL, (one, two)
    assert _largest_weight_difference(single, double) < WEIGHT_TOL


@pytest.mark.parametrize("trainer", ["sft", "dpo"])
def test_two_ranks_train_as_one_process_with_the_same_global_batch(tmp_path, tiny_model_path, data, trainer):
    script, extra = {"sft": ("fastchat/train/train.py", ["--data_path", str(data / "sft.json")]),
                     "dpo": ("fastchat/train/train_dpo.py", ["--data_path", str(data / "pairs.json"), "--beta", "0.1"])}[trainer]
    args = ["--model_name_or_path", tiny_model_path, *extra, "--max_steps", "3", "--learning_rate", "1e-3",
            "--save_strategy", "no"]
    single = _torchrun(1, script, args + ["--per_device_train_batch_size", "4"], tmp_path / "one", 29611)
    double = _torchrun(2, script, args + ["--per_device_train_batch_size", "2"], tmp_path / "two", 29612)
    _same_training(tmp_path / "one", tmp_path / "two", 3)
    assert "parallel_mode" not in double.stderr  # transformers' warning when the ranks train alone
    assert "the 2 processes train together on the CPU (DDP over gloo)" in double.stderr
    assert double.stdout.count("saved ") == 1 and single.stdout.count("saved ") == 1  # rank 0 alone saves and says so
    assert double.stderr.count("note: CPU numerics") == 1


@pytest.fixture(scope="module")
def counter_policy(tmp_path_factory, tiny_model_path):
    """The tiny model after a short SFT on the counter's expert trajectories (6 tasks, 120 steps):
    it then answers in the task's format, and sampling at temperature 1 makes some episodes of a
    task succeed and others overshoot, so PPO's advantages, and its updates, are not all zero."""
    folder = tmp_path_factory.mktemp("counter-policy")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO_ROOT)
    for command in (
            [sys.executable, "-m", "eval_agent.expert_trajectories", "--task", "counter", "--split", "train",
             "--output", str(folder / "sft.json"), "--episodes_dir", str(folder / "expert")],
            [sys.executable, "fastchat/train/train.py", "--model_name_or_path", tiny_model_path, "--data_path",
             str(folder / "sft.json"), "--output_dir", str(folder / "model"), "--max_steps", "120", "--learning_rate",
             "3e-3", "--per_device_train_batch_size", "2", "--save_strategy", "no", "--report_to", "none"]):
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    return str(folder / "model")


def test_ppo_on_two_ranks_plays_the_same_episodes_and_trains_as_one_process(tmp_path, counter_policy):
    """PPO's rollouts per rank: with the same global batch, the two ranks play the step's episodes
    one process plays (each episode samples from its own seeded stream; a task's group on one rank,
    the shares disjoint), and the losses and final weights equal the single process's.

    Plain SGD, not AdamW: Adam divides each gradient by its own running size, so where a gradient
    is near zero its float rounding becomes a visible change of the update (seen: AdamW at lr 1e-3,
    weights 6.5e-5 apart on one q_proj, losses equal; SGD at lr 1e-2, weights 3e-8 apart after
    moving 3.9e-4). SGD shows what DDP is responsible for: the averaged gradient."""
    args = ["--model_name_or_path", counter_policy, "--task", "counter", "--max_tasks", "4", "--num_generations", "2",
            "--max_new_tokens", "16", "--num_examples", "0", "--rollout_engine", "hf", "--temperature", "1.0",
            "--num_train_epochs", "1", "--optim", "sgd", "--learning_rate", "1e-2", "--save_strategy", "no"]
    single = _torchrun(1, "fastchat/train/train_ppo.py", args + ["--per_device_train_batch_size", "4"], tmp_path / "one", 29631)
    double = _torchrun(2, "fastchat/train/train_ppo.py", args + ["--per_device_train_batch_size", "2"], tmp_path / "two", 29632)
    assert double.stdout.count("saved ") == 1 and single.stdout.count("saved ") == 1

    def episodes(folder, name):
        return [(record["meta"]["id"], record["conversations"])
                for record in json.loads((folder / "rollouts" / name).read_text())]

    rewards = []
    for step in (1, 2):  # 4 tasks x 2 episodes, 4 a step
        ranks = [episodes(tmp_path / "two", f"step_{step}_rank{r}.json") for r in (0, 1)]
        assert all(len({task for task, _ in share}) == 1 and len(share) == 2 for share in ranks)  # a group per rank
        assert ranks[0] + ranks[1] == episodes(tmp_path / "one", f"step_{step}.json")
        rewards += [record["meta"]["reward"] for record in json.loads((tmp_path / "one" / "rollouts" / f"step_{step}.json").read_text())]
    assert 0 < sum(rewards) < len(rewards)  # some episodes succeed, some fail: the updates are not zero
    _same_training(tmp_path / "one", tmp_path / "two", 2)
    assert _largest_weight_difference(tmp_path / "one", Path(counter_policy)) > 10 * WEIGHT_TOL  # it trained


def test_a_killed_two_rank_training_resumes_to_the_uninterrupted_result(tmp_path, tiny_model_path, data):
    """SIGKILL the whole two-rank run once a checkpoint is on disk, rerun the same command: it resumes
    from the last complete checkpoint (model, optimizer, scheduler, data position, every rank's RNG)
    and ends where an uninterrupted run ends."""
    args = ["--model_name_or_path", tiny_model_path, "--data_path", str(data / "sft.json"), "--max_steps", "12",
            "--learning_rate", "1e-3", "--per_device_train_batch_size", "2", "--save_strategy", "steps",
            "--save_steps", "3", "--lr_scheduler_type", "cosine"]
    _torchrun(2, "fastchat/train/train.py", args, tmp_path / "whole", 29621)
    killed = tmp_path / "killed"
    run = _torchrun(2, "fastchat/train/train.py", args, killed, 29622, wait=False)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint-3" / "trainer_state.json").exists() and run.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    # torchrun starts each rank in a session of its own: kill them all, as the OOM killer might
    import psutil

    launcher = psutil.Process(run.pid)
    for process in launcher.children(recursive=True) + [launcher]:
        process.send_signal(signal.SIGKILL)
    run.communicate()
    assert not (killed / "eto_training.json").exists(), "the run finished before it was killed"
    resumed = _torchrun(2, "fastchat/train/train.py", args, killed, 29623)
    assert "resuming from" in resumed.stdout
    whole, again = _losses(tmp_path / "whole"), _losses(killed)
    assert abs(whole[-1] - again[-1]) < LOSS_TOL
    assert _largest_weight_difference(tmp_path / "whole", killed) < WEIGHT_TOL


def test_two_workers_on_two_addresses_register_with_one_controller_and_both_serve_an_exploration(tmp_path, tiny_model_path):
    """More than one machine, on one: the controller on 127.0.0.1, one stock FastChat worker bound
    to 127.0.0.1 and one to 127.0.0.2 (each announcing its own address, as a worker on another host
    does with --host and --worker-address), then an exploration with 4 episodes in flight through
    the controller. Both register, and both answer generation requests."""
    import requests

    from fastchat.launch import free_port

    controller_port = free_port()
    controller = f"http://127.0.0.1:{controller_port}"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO_ROOT)
    logs, processes = {}, []

    def start(name, args):
        logs[name] = tmp_path / f"{name}.log"
        processes.append(subprocess.Popen([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env,
                                          stdout=open(logs[name], "w"), stderr=subprocess.STDOUT))

    try:
        start("controller", ["fastchat.serve.controller", "--host", "127.0.0.1", "--port", str(controller_port)])
        for i, host in enumerate(["127.0.0.1", "127.0.0.2"]):
            port = free_port()
            start(f"worker{i}", ["fastchat.serve.model_worker", "--model-path", tiny_model_path, "--device", "cpu",
                                 "--host", host, "--port", str(port), "--worker-address", f"http://{host}:{port}",
                                 "--controller-address", controller])
        deadline = time.monotonic() + 300
        while True:  # each worker adds its speed (1) to the controller's status once it has registered
            assert time.monotonic() < deadline, "the workers did not both register within 300 s"
            assert all(p.poll() is None for p in processes), "a server exited: " + " | ".join(
                open(log).read()[-300:] for log in logs.values())
            try:
                if requests.post(controller + "/worker_get_status", timeout=5).json().get("speed") == 2:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        result = subprocess.run([sys.executable, "-m", "eval_agent.main", "--agent_config", "fastchat", "--model_name",
                                 "tiny-smollm2", "--exp_config", "counter", "--split", "train", "--max_tasks", "8",
                                 "--controller_address", controller, "--output_dir", str(tmp_path / "out"),
                                 "--concurrency", "4", "--max_new_tokens", "16"],
                                cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    served = {name: open(logs[name]).read().count("POST /worker_generate") for name in ("worker0", "worker1")}
    assert all(n > 0 for n in served.values()), served


@pytest.mark.parametrize("config, stage", [("ds_zero2.json", 2), ("ds_zero3.json", 3)])
def test_the_deepspeed_configs_take_the_trainers_batch_clipping_and_precision(tiny_model_path, config, stage):
    """DeepSpeed does not train here (no GPU; its CPU accelerator's ZeRO-3 counted one rank when
    tried), so its configs are checked through transformers' DeepSpeed integration, as the SFT
    trainer builds it from the original's command line: every "auto" takes the trainer's value."""
    from transformers import AutoModelForCausalLM, HfArgumentParser

    from eto.trainer_core import translate_legacy_args
    from fastchat.train.train import TrainingArguments

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)  # before the config: ZeRO-3 would partition it
    argv, _ = translate_legacy_args(["--output_dir", "unused", "--bf16", "True", "--per_device_train_batch_size", "4",
                                     "--gradient_accumulation_steps", "8", "--max_grad_norm", "0.5",
                                     "--deepspeed", os.path.join(REPO_ROOT, "fastchat", "train", "configs", config)],
                                    has_cuda=True)
    assert "--deepspeed" in argv and "--bf16" in argv  # kept as given on a GPU machine
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    try:
        (args,) = HfArgumentParser((TrainingArguments,)).parse_args_into_dataclasses(argv + ["--use_cpu", "True"])
        settings = args.hf_deepspeed_config
        settings.trainer_config_finalize(args, model, num_training_steps=10)
        values = settings.config
    finally:  # a ZeRO-3 config left registered would make later from_pretrained calls partition
        unset_hf_deepspeed_config()
    assert values["zero_optimization"]["stage"] == stage
    assert values["bf16"]["enabled"] is True
    assert (values["train_micro_batch_size_per_gpu"], values["gradient_accumulation_steps"], values["train_batch_size"],
            values["gradient_clipping"]) == (4, 8, 32, 0.5)  # 4 x 8 x 1 process
    assert "auto" not in json.dumps(values)  # the model's sizes filled the bucket sizes


def test_the_original_fsdp_flags_give_accelerate_full_shard_wrapped_by_decoder_layer(tiny_model_path, tmp_path):
    """FSDP does not run here (accelerate takes FSDP only on accelerator devices; on CPU it wraps
    the model in DDP), so the plugin the trainer hands accelerate on a GPU machine is built from
    the original's flags and checked: FSDP2, full shard (reshard after forward), wrapped by the
    model's decoder layer; a config file's settings are kept beside them."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from transformers import AutoModelForCausalLM, HfArgumentParser
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from eto.trainer_core import translate_legacy_args
    from fastchat.train.train import TrainingArguments

    original = ["--output_dir", "unused", "--bf16", "True", "--fsdp", "full_shard auto_wrap",
                "--fsdp_transformer_layer_cls_to_wrap", "LlamaDecoderLayer"]
    for config_file in (None, os.path.join(REPO_ROOT, "fastchat", "train", "configs", "fsdp.json")):
        argv, notes = translate_legacy_args(original + (["--fsdp_config", config_file] if config_file else []), has_cuda=True)
        with mock.patch.dict(os.environ):  # transformers exports FSDP settings, which later trainers would inherit
            (args,) = HfArgumentParser((TrainingArguments,)).parse_args_into_dataclasses(argv + ["--use_cpu", "True"])
        assert args.fsdp is True and any("bare --fsdp" in note for note in notes)  # not transformers' deprecated words
        plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
        plugin.set_auto_wrap_policy(AutoModelForCausalLM.from_pretrained(tiny_model_path))
        assert (plugin.fsdp_version, plugin.reshard_after_forward) == (2, True)
        assert plugin.auto_wrap_policy.keywords["transformer_layer_cls"] == {LlamaDecoderLayer}
        if config_file:
            assert plugin.state_dict_type.name == "FULL_STATE_DICT"
