"""Build trajectory preference pairs from explored episodes and expert trajectories (ETO step 3).

    python construct_preference.py --model sciworld-sft --exp_name _train --task sciworld \\
        --golden_traj_path data/sciworld_sft.json --output_path data_pm/sciworld_pm_round1.json

Each explored episode (in the folder where ``eval_agent.main`` saves ``--model``'s on ``--task``,
``outputs/<model>/<task><exp_name>/``, or in the folders given with ``--episodes_dir``) is compared with the expert trajectory of the same task id, by the
original ETO's rules:

- the expert's reward is 1.0, or the reward its SFT record carries (WebShop); the agent's is the
  episode's reward, made 1.0/0.0 for environments whose task class says so (ALFWorld);
- agent below expert: chosen = expert, rejected = agent. The rejected side keeps at most the
  expert's number of agent turns plus the task class's margin (5 for WebShop and ScienceWorld);
- agent above expert: chosen = agent, rejected = expert. Ties give no pair;
- both sides end on an agent turn; the prompt is the expert record's instruction, its "OK" and
  the task, without in-context examples (exploration may have used some).

Step-level pairs (``--step_episodes_dir``: episodes played from an expert prefix, see
``eval_agent/prefixes.py``): the episode replayed the expert's first t-1 replies and the agent
acted from step t. The pair's prompt is the task plus that expert prefix (ending on the
observation before step t); chosen and rejected are one agent turn each, the expert's reply at
step t and the agent's, ranked by the final rewards of the two continuations (the expert's reward
as above, the episode's). Equal rewards, the same reply, or a replay that did not reproduce the
expert's observations (by the env class's ``same_observation``: ScienceWorld's lists a room's
objects in an order that varies between engines) give no pair. Ids are ``<task id>@step<t>``. Given both kinds of folder,
the output is the mixture of both kinds of pair.

With ``--cut_at_divergence`` each trajectory pair ends at its first differing agent turn: the
turns both sides share join the prompt, and chosen and rejected keep that one turn each.

Output (the original README's DPO format): ``[{id, prompt, chosen, rejected, chosen_reward,
rejected_reward}]`` with ``prompt``/``chosen``/``rejected`` lists of ``{from, value}`` turns.
Unreadable episode files, episodes that ended in an agent error and tasks without an expert
trajectory are counted and skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type

from eval_agent.config import load_task_config
from eval_agent.prefixes import expert_observations, expert_replies
from eval_agent.envs.base import BaseEnv
from eval_agent.registry import ENVS, TASKS
from eval_agent.results import read_episodes
from eval_agent.tasks.base import Task
from eto.io import DataError
from eto.pipeline.paths import DEFAULT_OUTPUT_DIR, episode_folder
from eto.records import PROMPT_TURNS, end_on_agent_turn, load_sft_data, validate_pair, write_preference_data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", required=True, help="task config name (sciworld, alfworld, webshop, sciworld_demo, ...)")
    p.add_argument("--golden_traj_path", required=True, help="expert trajectories in the SFT format (data/<task>_sft.json)")
    p.add_argument("--output_path", required=True, help="where to write the pairs (JSON)")
    p.add_argument("--model", default=None, help="the explored model's name: reads <output_dir>/<model>/<task><exp_name>/")
    p.add_argument("--output_dir", default=DEFAULT_OUTPUT_DIR, help="with --model: eval_agent.main's --output_dir")
    p.add_argument("--exp_name", default="", help="with --model: eval_agent.main's --exp_name (e.g. _train)")
    p.add_argument("--episodes_dir", action="append", default=None,
                   help="folder of explored episode files (repeatable); replaces the --model default")
    p.add_argument("--step_episodes_dir", action="append", default=None,
                   help="folder of episodes played from expert prefixes (eval_agent.main --prefix_data; "
                        "repeatable): step-level pairs; alone, only those; with --episodes_dir/--model, the mixture")
    p.add_argument("--cut_at_divergence", action="store_true",
                   help="each trajectory pair ends at the first agent turn where its sides differ: the turns they "
                        "share join the prompt, and each side keeps that one turn")
    return p


def load_episodes(folders: Sequence[str], counts: Counter) -> Dict[str, dict]:
    """task id -> usable episode record, from every ``*.json`` episode file in ``folders``."""
    episodes: Dict[str, dict] = {}
    for folder in folders:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"episode folder {folder} does not exist")
        for record in read_episodes(folder, counts):
            episodes[str(record["meta"]["id"])] = record
    return episodes


def agent_turns(turns: List[dict]) -> int:
    return sum(turn["from"] == "gpt" for turn in turns)


def cut_to_agent_turns(turns: List[dict], limit: int) -> List[dict]:
    """The first ``limit`` agent turns and the observations between them."""
    kept, seen = [], 0
    for turn in turns:
        if turn["from"] == "gpt":
            if seen == limit:
                break
            seen += 1
        kept.append(turn)
    return end_on_agent_turn(kept)


def agent_reward(task_cls: Type[Task], episode: dict) -> float:
    """An episode's reward as pairs compare it (success/failure where the task class says so)."""
    reward = float(episode["meta"]["reward"])
    if task_cls.binary_reward:
        return 1.0 if episode["meta"].get("success") or reward >= 1.0 else 0.0
    return reward


def comparable_rewards(task_cls: Type[Task], expert: dict, episode: dict) -> Tuple[float, float]:
    """(expert's reward, agent's reward), made comparable by the task class's rules."""
    field = task_cls.expert_reward_field
    return 1.0 if field is None else float(expert[field]), agent_reward(task_cls, episode)


def make_pair(task_cls: Type[Task], expert: dict, episode: dict) -> Tuple[str, Optional[dict]]:
    """('lose'|'win'|'tie', pair or None) for one task, by the rules in the module docstring."""
    expert_reward, agent_reward = comparable_rewards(task_cls, expert, episode)
    prompt = expert["conversations"][:PROMPT_TURNS]
    expert_side = end_on_agent_turn(expert["conversations"][PROMPT_TURNS:])
    agent_side = end_on_agent_turn(episode["conversations"][episode["meta"]["task_turn"] + 1:])
    if agent_reward == expert_reward:
        return "tie", None
    if agent_reward < expert_reward:
        outcome, chosen, rejected = "lose", expert_side, agent_side
        if task_cls.rejected_extra_turns is not None:
            rejected = cut_to_agent_turns(rejected, agent_turns(expert_side) + task_cls.rejected_extra_turns)
        rewards = (expert_reward, agent_reward)
    else:
        outcome, chosen, rejected = "win", agent_side, expert_side
        rewards = (agent_reward, expert_reward)
    if not chosen or not rejected:
        return outcome, None
    return outcome, {"id": task_cls.expert_key(expert), "prompt": prompt, "chosen": chosen, "rejected": rejected,
                     "chosen_reward": rewards[0], "rejected_reward": rewards[1]}


def make_step_pair(task_cls: Type[Task], expert: dict, episode: dict,
                   same_observation: Callable[[str, str], bool] = BaseEnv.same_observation) -> Tuple[str, Optional[dict]]:
    """(outcome, pair or None) for one episode played from an expert prefix (module docstring);
    ``same_observation`` is the env class's test that a replay reached the expert's state."""
    replayed = episode["meta"].get("prefix_steps")
    if not isinstance(replayed, int) or replayed < 0:
        return "episodes not played from an expert prefix", None
    replies = expert_replies(expert)
    turns = episode["conversations"][episode["meta"]["task_turn"] + 1:]
    if replayed >= len(replies) or len(turns) <= 2 * replayed:
        return "step-level episodes without an agent turn after the prefix", None
    if not all(map(same_observation, [t["value"] for t in turns[1:2 * replayed:2]], expert_observations(expert)[:replayed])):
        return "step-level replays that did not reproduce the expert's observations", None
    expert_reply, agent_reply = replies[replayed], turns[2 * replayed]["value"]
    expert_reward, agent_reward = comparable_rewards(task_cls, expert, episode)
    if agent_reward == expert_reward or agent_reply.strip() == expert_reply.strip():
        return "tie", None
    outcome = "lose" if agent_reward < expert_reward else "win"
    better, worse = (expert_reply, agent_reply) if outcome == "lose" else (agent_reply, expert_reply)
    return outcome, {"id": f"{task_cls.expert_key(expert)}@step{replayed + 1}",
                     "prompt": expert["conversations"][:PROMPT_TURNS + 2 * replayed],
                     "chosen": [{"from": "gpt", "value": better}], "rejected": [{"from": "gpt", "value": worse}],
                     "chosen_reward": max(expert_reward, agent_reward), "rejected_reward": min(expert_reward, agent_reward)}


def first_divergent_turn(pair: dict) -> Optional[int]:
    """The index of the first turn where the pair's two continuations differ (None: one is a
    prefix of the other)."""
    for i, (chosen, rejected) in enumerate(zip(pair["chosen"], pair["rejected"])):
        if chosen["value"].strip() != rejected["value"].strip():
            return i
    return None


def cut_at_divergence(pair: dict) -> Optional[dict]:
    """The pair up to its first differing agent turn (``--cut_at_divergence``): what the sides do
    after it is left out, so that DPO is not shown the rejected side's later actions (often the
    expert's own kinds of action, on the wrong item) as things to avoid. None where the sides first
    differ in an observation, or never."""
    i = first_divergent_turn(pair)
    if i is None or pair["chosen"][i]["from"] != "gpt" or pair["rejected"][i]["from"] != "gpt":
        return None
    return {**pair, "prompt": pair["prompt"] + pair["chosen"][:i], "chosen": [pair["chosen"][i]],
            "rejected": [pair["rejected"][i]]}


def build_step_pairs(task_cls: Type[Task], env_cls: Type[BaseEnv], experts: List[dict], episodes: Dict[str, dict],
                     counts: Counter) -> List[dict]:
    pairs = []
    for expert in experts:
        episode = episodes.get(task_cls.expert_key(expert))
        if episode is None:
            continue
        outcome, pair = make_step_pair(task_cls, expert, episode, env_cls.same_observation)
        counts[f"step {outcome}" if outcome in ("win", "tie", "lose") else outcome] += 1
        if pair is not None:
            validate_pair(pair, len(pairs))
            pairs.append(pair)
    return pairs


def build_pairs(task_cls: Type[Task], experts: List[dict], episodes: Dict[str, dict], counts: Counter) -> List[dict]:
    pairs = []
    for expert in experts:  # expert order: reruns give the same file
        episode = episodes.get(task_cls.expert_key(expert))
        if episode is None:
            counts["expert trajectories without a usable explored episode"] += 1
            continue
        if episode["conversations"][episode["meta"]["task_turn"]]["value"].strip() != \
                expert["conversations"][PROMPT_TURNS - 1]["value"].strip():
            counts["episodes whose task text differs from the expert's (paired anyway)"] += 1
        outcome, pair = make_pair(task_cls, expert, episode)
        counts[outcome] += 1
        if pair is None:
            if outcome != "tie":
                counts["pairs without an agent turn on one side"] += 1
            continue
        validate_pair(pair, len(pairs))  # both sides come from validated turns: a failure is a bug here
        pairs.append(pair)
    counts["explored episodes without an expert trajectory"] = len(set(episodes) - {task_cls.expert_key(e) for e in experts})
    return pairs


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _, env_name = load_task_config(args.task)
        task_cls = TASKS[env_name]
        if not args.episodes_dir and not args.model and not args.step_episodes_dir:
            raise ValueError("give --model (with --output_dir and --exp_name), --episodes_dir or --step_episodes_dir")
        folders = args.episodes_dir or ([episode_folder(args.output_dir, args.model, args.task, args.exp_name)]
                                        if args.model else [])
        experts = load_sft_data(args.golden_traj_path)
        if task_cls.expert_reward_field:
            missing = [e["id"] for e in experts if not isinstance(e.get(task_cls.expert_reward_field), (int, float))]
            if missing:
                raise ValueError(f"{args.golden_traj_path}: record {missing[0]!r} has no numeric "
                                 f"{task_cls.expert_reward_field!r} field ({len(missing)} records lack it)")
        counts: Counter = Counter()
        episodes = load_episodes(folders, counts)
        step_episodes = load_episodes(args.step_episodes_dir or [], counts)
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    pairs = build_pairs(task_cls, experts, episodes, counts) if folders else []
    if args.cut_at_divergence:
        cut = [cut_at_divergence(pair) for pair in pairs]
        counts["pairs whose sides never differ in an agent turn (dropped by --cut_at_divergence)"] += cut.count(None)
        pairs = [pair for pair in cut if pair is not None]
    step_pairs = build_step_pairs(task_cls, ENVS[env_name], experts, step_episodes, counts)
    write_preference_data(args.output_path, pairs + step_pairs)
    outcomes = ("win", "tie", "lose", "step win", "step tie", "step lose")
    if folders:
        print(f"win: {counts['win']}, tie: {counts['tie']}, lose: {counts['lose']}")
    if args.step_episodes_dir:
        print(f"step-level win: {counts['step win']}, tie: {counts['step tie']}, lose: {counts['step lose']}")
    kinds = f" ({len(pairs)} trajectory-level, {len(step_pairs)} step-level)" if folders and args.step_episodes_dir else ""
    print(f"{len(pairs) + len(step_pairs)} pairs{kinds} -> {args.output_path}")
    for reason, n in sorted(counts.items()):
        if reason not in outcomes and n:
            print(f"  skipped/noted: {n} {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
