"""ScienceWorld through the real ``scienceworld`` package (a JVM per instance).

Reward: the best score reached during the episode, in 0-1 (ScienceWorld scores are 0-100 and
drop to -100 when the task fails, e.g. after focusing on the wrong object; the best score keeps
the credit for subgoals reached before, as the original ETO did). Success: score 100.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import Future, ThreadPoolExecutor
from typing import List, Optional

from eval_agent.envs.base import BaseEnv
from eval_agent.plugin import EnvironmentSpec
from eval_agent.tasks.sciworld import SciWorldTask, generate_splits

logger = logging.getLogger(__name__)


class SciWorldEnv(BaseEnv):
    """Each episode runs in a fresh engine (JVM).

    ScienceWorld lists a room's objects in an order that changes every time a task is loaded
    into the same JVM, so an engine that played before would show the same task differently.
    A fresh engine per episode makes episodes reproducible whatever ran before; the next engine
    starts in the background while the current episode plays, hiding its ~1.3 s start.
    """

    def __init__(self, config: dict):
        super().__init__(config)
        self._executor = ThreadPoolExecutor(max_workers=1)
        self._next_engine: Future = self._executor.submit(_start_engine)
        self.engine = None
        self.best_score = 0
        self.goal = ""
        self._gold: List[str] = []
        self._gold_pos = 0

    def _reset(self, task: SciWorldTask) -> str:
        if self.engine is not None:
            _close_engine(self.engine)
        self.engine = self._next_engine.result()
        self._next_engine = self._executor.submit(_start_engine)
        self.max_steps = self.config["max_steps"][task.task_name]
        expert = bool(self.config.get("expert"))
        self.engine.load(task.task_name, task.variation, self.config.get("simplification", "easy"),
                         generateGoldPath=expert)
        _, info = self.engine.reset()
        self.best_score = 0
        self.goal = task_description(info["taskDesc"])
        self._gold = list(self.engine.get_gold_action_sequence()) if expert else []
        if self._gold and self._gold[0] != "look around":
            # The task turn shows no room, so the expert first looks, as a policy must.
            self._gold.insert(0, "look around")
        self._gold_pos = 0
        # The per-type step limits are for the policy; the expert's path may be longer.
        self.max_steps = max(self.max_steps, len(self._gold) + 1)
        return self.goal

    def _act(self, action: str) -> str:
        try:
            observation, _, completed, info = self.engine.step(action)
        except Exception as error:  # the engine rejects some inputs outright; never crash the run
            logger.debug("scienceworld rejected %r: %s", action, error)
            return f"Observation: The action '{action}' could not be performed."
        score = info["score"]
        self.best_score = max(self.best_score, score)
        self.state.reward = max(0, self.best_score) / 100
        if completed or score >= 100:
            self.state.finish("success" if score >= 100 else "task_failed", success=score >= 100)
        return f"Observation: {observation.strip()}"

    def expert_reply(self) -> Optional[str]:
        """The next action of the engine's gold path, with a rationale written from rules."""
        if self._gold_pos >= len(self._gold):
            return None
        action = self._gold[self._gold_pos]
        thought = expert_thought(self.goal, action, first=self._gold_pos == 0)
        self._gold_pos += 1
        return f"Thought: {thought}\nAction: {action}"

    def close(self) -> None:
        for engine in (self.engine, self._next_engine.result()):
            if engine is not None:
                _close_engine(engine)
        self.engine = None
        self._executor.shutdown()


def task_description(task_desc: str) -> str:
    """The task turn: the engine's task description without its ``Task Description:`` header,
    as the original ETO's published trajectories have it (no first observation: the agent looks
    around itself)."""
    text = task_desc.strip()
    return text[len(DESCRIPTION_HEADER):].strip() if text.startswith(DESCRIPTION_HEADER) else text


DESCRIPTION_HEADER = "Task Description:"


def _start_engine():
    from scienceworld import ScienceWorldEnv

    # Our own step limit (per task type) governs; the engine's must never end episodes first.
    return ScienceWorldEnv("", envStepLimit=100_000)


def _close_engine(engine) -> None:
    """Stop an engine's JVM once; its ``__del__`` would close again and hit a broken pipe."""
    try:
        engine.close()
    except OSError:
        pass
    engine.close = lambda: None


# ------------------------------------------------------------------ expert rationales
# The original ETO's thoughts were written by GPT-4. Offline, each gold action gets a short
# rationale from these rules instead: what the action is for, tied to the goal where the goal
# names the object. They teach the Thought/Action format and a plausible reason; they do not
# explain the whole plan (a model could write better ones: see README, "Expert trajectories").
_GOAL = re.compile(r"Your task is to ([^.]*)\.")


def _pick_up(m, goal: str) -> str:
    if m[1].lower() in goal.lower():
        return f"The task is about the {m[1]}, so I will pick it up."
    return f"I need the {m[1]} with me, so I will pick it up."


def _choose(m, goal: str) -> str:
    choice = "the first choice" if m[0] == "0" else f"choice {m[0]}"
    return f"Several things match what I meant; {choice} is the right one."


# (pattern, writer(match, goal)); the first pattern that matches the whole action wins.
_RULES = [(re.compile(pattern), write) for pattern, write in [
    (r"look around", lambda m, g: "Let me look around to see what is here."),
    (r"(?:go|teleport) to (.+)", lambda m, g: f"I will go to the {m[1]}."),
    (r"open door to (.+)", lambda m, g: f"I need to get through the door to the {m[1]}, so I will open it."),
    (r"close door to (.+)", lambda m, g: f"I will close the door to the {m[1]} to keep this room closed off."),
    (r"open (.+)", lambda m, g: f"The {m[1]} may hold something useful, so I will open it."),
    (r"close (.+)", lambda m, g: f"I will close the {m[1]}."),
    (r"pick up (.+)", _pick_up),
    (r"(?:drop|put down) (.+)", lambda m, g: f"I will put the {m[1]} down here."),
    (r"focus on (.+)", lambda m, g: f"The {m[1]} is what the task asks me to focus on now, so I will focus on it."),
    (r"move (.+) to (.+)", lambda m, g: f"Next, the {m[1]} should go to the {m[2]}."),
    (r"pour (.+) (?:into|in) (.+)", lambda m, g: f"I will pour the {m[1]} into the {m[2]}."),
    (r"mix (.+)", lambda m, g: f"The ingredients are together in the {m[1]}; mixing them should give the result."),
    (r"dunk (.+) in (.+)", lambda m, g: f"I will dunk the {m[1]} in the {m[2]}."),
    (r"activate (.+)", lambda m, g: f"I need the {m[1]} running, so I will turn it on."),
    (r"deactivate (.+)", lambda m, g: f"The {m[1]} has done its job; I will turn it off."),
    (r"use thermometer.* on (.+)", lambda m, g: f"I will measure the temperature of the {m[1]} with the thermometer."),
    (r"use (.+) on (.+)", lambda m, g: f"I will use the {m[1]} on the {m[2]}."),
    (r"(?:examine|look at|look in) (.+)", lambda m, g: f"Let me check the {m[1]} to see how it is now."),
    (r"connect (.+) to (.+)", lambda m, g: f"To build the circuit, I will connect the {m[1]} to the {m[2]}."),
    (r"disconnect (.+)", lambda m, g: f"I will disconnect the {m[1]}."),
    (r"read (.+)", lambda m, g: f"The {m[1]} may explain what to do; let me read it."),
    (r"wait1?", lambda m, g: "The change takes time, so I will wait."),
    (r"\d+", _choose),
]]


def expert_thought(goal: str, action: str, first: bool = False) -> str:
    """A one-sentence rationale for ``action`` (a gold action) under ``goal`` (the task text)."""
    thought = f"I will {action}."
    for pattern, write in _RULES:
        match = pattern.fullmatch(action)
        if match:
            thought = write(match, goal)
            break
    if first:
        found = _GOAL.search(goal)
        if found:
            thought = f"My task is to {found[1].strip()}. {thought}"
    return thought


SPEC = EnvironmentSpec("sciworld", SciWorldTask, SciWorldEnv, generate_splits, split_options=("lists_dir", "rules"))
