"""ALFWorld through the real TextWorld engine (``textworld`` + ``alfworld`` packages).

Reward: 1 if the game is won, else 0 (as in ALFWorld and the original ETO). Episodes end when
won or after ``max_steps`` replies (40 in configs/task/alfworld.json, the original's limit).

Grammars. A game file carries its own grammar. The ALFWorld 2.1.1 games (what the original ETO
used, and what setup.sh unpacks offline) say ``put X in/on Y``; the games that newer alfworld
releases download say ``move X to Y``. The agent may use either form, or ``put X in Y`` /
``put X on Y``: ``_to_game_grammar`` rewrites it to the form of the game being played, so one
prompt and one set of trajectories serve both data versions.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import List, Optional

from eval_agent.envs.base import BaseEnv
from eval_agent.plugin import EnvironmentSpec
from eval_agent.tasks.alfworld import DEFAULT_DATA_DIR, AlfWorldTask, generate_splits

logger = logging.getLogger(__name__)

_BANNER = re.compile(r"^-= Welcome to TextWorld, ALFRED! =-\s*")
_ARRIVAL = re.compile(r"^You arrive at loc \d+\.\s*")  # engine-internal location numbers mean nothing to the agent
_PUT = re.compile(r"put (.+?) (?:in/on|in|on) (.+)")
_MOVE = re.compile(r"move (.+?) to (.+)")


class AlfWorldEnv(BaseEnv):
    """Each episode loads its game into a fresh TextWorld environment (about 2 s)."""

    def __init__(self, config: dict):
        super().__init__(config)
        self.engine = None
        self.goal = ""
        self._moves_with_put = True  # the game's grammar: "put X in/on Y" (2.1.1) or "move X to Y"
        self._gold: List[str] = []
        self._gold_pos = 0

    def _reset(self, task: AlfWorldTask) -> str:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

        self.close()
        path = os.path.join(self.config.get("data_dir") or DEFAULT_DATA_DIR, task.game_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ALFWorld game {path} is missing: run `bash setup.sh` to unpack or download the games")
        with open(path, encoding="utf-8") as f:
            self._moves_with_put = "in/on {r}" in json.load(f).get("grammar", "in/on {r}")
        # The demangler gives objects their readable names ("apple 1"), as ALFWorld's own loader does.
        self.engine = textworld.start(path, request_infos=textworld.EnvInfos(won=True), wrappers=[AlfredDemangler()])
        # The room and the task, one line each, as the original ETO's loader joined them.
        opening = "\n".join(p.strip() for p in _BANNER.sub("", self.engine.reset().feedback).strip().split("\n\n"))
        self.goal = opening[opening.rfind("Your task is to:"):].strip()
        self.max_steps = int(self.config["max_steps"])
        self._gold, self._gold_pos = ([], 0)
        if self.config.get("expert"):
            self._gold = _walkthrough(path)
            # The step limit is for the policy; the walkthrough may be longer.
            self.max_steps = max(self.max_steps, len(self._gold) + 1)
        return opening

    def _act(self, action: str) -> str:
        command = self._to_game_grammar(" ".join(action.lower().split()).rstrip("."))
        try:
            game_state, _, done = self.engine.step(command)
        except Exception as error:  # the engine never should; an odd input must not end the run
            logger.debug("textworld rejected %r: %s", command, error)
            return "Observation: Nothing happens."
        if game_state["won"]:
            self.state.reward = 1.0
            self.state.finish("success", success=True)
        elif done:
            self.state.finish("task_failed")
        return f"Observation: {_ARRIVAL.sub('', game_state.feedback.strip())}"

    def _to_game_grammar(self, command: str) -> str:
        placed = _PUT.fullmatch(command) or _MOVE.fullmatch(command)
        if not placed:
            return command
        thing, place = placed[1], placed[2]
        return f"put {thing} in/on {place}" if self._moves_with_put else f"move {thing} to {place}"

    def expert_reply(self) -> Optional[str]:
        """The walkthrough's next action, with a rationale written from rules."""
        if self._gold_pos >= len(self._gold):
            return None
        thought = expert_thought(self.goal, self._gold, self._gold_pos)
        action = self._gold[self._gold_pos]
        self._gold_pos += 1
        return f"Thought: {thought}\nAction: {action}"

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def _walkthrough(game_path: str) -> List[str]:
    """The game's shipped winning walkthrough (``gt_traj.json``, train games only), or []."""
    path = os.path.join(os.path.dirname(game_path), "gt_traj.json")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        turns = json.load(f)
    return [turn["value"].strip() for turn in turns if turn.get("from") == "gpt"]


# ------------------------------------------------------------------ expert rationales
# The same rule as the ScienceWorld generator: a short reason for each walkthrough action, tied to
# the goal, and the goal restated before the first one. Walkthroughs go straight to the right
# receptacle, so a "go to" is explained by what the walkthrough does there next.
_GOAL = re.compile(r"Your task is to: (.*?)\.?$")


def _kind(name: str) -> str:
    """'apple 1' -> 'apple' (the kind of thing, as the goal names it)."""
    return re.sub(r" \d+$", "", name)


def _a(kind: str) -> str:
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


_PURPOSE = [(re.compile(pattern), reason) for pattern, reason in [
    (r"take (.+) from .+", "{a_kind} may be there"),
    (r"(?:put (.+) in/on .+|move (.+) to .+)", "that is where the {kind} goes"),
    (r"clean (.+) with .+", "I can wash the {kind} there"),
    (r"heat (.+) with .+", "I can heat the {kind} there"),
    (r"cool (.+) with .+", "I can cool the {kind} there"),
    (r"use (.+)", "I can use the {kind} there"),
]]


def _go_to(place: str, later: List[str]) -> str:
    for action in later:
        if action.startswith(("open ", "close ")):  # opening the place is a step towards the real purpose
            continue
        for pattern, reason in _PURPOSE:
            m = pattern.fullmatch(action)
            if m:
                thing = next(g for g in m.groups() if g)
                return f"I will go to the {place}: {reason.format(kind=_kind(thing), a_kind=_a(_kind(thing)))}."
        break
    return f"I will go to the {place} and see what is there."


def _held(done: List[str]) -> str:
    """The kind of thing the walkthrough took last, before this action."""
    for action in reversed(done):
        m = re.fullmatch(r"take (.+) from .+", action)
        if m:
            return _kind(m[1])
    return "object"


_RULES = [(re.compile(pattern), write) for pattern, write in [
    (r"go to (.+)", lambda m, done, later: _go_to(m[1], later)),
    (r"take (.+) from (.+)", lambda m, done, later: f"Here is {_a(_kind(m[1]))}; I will take the {m[1]}."),
    (r"put (.+) in/on (.+)|move (.+) to (.+)",
     lambda m, done, later: f"Now I put the {m[1] or m[3]} in/on the {m[2] or m[4]}."),
    (r"open (.+)", lambda m, done, later: f"The {m[1]} is closed; I will open it to look inside."),
    (r"close (.+)", lambda m, done, later: f"I will close the {m[1]}."),
    (r"clean (.+) with (.+)", lambda m, done, later: f"The {_kind(m[1])} must be clean; I will wash it in the {m[2]}."),
    (r"heat (.+) with (.+)", lambda m, done, later: f"The {_kind(m[1])} must be hot; I will heat it with the {m[2]}."),
    (r"cool (.+) with (.+)", lambda m, done, later: f"The {_kind(m[1])} must be cool; I will cool it with the {m[2]}."),
    (r"use (.+)", lambda m, done, later: f"I have the {_held(done)}; I will turn on the {m[1]} to look at it in the light."),
    (r"(?:examine|look at) (.+)", lambda m, done, later: f"Let me examine the {m[1]}."),
    (r"look", lambda m, done, later: "Let me look around."),
    (r"inventory", lambda m, done, later: "Let me check what I am carrying."),
]]


def expert_thought(goal: str, actions: List[str], index: int) -> str:
    """A one-sentence rationale for ``actions[index]`` (a walkthrough action) under ``goal``
    (the game's "Your task is to: ..." line)."""
    action = actions[index]
    thought = f"I will {action}."
    for pattern, write in _RULES:
        match = pattern.fullmatch(action)
        if match:
            thought = write(match, actions[:index], actions[index + 1:])
            break
    if index == 0:
        found = _GOAL.search(goal)
        if found:
            thought = f"My task is to {found[1].strip()}. {thought}"
    return thought


SPEC = EnvironmentSpec("alfworld", AlfWorldTask, AlfWorldEnv, generate_splits, split_options=("lists_dir",))
