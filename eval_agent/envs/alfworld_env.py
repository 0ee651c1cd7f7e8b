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

import logging
import os
import re
import threading
from typing import Optional

from eval_agent.envs.base import BaseEnv
from eval_agent.experts.alfworld import WalkthroughExpert
from eval_agent.plugin import EnvironmentSpec
from eto.io import read_json
from eval_agent.tasks.alfworld import DEFAULT_DATA_DIR, AlfWorldTask, generate_splits

logger = logging.getLogger(__name__)

_BANNER = re.compile(r"^-= Welcome to TextWorld, ALFRED! =-\s*")
_ARRIVAL = re.compile(r"^You arrive at loc \d+\.\s*")  # engine-internal location numbers mean nothing to the agent
_PUT = re.compile(r"put (.+?) (?:in/on|in|on) (.+)")
_MOVE = re.compile(r"move (.+?) to (.+)")
# TextWorld's PDDL engine keeps state that is not thread-safe: with 8 games loading at once in
# threads (episodes in flight on vLLM), 6 crashed (IndexError "pop from empty list",
# UnboundLocalError in its precondition code). Games of one process load and step one at a time;
# a step takes about 60 ms (benchmarks.alfworld_env), small beside generating a reply.
_ENGINE_LOCK = threading.RLock()


class AlfWorldEnv(BaseEnv):
    """Each episode loads its game into a fresh TextWorld environment (about 2 s)."""

    def __init__(self, config: dict):
        super().__init__(config)
        self.engine = None
        self.goal = ""
        self._moves_with_put = True  # the game's grammar: "put X in/on Y" (2.1.1) or "move X to Y"
        self.expert: Optional[WalkthroughExpert] = None

    def _reset(self, task: AlfWorldTask) -> str:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

        self.close()
        path = os.path.join(self.config.get("data_dir") or DEFAULT_DATA_DIR, task.game_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ALFWorld game {path} is missing: run `bash setup.sh` to unpack or download the games")
        self._moves_with_put = "in/on {r}" in read_json(path).get("grammar", "in/on {r}")
        # The demangler gives objects their readable names ("apple 1"), as ALFWorld's own loader does.
        with _ENGINE_LOCK:
            self.engine = textworld.start(path, request_infos=textworld.EnvInfos(won=True), wrappers=[AlfredDemangler()])
            feedback = self.engine.reset().feedback
        # The room and the task, one line each, as the original ETO's loader joined them.
        opening = "\n".join(p.strip() for p in _BANNER.sub("", feedback).strip().split("\n\n"))
        self.goal = opening[opening.rfind("Your task is to:"):].strip()
        self.max_steps = int(self.config["max_steps"])
        self.expert = WalkthroughExpert(self.goal, path) if self.config.get("expert") else None
        if self.expert:  # the step limit is for the policy; the walkthrough may be longer
            self.max_steps = max(self.max_steps, self.expert.max_steps())
        return opening

    def _act(self, action: str) -> str:
        command = self._to_game_grammar(" ".join(action.lower().split()).rstrip("."))
        try:
            with _ENGINE_LOCK:
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
        """The walkthrough's next action (``eval_agent.experts.alfworld``)."""
        return self.expert.reply() if self.expert else None

    def close(self) -> None:
        if self.engine is not None:
            with _ENGINE_LOCK:
                self.engine.close()
            self.engine = None


SPEC = EnvironmentSpec("alfworld", AlfWorldTask, AlfWorldEnv, generate_splits, split_options=("lists_dir",))
