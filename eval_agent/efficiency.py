"""How soon a policy earns its reward (the paper's Figure 3): the reward reached by step k,
averaged over the tasks of an evaluation, and the steps it takes to first reach the final reward.

Read from the episodes' ``meta.reward_by_step`` (the task's reward after each step, which the
runner records). Step k of an episode that ended before k counts with its final reward, so every
curve ends at the evaluation's average reward. Episodes saved before the runner recorded rewards
per step have none and are left out (the count says how many tasks a curve averages).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from eval_agent import compare
from eval_agent.results import read_episodes


def rewards_by_step(folder: str) -> Dict[str, List[float]]:
    """task id -> the reward after each step, for the folder's episodes that recorded them."""
    found = {}
    for record in read_episodes(folder):
        rewards = record["meta"].get("reward_by_step") or []
        if rewards:
            found[str(record["meta"]["id"])] = [float(r) for r in rewards]
    return found


def reward_curve(by_task: Dict[str, List[float]], steps: int) -> List[float]:
    """The average over tasks of the reward reached by step 1..steps."""
    if not by_task:
        return []
    return [sum(r[min(k, len(r)) - 1] for r in by_task.values()) / len(by_task) for k in range(1, steps + 1)]


def steps_to_final_reward(by_task: Dict[str, List[float]]) -> Optional[float]:
    """Average over the tasks that earn a positive reward of the first step at which the episode
    holds its final reward; None when no task earns any."""
    firsts = [next(k for k, r in enumerate(rewards, 1) if r >= rewards[-1])
              for rewards in by_task.values() if rewards[-1] > 0]
    return sum(firsts) / len(firsts) if firsts else None


def curves(folders: Dict[str, str]) -> Dict[str, dict]:
    """name -> {"curve", "n", "steps_to_final"} for the named evaluation folders that have rewards
    per step; every curve runs to the longest episode among them."""
    by_name = {name: rewards_by_step(folder) for name, folder in folders.items()}
    by_name = {name: by_task for name, by_task in by_name.items() if by_task}
    longest = max((len(r) for by_task in by_name.values() for r in by_task.values()), default=0)
    return {name: {"curve": reward_curve(by_task, longest), "n": len(by_task),
                   "steps_to_final": steps_to_final_reward(by_task)} for name, by_task in by_name.items()}


def checkpoints(longest: int, count: int = 5) -> List[int]:
    """A few steps to tabulate: evenly spread up to the longest episode, which is always included."""
    if longest <= count:
        return list(range(1, longest + 1))
    return sorted({max(1, round(longest * i / count)) for i in range(1, count + 1)})


def markdown(by_split: Dict[str, Dict[str, dict]], label) -> str:
    """One table per split: the reward reached by a few steps, and steps to the final reward."""
    lines = ["", "## Reward by step", "",
             "The average reward reached by step k (an episode that has ended counts with its final reward), "
             "and the average step at which episodes that earn a reward first reach their final one "
             "(the paper's Figure 3; efficiency.png plots every step).", ""]
    for split, found in by_split.items():
        if not found:
            continue
        longest = len(next(iter(found.values()))["curve"])
        ks = checkpoints(longest)
        lines += [f"{label(split)}:", "",
                  "| method | " + " | ".join(f"step {k}" for k in ks) + " | steps to final reward | tasks |",
                  "|" + "---|" * (len(ks) + 3)]
        for name, c in found.items():
            to_final = "" if c["steps_to_final"] is None else f"{c['steps_to_final']:.1f}"
            lines.append(f"| {name} | " + " | ".join(f"{c['curve'][k - 1]:.3f}" for k in ks) + f" | {to_final} | {c['n']} |")
        lines.append("")
    return "\n".join(lines)


def plot(by_split: Dict[str, Dict[str, dict]], label, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits: Sequence[str] = [s for s, found in by_split.items() if found]
    fig, axes = plt.subplots(1, len(splits), figsize=(7.5 * len(splits), 4.5), squeeze=False)
    for ax, split in zip(axes[0], splits):
        for name, c in by_split[split].items():
            ax.plot(range(1, len(c["curve"]) + 1), c["curve"], label=f"{name} ({c['n']} tasks)")
        ax.set_title(label(split))
        compare.reward_axis(ax, "step", "average reward reached", fontsize=8, loc="best")
    compare.save_figure(fig, path, title)
