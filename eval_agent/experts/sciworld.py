"""ScienceWorld's expert: the engine's gold action path (``generateGoldPath``), after a
``look around`` (the task turn shows no room), each action with a rule-written rationale."""

from __future__ import annotations

import re
from typing import List

from eval_agent.experts import ScriptedExpert


class GoldPathExpert(ScriptedExpert):
    def __init__(self, goal: str, gold_actions: List[str]):
        actions = list(gold_actions)
        if actions and actions[0] != "look around":
            actions.insert(0, "look around")
        super().__init__(actions)
        self.goal = goal

    def thought(self, index: int) -> str:
        return expert_thought(self.goal, self.actions[index], first=index == 0)


# ------------------------------------------------------------------ expert rationales
# The original ETO's thoughts were written by GPT-4. Offline, each gold action gets a short
# rationale from these rules instead: what the action is for, tied to the goal where the goal
# names the object. They teach the Thought/Action format and a plausible reason; they do not
# explain the whole plan (a model could write better ones: see docs/environments.md, "Expert trajectories").
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
