"""ScienceWorld through the real ``scienceworld`` package (a JVM per instance).

Reward: the best score reached during the episode, in 0-1 (ScienceWorld scores are 0-100 and
drop to -100 when the task fails, e.g. after focusing on the wrong object; the best score keeps
the credit for subgoals reached before, as the original ETO did). Success: score 100.
"""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

from eval_agent.envs.base import BaseEnv, EnvCrashed
from eval_agent.experts.sciworld import GoldPathExpert
from eval_agent.plugin import EnvironmentSpec
from eval_agent.tasks.sciworld import SciWorldTask, generate_splits

logger = logging.getLogger(__name__)


class SciWorldEnv(BaseEnv):
    """Each episode runs in a fresh engine (JVM).

    ScienceWorld lists a room's objects in an order that changes every time a task is loaded
    into the same JVM, so an engine that played before would show the same task differently.
    A fresh engine per episode makes episodes reproducible whatever ran before; the next engine
    starts in the background while the current episode plays, hiding its ~1.3 s start (unless
    the runner says this instance plays no more: a JVM started for nothing costs the CPU that
    the episodes still in flight need).
    """

    @classmethod
    def same_observation(cls, replayed: str, recorded: str) -> bool:
        # The same room lists its objects in another order from one engine to the next (see the
        # class docstring; an expert engine loads its task differently too): same lines, any order.
        return sorted(replayed.strip().splitlines()) == sorted(recorded.strip().splitlines())

    def __init__(self, config: dict):
        super().__init__(config)
        self._executor = ThreadPoolExecutor(max_workers=1)
        self._next_engine: Optional[Future] = self._executor.submit(_start_engine)
        self.engine = None
        self.best_score = 0
        self.goal = ""
        self.expert: Optional[GoldPathExpert] = None

    def _reset(self, task: SciWorldTask) -> str:
        if self.engine is not None:
            _close_engine(self.engine)
        # Always started on the executor's thread: the order in which the engine lists a room's
        # objects depends on which thread created it (a start on this thread reordered them).
        self.engine = (self._next_engine or self._executor.submit(_start_engine)).result()
        if not _engine_alive(self.engine):  # the engine started ahead died while it waited
            _close_engine(self.engine)
            self.engine = self._executor.submit(_start_engine).result()
        self._next_engine = self._executor.submit(_start_engine) if self.plays_again else None
        self.max_steps = self.config["max_steps"][task.task_name]
        expert = bool(self.config.get("expert"))
        try:
            self.engine.load(task.task_name, task.variation, self.config.get("simplification", "easy"),
                             generateGoldPath=expert)
            _, info = self.engine.reset()
        except Exception as error:
            if not _engine_alive(self.engine):
                raise EnvCrashed(f"the ScienceWorld engine (JVM) died while loading the task: {error}") from None
            raise
        self.best_score = 0
        self.goal = task_description(info["taskDesc"])
        self.expert = GoldPathExpert(self.goal, self.engine.get_gold_action_sequence()) if expert else None
        if self.expert:  # the per-type step limits are for the policy; the expert's path may be longer
            self.max_steps = max(self.max_steps, self.expert.max_steps())
        return self.goal

    def _act(self, action: str) -> str:
        try:
            observation, _, completed, info = self.engine.step(action)
        except Exception as error:  # the engine rejects some inputs outright; never crash the run
            if not _engine_alive(self.engine):
                raise EnvCrashed(f"the ScienceWorld engine (JVM) died: {error}") from None
            logger.debug("scienceworld rejected %r: %s", action, error)
            return f"Observation: The action '{action}' could not be performed."
        score = info["score"]
        self.best_score = max(self.best_score, score)
        self.state.reward = max(0, self.best_score) / 100
        if completed or score >= 100:
            self.state.finish("success" if score >= 100 else "task_failed", success=score >= 100)
        return f"Observation: {observation.strip()}"

    def expert_reply(self) -> Optional[str]:
        """The gold path's next action (``eval_agent.experts.sciworld``)."""
        return self.expert.reply() if self.expert else None

    def close(self) -> None:
        for engine in (self.engine, self._next_engine.result() if self._next_engine else None):
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


# Each JVM lives for one episode, so the optimising JIT (C2) and the parallel collector cost more
# than they return: client JIT + serial GC gave 33-51% more episodes/min at 16 in flight with the
# same rewards (results/sciworld-evidence/pilots.md). Only ScienceWorld's own JVMs get them.
ENGINE_JAVA_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def _start_engine():
    import scienceworld.scienceworld as engine_module
    from py4j.java_gateway import launch_gateway

    # ScienceWorldEnv takes no JVM options; it calls the module's launch_gateway, so give it ours.
    engine_module.launch_gateway = functools.partial(launch_gateway, javaopts=list(ENGINE_JAVA_OPTIONS))
    # Our own step limit (per task type) governs; the engine's must never end episodes first.
    return engine_module.ScienceWorldEnv("", envStepLimit=100_000)


def _engine_alive(engine) -> bool:
    return engine._gateway.java_process.poll() is None  # the JVM that launch_gateway started


def _close_engine(engine) -> None:
    """Stop an engine's JVM once; its ``__del__`` would close again and hit a broken pipe."""
    try:
        engine.close()
    except Exception:  # noqa: BLE001 - an engine whose JVM died fails to close in several ways
        pass
    engine.close = lambda: None


SPEC = EnvironmentSpec("sciworld", SciWorldTask, SciWorldEnv, generate_splits, split_options=("lists_dir", "rules"))
