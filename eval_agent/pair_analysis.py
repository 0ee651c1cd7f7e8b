"""What a round's preference pairs contrast, and whether DPO learned it.

    python -m eval_agent.pair_analysis --pairs data_pm/webshop_pm_eto_1.json \\
        [--before checkpoints/<round's policy> --after checkpoints/<DPO model>] [--output FILE.json]

For each pair: the first agent turn where the chosen and the rejected continuations differ, and
the kind of each side's action there (WebShop: search, click an item, an option, buy, a detail
tab, back/next/prev; other environments: the action's first word). With ``--before`` and
``--after``: each model, given the pair's prompt and the turns both sides share, replies greedily
at that turn through the model's own chat template, as served (in this process: vLLM where it
runs, else transformers; ``--engine``), and its action is compared with the chosen and the rejected
one; the share of pairs where the policy took the rejected action before and the chosen one after
is what DPO fixed of what it was shown. Printed as a table; ``--output`` keeps every pair's row.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from eval_agent.envs.base import parse_action

_DETAIL_TABS = {"description", "features", "reviews", "attributes"}
_NAVIGATION = {"back to search", "next >", "< prev", "< previous"}


def action_kind(action: Optional[str]) -> str:
    """search, item, option, buy, detail, navigate, or another action's first word (none: no action)."""
    if not action:
        return "none"
    text = action.strip()
    match = re.fullmatch(r"(\w+)\[(.*)\]", text, re.S)
    if not match:
        return text.split()[0].lower()
    verb, argument = match.group(1).lower(), match.group(2).strip().lower()
    if verb == "search":
        return "search"
    if verb != "click":
        return verb
    if argument == "buy now":
        return "buy"
    if argument in _DETAIL_TABS:
        return "detail"
    if argument in _NAVIGATION:
        return "navigate"
    if re.fullmatch(r"b0[0-9a-z]{8}", argument):
        return "item"
    return "option"


def _action(turn: Dict[str, str]) -> Optional[str]:
    return parse_action(turn["value"])


def first_divergence(pair: dict) -> Optional[Tuple[int, str, str]]:
    """(index of the first differing turn in the continuations, chosen action, rejected action);
    None when one side is a prefix of the other."""
    from eto.construct.preference import first_divergent_turn

    i = first_divergent_turn(pair)
    return None if i is None else (i, _action(pair["chosen"][i]) or "", _action(pair["rejected"][i]) or "")


def divergences(pairs: Sequence[dict]) -> List[dict]:
    rows = []
    for pair in pairs:
        found = first_divergence(pair)
        if found is None:
            rows.append({"id": pair["id"], "turn": None})
            continue
        turn, chosen, rejected = found
        rows.append({"id": pair["id"], "turn": turn, "chosen": chosen, "rejected": rejected,
                     "chosen_kind": action_kind(chosen), "rejected_kind": action_kind(rejected)})
    return rows


def greedy_actions(models: Sequence[str], pairs: Sequence[dict], rows: Sequence[dict], max_new_tokens: int = 128,
                   engine: str = "auto", batch_size: int = 8) -> List[List[str]]:
    """Each model's greedy action at each pair's first divergent turn (the prompt and the shared
    turns given), as served: the model's chat template, a reply cut at its end of turn or at
    "Observation:". vLLM (``engine`` auto, where it runs) answers every pair in one batch, its
    weights replaced by the next model's in the same engine; transformers in batches otherwise."""
    import torch
    from transformers import AutoModelForCausalLM

    from eto.chat_format import load_tokenizer, prompt_text, stop_tokens
    from eto.engines import resolve_engine
    from eto.records import to_messages
    from eval_agent.agents.local_agent import Sampling, TransformersGenerator, VLLMGenerator

    tokenizer = load_tokenizer(models[0])
    asked = [i for i, row in enumerate(rows) if row["turn"] is not None]
    prompts = [tokenizer(prompt_text(tokenizer, to_messages(pairs[i]["prompt"] + pairs[i]["chosen"][: rows[i]["turn"]])),
                         add_special_tokens=False).input_ids for i in asked]
    end_of_turn, stop_ids = stop_tokens(tokenizer)
    sampling = Sampling(max_new_tokens, 0.0, 1.0, [s for s in (end_of_turn, "\nObservation:") if s], stop_ids)
    engine, generator, answers = resolve_engine(engine), None, []
    for path in models:
        model = None if engine == "vllm" and generator is None else \
            AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        if engine == "vllm":
            if generator is None:
                generator = VLLMGenerator(path)
            else:
                generator.load_weights(model)
            replies = generator(prompts, sampling)
        else:
            generator = TransformersGenerator(model, tokenizer)
            replies = [r for k in range(0, len(prompts), batch_size) for r in generator(prompts[k: k + batch_size], sampling)]
        actions = [""] * len(rows)
        for i, reply in zip(asked, replies):
            actions[i] = parse_action(reply) or ""
        answers.append(actions)
    return answers


def _same(a: str, b: str) -> bool:
    return bool(a) and a.strip().lower() == b.strip().lower()


def summarize(rows: Sequence[dict]) -> Dict[str, object]:
    diverged = [r for r in rows if r["turn"] is not None]
    summary: Dict[str, object] = {"pairs": len(rows), "diverged": len(diverged),
                                  "kinds (chosen → rejected)": Counter(f"{r['chosen_kind']} → {r['rejected_kind']}"
                                                                      for r in diverged).most_common()}
    if diverged and "before" in diverged[0]:
        n = len(diverged)
        for when in ("before", "after"):
            summary[f"{when}: took the chosen action"] = sum(_same(r[when], r["chosen"]) for r in diverged) / n
            summary[f"{when}: took the rejected action"] = sum(_same(r[when], r["rejected"]) for r in diverged) / n
        moved = [r for r in diverged if _same(r["before"], r["rejected"])]
        summary["rejected before → chosen after"] = (sum(_same(r["after"], r["chosen"]) for r in moved) / len(moved)
                                                     if moved else None)
        summary["pairs whose rejected action the policy took before"] = len(moved)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pairs", required=True, help="preference pairs (construct_preference.py's output)")
    p.add_argument("--before", default=None, help="the round's policy (the model the pairs were explored with)")
    p.add_argument("--after", default=None, help="the model DPO trained on these pairs")
    p.add_argument("--max_new_tokens", type=int, default=128, help="reply length limit, as in evaluation")
    p.add_argument("--engine", default="auto", choices=("auto", "vllm", "hf"),
                   help="auto: vLLM where it runs (every pair in one batch), else transformers")
    p.add_argument("--output", default=None, help="write every pair's row and the summary here (JSON)")
    args = p.parse_args(argv)
    if bool(args.before) != bool(args.after):
        print("error: give both --before and --after, or neither", file=sys.stderr)
        return 2
    try:
        with open(args.pairs, encoding="utf-8") as f:
            pairs = json.load(f)
        if not isinstance(pairs, list) or not all(isinstance(x, dict) and {"id", "prompt", "chosen", "rejected"} <= set(x)
                                                  for x in pairs):
            raise ValueError("expected a JSON list of {id, prompt, chosen, rejected}")
    except (OSError, ValueError) as error:
        print(f"error: {args.pairs}: {error}", file=sys.stderr)
        return 2
    rows = divergences(pairs)
    if args.before:
        before, after = greedy_actions([args.before, args.after], pairs, rows, args.max_new_tokens, args.engine)
        for row, action_before, action_after in zip(rows, before, after):
            row["before"], row["after"] = action_before, action_after
    summary = summarize(rows)
    for key, value in summary.items():
        if isinstance(value, list):
            print(f"{key}:")
            for kinds, n in value:
                print(f"  {kinds}: {n}")
        else:
            print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    if args.output:
        from eto.io import write_json_atomic

        write_json_atomic(args.output, {"summary": summary, "pairs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
