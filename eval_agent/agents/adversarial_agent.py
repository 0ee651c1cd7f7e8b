"""An agent that needs no model and writes what a model might at its worst: empty replies, 100 KB
of text, binary bytes, unusual Unicode, ``Action:`` with nothing after it, nested brackets, shell
metacharacters, and well-formed replies with random actions. Every environment must answer each of
them with an observation and never crash (``tests/test_faults.py``):

    python -m eval_agent.main --agent_config adversarial --model_name adversarial --exp_config webshop

Replies are drawn from a seeded generator (``"seed"`` in the config), one stream per episode in
the order episodes start, so a run with ``--concurrency 1`` is reproducible.
"""

from __future__ import annotations

import itertools
import random
import threading
from typing import List

from eval_agent.agents.base import Agent, Message, Reply

WORDS = ("look", "around", "go", "to", "open", "take", "put", "in", "on", "the", "a", "door", "kitchen",
         "search", "click", "buy", "now", "next", ">", "back", "focus", "inventory", "use", "1", "0", "-1")
STRANGE = ("\u202eRTL override", "e\u0301\u0301\u0301", "\U0001F600\U0001F34E", "\u4e0a\u8863", "\ufeffBOM",
           "\u0000nul", "\ud7ff", "ｆｕｌｌｗｉｄｔｈ", "\u200b\u200b")


class AdversarialAgent(Agent):
    def __init__(self, config: dict = None, model_name: str = "adversarial"):
        super().__init__(config or {}, model_name)
        self.max_retries = 0  # nothing to retry: no server
        self._episodes = itertools.count()
        self._lock = threading.Lock()
        self.rng = random.Random(int(self.config.get("seed", 0)))

    def bind(self, env) -> "AdversarialAgent":
        bound = AdversarialAgent(self.config, self.model_name)
        with self._lock:
            bound.rng = random.Random(f"{self.config.get('seed', 0)}:{next(self._episodes)}")
        return bound

    def _words(self, n: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    def reply_text(self) -> str:
        rng = self.rng
        kind = rng.randrange(10)
        if kind == 0:
            return rng.choice(("", " ", "\n\n\n", "\t"))
        if kind == 1:  # 100 KB, with or without an action at its end
            return "Thought: " + "x" * 100_000 + rng.choice(("", "\nAction: " + "y" * 1000))
        if kind == 2:  # binary bytes, as a broken decoder might hand them on
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))).decode("latin-1")
        if kind == 3:
            return f"Thought: {rng.choice(STRANGE)}\nAction: {rng.choice(STRANGE)} {self._words(2)}"
        if kind == 4:
            return rng.choice(("Action:", "Action: ", "Action:\n", "Thought: hm\nAction:   \n", "Action: Action: Action:"))
        if kind == 5:  # nested and unbalanced brackets
            depth = rng.randrange(1, 50)
            return "Action: " + rng.choice(("click", "search", "go to")) + "[" * depth + self._words(2) + "]" * rng.randrange(depth + 2)
        if kind == 6:
            return "Action: " + rng.choice(("$(rm -rf /)", "`ls`", "a; b && c || d", "> /dev/null 2>&1", "'\"\\", "%s%n%x"))
        if kind == 7:  # many actions in one reply
            return "\n".join(f"Action: {self._words(3)}" for _ in range(rng.randrange(2, 20)))
        return f"Thought: {self._words(5)}\nAction: {self._words(rng.randrange(1, 6))}"  # well formed, random

    def _attempt(self, messages: List[Message], attempt: int) -> Reply:
        return Reply(self.reply_text())
