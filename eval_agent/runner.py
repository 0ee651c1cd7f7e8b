"""Play tasks with an agent, save one file per episode, summarise.

Episode files (``<task_id>.json``) keep the original ETO layout: ``meta`` (steps, reward,
finished, success, terminate_reason, error, ...) and ``conversations`` (``from``/``value`` turns,
the full dialogue the model saw, in-context example included; ``meta.task_turn`` is the index of
the task's own turn). Files are written atomically. An episode whose file exists with no error is
done and is skipped on reruns; an episode that ended with an agent error is recorded (never as a
success) and is played again on the next run.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Dict, List, Optional, Sequence

from tqdm import tqdm

from eval_agent.agents.base import AgentError, EndEpisode
from eval_agent.envs.base import BaseEnv, EnvCrashed
from eval_agent.prompt import build_messages
from eval_agent.tasks.base import Task
from eto.io import read_json_or_none, write_json_atomic
from eto.records import is_finished, make_episode, to_turns

logger = logging.getLogger(__name__)

SUMMARY_FILE = "_summary.json"


class RunAborted(RuntimeError):
    """Too many episodes in a row failed because the agent could not answer."""


class EpisodeStore:
    """The episode files of one experiment folder."""

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def path(self, task_id: str) -> str:
        return os.path.join(self.folder, f"{task_id}.json")

    def load(self, task_id: str) -> Optional[dict]:
        """The saved episode, or None if there is none (or it is unreadable)."""
        record = read_json_or_none(self.path(task_id))
        return record if isinstance(record, dict) and "meta" in record else None

    def save(self, task_id: str, record: dict) -> None:
        write_json_atomic(self.path(task_id), record)


SAMPLE_FOLDER = "sample_{}"  # sample k of a multi-sample run (eval_agent.results reads them back)


def sample_stores(store: EpisodeStore, samples: int) -> List[EpisodeStore]:
    """Where the episodes of ``samples`` plays per task go: the folder itself for one, else one
    complete episode folder per sample (``sample_1`` ... ``sample_N``), each readable on its own."""
    if samples < 1:
        raise ValueError("the number of samples per task must be at least 1")
    if samples == 1:
        return [store]
    return [EpisodeStore(os.path.join(store.folder, SAMPLE_FOLDER.format(k))) for k in range(1, samples + 1)]


def run_episode(task: Task, env: BaseEnv, agent, env_name: str, num_examples: int,
                on_turn: Optional[Callable[[str, str, str], None]] = None, prompts: str = "ours",
                prefix: Optional[Sequence[str]] = None) -> dict:
    """Play one task to its end; returns the episode record. ``prefix``: replies (an expert's)
    played first in the environment, as if the agent had given them; the agent plays on from
    there (step-level exploration, ``eval_agent.prefixes``). The record keeps them as turns and
    says how many were played in ``meta.prefix_steps``."""
    started = time.perf_counter()
    timing: Dict[str, float] = defaultdict(float)
    messages, task_turn = build_messages(env_name, env.reset(task), num_examples, prompts)
    timing["env_s"] += time.perf_counter() - started
    if on_turn:
        on_turn(task.task_id, "user", messages[task_turn]["content"])
    state = env.state
    rewards: List[float] = []
    replies, replayed = iter(prefix or ()), 0
    while not state.finished:
        text = next(replies, None)
        if text is not None:
            replayed += 1
        else:
            try:
                reply = agent.generate(messages)
            except EndEpisode as end:
                state.finish(end.reason)
                break
            except AgentError as error:
                state.error = str(error)
                state.finish("agent_error")
                break
            for phase, seconds in reply.timing.items():
                timing[phase] += seconds
            text = reply.text
        messages.append({"role": "assistant", "content": text})
        step_start = time.perf_counter()
        observation, state = env.step(text)
        timing["env_s"] += time.perf_counter() - step_start
        rewards.append(state.reward)
        messages.append({"role": "user", "content": observation})
        if on_turn:
            on_turn(task.task_id, "assistant", text)
            on_turn(task.task_id, "user", observation)
    timing["total_s"] = time.perf_counter() - started
    episode = make_episode(task.task_id, task.to_dict(), steps=state.steps, reward=state.reward,
                           finished=state.finished, success=state.success, terminate_reason=state.terminate_reason,
                           error=state.error, task_turn=task_turn, timing=timing, conversations=to_turns(messages),
                           reward_by_step=rewards)
    if prefix is not None:
        episode["meta"]["prefix_steps"] = replayed  # fewer than given if the episode ended first
    return episode


class EnvPool:
    """Up to ``size`` environment instances, created on demand and reused across episodes."""

    def __init__(self, make_env: Callable[[], BaseEnv], size: int):
        self._make_env, self._size = make_env, size
        self._idle: "queue.Queue[BaseEnv]" = queue.Queue()
        self._all: List[BaseEnv] = []
        self._lock = threading.Lock()

    def acquire(self) -> BaseEnv:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                if len(self._all) < self._size:
                    env = self._make_env()
                    self._all.append(env)
                    return env
            return self._idle.get()

    def release(self, env: BaseEnv) -> None:
        self._idle.put(env)

    def discard(self, env: BaseEnv) -> None:
        """Drop a broken env; the next ``acquire`` may create a fresh one in its place."""
        with self._lock:
            self._all.remove(env)
        try:
            env.close()
        except Exception:  # noqa: BLE001 - it is broken already
            logger.debug("closing a crashed env failed", exc_info=True)

    def close(self) -> None:
        for env in self._all:
            env.close()


def check_same_task(record: Optional[dict], task: Task, store: EpisodeStore) -> None:
    """A saved episode is reused only for the task it was played on: after the task's definition
    changed (a regenerated WebShop catalog gives goal 5 another product), resuming would mix
    episodes of two task sets. Stop instead, and leave the old episode where it is."""
    played = (record or {}).get("meta", {}).get("task")
    if isinstance(played, dict) and played != task.to_dict():
        raise ValueError(f"{store.path(task.task_id)} was played on another definition of task {task.task_id} "
                         f"({played} here, {task.to_dict()} now: the data changed); move that folder "
                         "away or choose another output folder")


def run_tasks(tasks: Sequence[Task], make_env: Callable[[], BaseEnv], agent, store: EpisodeStore, *,
              env_name: str, num_examples: int = 1, concurrency: int = 1, max_consecutive_errors: int = 5,
              on_turn=None, progress_desc: str = "episodes", debug: bool = False,
              override: bool = False, prompts: str = "ours", samples: int = 1,
              prefixes: Optional[Dict[str, Sequence[str]]] = None) -> List[dict]:
    """Play every task not done yet ``samples`` times (see ``sample_stores``), ``concurrency``
    episodes at a time; returns the new records. ``prefixes``: task id -> replies to play before
    the agent takes over (see ``run_episode``)."""
    jobs = [(task, s) for s in sample_stores(store, samples) for task in tasks]
    saved = {} if override else {(t.task_id, s.folder): s.load(t.task_id) for t, s in jobs}
    for task, s in jobs:
        check_same_task(saved.get((task.task_id, s.folder)), task, s)
    done = [r for r in saved.values() if is_finished(r)]
    pending = [(t, s) for t, s in jobs if not is_finished(saved.get((t.task_id, s.folder)))]
    done_rewards = [r["meta"]["reward"] for r in done]
    pool = EnvPool(make_env, concurrency)
    abort = threading.Event()
    consecutive_errors, last_error, new_records, aborted = 0, "", [], ""

    started = itertools.count(1)

    def play(task: Task) -> Optional[dict]:
        if abort.is_set():
            return None
        plays_again = len(pending) - next(started) >= concurrency
        for attempt in (1, 2):
            env = pool.acquire()
            # Fewer episodes left to start than envs: this one will most likely not be reused.
            env.plays_again = plays_again
            try:
                record = run_episode(task, env, agent.bind(env), env_name, num_examples, on_turn, prompts,
                                     None if prefixes is None else prefixes[task.task_id])
            except EnvCrashed as crash:
                pool.discard(env)
                if attempt == 2:
                    raise
                tqdm.write(f"[{task.task_id}] {crash}; replaying the episode in a fresh environment")
                continue
            except BaseException:
                pool.release(env)
                raise
            pool.release(env)
            return record

    bar = tqdm(total=len(pending), desc=progress_desc, unit="ep", dynamic_ncols=True)
    executor = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures = {executor.submit(play, task): (task, sample_store) for task, sample_store in pending}
        for future in as_completed(futures):
            task, sample_store = futures[future]
            record = future.result() if debug else _result_or_error(future, task)
            if record is None:
                continue
            try:
                sample_store.save(task.task_id, record)
            except OSError as error:  # a full disk: stop, keeping every file already written whole
                aborted = f"cannot save episode {task.task_id}: {error}"
                abort.set()
                for f in futures:
                    f.cancel()
                break
            new_records.append(record)
            error = record["meta"]["error"]
            consecutive_errors = consecutive_errors + 1 if error else 0
            last_error = error or last_error
            if error is None:
                done_rewards.append(record["meta"]["reward"])
            if consecutive_errors >= max_consecutive_errors and not abort.is_set():
                aborted = f"{consecutive_errors} episodes in a row failed; last error: {last_error}"
                abort.set()
                for f in futures:
                    f.cancel()
            bar.update(1)
            if done_rewards:
                bar.set_postfix(avg_reward=f"{sum(done_rewards) / len(done_rewards):.3f}", errors=sum(
                    1 for r in new_records if r["meta"]["error"]))
    except KeyboardInterrupt:
        # Episodes in flight are dropped (they replay on the next run); saved ones are complete.
        abort.set()
        executor.shutdown(wait=False, cancel_futures=True)
        bar.close()
        raise
    executor.shutdown()
    bar.close()
    pool.close()
    if abort.is_set():
        raise RunAborted(aborted)
    return new_records


def _result_or_error(future, task: Task) -> Optional[dict]:
    """An unexpected crash inside one episode is recorded as that episode's error."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - one bad episode must not end the run
        return make_episode(task.task_id, task.to_dict(), steps=0, reward=0.0, finished=False, success=False,
                            terminate_reason="crash", error=f"{type(error).__name__}: {error}", task_turn=None,
                            timing=None, conversations=[])


def summarize(tasks: Sequence[Task], store: EpisodeStore, group_of: Callable[[Task], str]) -> dict:
    """Averages over the finished (error-free) episodes of ``tasks``, overall and by group."""
    def stats(records: List[dict]) -> dict:
        n = len(records)
        return {
            "n": n,
            "average_reward": round(sum(r["reward"] for r in records) / n, 4) if n else 0.0,
            "success_rate": round(sum(bool(r["success"]) for r in records) / n, 4) if n else 0.0,
            "average_steps": round(sum(r["steps"] for r in records) / n, 2) if n else 0.0,
        }

    metas, groups, missing, errors = [], defaultdict(list), 0, 0
    for task in tasks:
        record = store.load(task.task_id)
        if record is None:
            missing += 1
        elif record["meta"].get("error") is not None:
            errors += 1
        else:
            metas.append(record["meta"])
            groups[group_of(task)].append(record["meta"])
    summary = stats(metas)
    summary.update({"n_tasks": len(tasks), "n_missing": missing, "n_errors": errors,
                    "by_group": {g: stats(groups[g]) for g in sorted(groups)}})
    write_json_atomic(os.path.join(store.folder, SUMMARY_FILE), summary)
    return summary
