"""ScienceWorld through the real ``scienceworld`` package (a JVM per instance).

Reward: the best score reached during the episode, in 0-1 (ScienceWorld scores are 0-100 and
drop to -100 when the task fails, e.g. after focusing on the wrong object; the best score keeps
the credit for subgoals reached before, as the original ETO did). Success: score 100.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from eval_agent.envs.base import BaseEnv
from eval_agent.tasks.sciworld import SciWorldTask

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

    def _reset(self, task: SciWorldTask) -> str:
        if self.engine is not None:
            _close_engine(self.engine)
        self.engine = self._next_engine.result()
        self._next_engine = self._executor.submit(_start_engine)
        self.max_steps = self.config["max_steps"][task.task_name]
        self.engine.load(task.task_name, task.variation, self.config.get("simplification", "easy"))
        observation, info = self.engine.reset()
        self.best_score = 0
        return f"{info['taskDesc'].strip()}\n\nObservation: {observation.strip()}"

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

    def close(self) -> None:
        for engine in (self.engine, self._next_engine.result()):
            if engine is not None:
                _close_engine(engine)
        self.engine = None
        self._executor.shutdown()


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
