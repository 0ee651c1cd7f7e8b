"""What a round's preference pairs contrast, and whether DPO learned it.

    python -m eval_agent.pair_analysis --pairs data_pm/webshop_pm_eto_1.json \\
        [--before checkpoints/<round's policy> --after checkpoints/<DPO model>] [--output FILE.json]

For each pair: the first agent turn where the chosen and the rejected continuations differ, and
the kind of each side's action there (WebShop: search, click an item, an option, buy, a detail
tab, back/next/prev; other environments: the action's first word). With ``--before`` and
``--after``: each model, given the pair's prompt and the turns both sides share, replies greedily
at that turn (transformers, in this process, through the model's own chat template, as served),
and its action is compared with the chosen and the rejected one; the share of pairs where the
policy took the rejected action before and the chosen one after is what DPO fixed of what it was
shown. Printed as a table; ``--output`` keeps every pair's row.
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
    for i, (chosen, rejected) in enumerate(zip(pair["chosen"], pair["rejected"])):
        if chosen["value"].strip() != rejected["value"].strip():
            return i, _action(chosen) or "", _action(rejected) or ""
    return None


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


def greedy_actions(model_path: str, pairs: Sequence[dict], rows: Sequence[dict], max_new_tokens: int = 128) -> List[str]:
    """The model's greedy action at each pair's first divergent turn (the prompt and the shared turns given)."""
    import torch
    from transformers import AutoModelForCausalLM

    from eto.chat_format import load_tokenizer, prompt_text
    from eto.records import to_messages

    tokenizer = load_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    stop = [t for t in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")) if isinstance(t, int) and t >= 0]
    actions = []
    for pair, row in zip(pairs, rows):
        if row["turn"] is None:
            actions.append("")
            continue
        messages = to_messages(pair["prompt"] + pair["chosen"][: row["turn"]])
        ids = tokenizer(prompt_text(tokenizer, messages), add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop or None,
                                 pad_token_id=tokenizer.pad_token_id or (stop[0] if stop else 0))
        reply = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        actions.append(parse_action(reply.split("\nObservation:")[0]) or "")
    return actions


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
        for when, model in (("before", args.before), ("after", args.after)):
            for row, action in zip(rows, greedy_actions(model, pairs, rows, args.max_new_tokens)):
                row[when] = action
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
