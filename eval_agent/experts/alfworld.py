"""ALFWorld's expert: the game's shipped winning walkthrough (``gt_traj.json``, train games only),
each action with a rule-written rationale."""

from __future__ import annotations

import os
import re
from typing import List

from eval_agent.experts import ScriptedExpert
from eto.io import read_json


class WalkthroughExpert(ScriptedExpert):
    def __init__(self, goal: str, game_path: str):
        super().__init__(walkthrough(game_path))
        self.goal = goal

    def thought(self, index: int) -> str:
        return expert_thought(self.goal, self.actions, index)


def walkthrough(game_path: str) -> List[str]:
    """The game's shipped winning walkthrough (``gt_traj.json``, train games only), or []."""
    path = os.path.join(os.path.dirname(game_path), "gt_traj.json")
    if not os.path.isfile(path):
        return []
    turns = read_json(path)
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
