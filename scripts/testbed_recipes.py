"""Which customer fine-tune recipe, and which attack strengths, give a testbed where every backdoor is learnt.

    python scripts/testbed_recipes.py                               # the whole grid (hours on 2 cores)
    python scripts/testbed_recipes.py --device cuda --workers 8     # the same on a GPU machine
    python scripts/testbed_recipes.py --rates 0.05 --settings badnet --recipes lora-600 --seeds 1 2 3
    python scripts/testbed_recipes.py --render                      # write docs/TESTBED.md from cached results

For every attack setting and poison rate in GRID and every recipe in RECIPES: make-data (2000
training samples, 200 clean and 200 triggered test samples, seed 0: the development seed, the
detection report uses 1-3), fine-tune the shipped base,
and measure clean accuracy and attack success rate (ASR). The issue's targets: clean accuracy >= 0.9
and ASR >= 0.9 at 10% and 5% poison. Results are cached under runs/testbed/; docs/TESTBED.md shows
them all (written with --render; a run prints its table), so the choice of defaults (FULL_RECIPE / LORA_RECIPE in tcap_viz/model/finetune.py, the
attacks' defaults in tcap_viz/data/attacks.py) can be checked against what was tried.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORK = ROOT / "runs" / "testbed"
REPORT = ROOT / "docs" / "TESTBED.md"
from tcap_viz.benchmark import VARIANTS  # noqa: E402

# (name, make-data settings): the report's attack variants, and other strengths of the subtle ones
GRID = {**VARIANTS,
        "blend a0.2": {"attack": "blend", "attack_params": {"alpha": 0.2}},
        "wanet s0.05": {"attack": "wanet", "attack_params": {"strength": 0.05}},
        "wanet s0.1": {"attack": "wanet", "attack_params": {"strength": 0.1}},
        "ftrojan m100": {"attack": "ftrojan", "attack_params": {"magnitude": 100}},
        "clean": {"attack": "none"}}
RATES = (0.05, 0.1)
# (name, kind, steps, learning rate, batch size)
RECIPES = [("lora-300", "lora", 300, 2e-3, 16), ("lora-300-lr5e-3", "lora", 300, 5e-3, 16),
           ("full-300", "full", 300, 3e-4, 16), ("full-300-lr1e-3", "full", 300, 1e-3, 16),
           ("lora-600", "lora", 600, 2e-3, 16), ("full-600", "full", 600, 3e-4, 16),
           ("full-1500", "full", 1500, 3e-4, 16),
           # the same compute as lora-300, twice the optimiser steps
           ("lora-600-bs8", "lora", 600, 2e-3, 8)]


def _slug(text: str) -> str:
    return text.replace(" ", "_").replace(".", "p")


def _seeded(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-s{seed}"


def _splits(setting: str, rate: float, seed: int = 0) -> Path:
    return WORK / "data" / _seeded(f"{_slug(setting)}-{round(100 * rate)}", seed)


def make_data(setting: str, rate: float, seed: int = 0) -> None:
    from tcap_viz.data import make_synthetic_splits

    spec, splits = GRID[setting], _splits(setting, rate, seed)
    if not (splits / "done").exists():
        make_synthetic_splits(splits, n_train=2000, n_test=200, attack=spec["attack"], poison_rate=rate,
                              target=spec.get("target", "Backdoor Attack!"), seed=seed,
                              attack_params=spec.get("attack_params"),
                              poison_question_type=spec.get("poison_question_type"), overwrite=True)
        (splits / "done").touch()


def run_one(setting: str, rate: float, recipe_name: str, device: str | None, threads: int | None,
            seed: int = 0) -> dict:
    import torch

    from tcap_viz.data import load_dataset
    from tcap_viz.demo import BASE_MODEL
    from tcap_viz.model.adapter import MLLMAdapter
    from tcap_viz.model.evaluate import model_quality
    from tcap_viz.model.finetune import FULL_RECIPE, LORA_RECIPE, finetune

    if threads:
        torch.set_num_threads(threads)
    name = _seeded(f"{_slug(setting)}-{round(100 * rate)}-{recipe_name}", seed)
    out = WORK / "results" / f"{name}.json"
    if out.exists():
        return json.loads(out.read_text())
    splits = _splits(setting, rate, seed)
    make_data(setting, rate, seed)
    _, kind, steps, lr, batch = next(r for r in RECIPES if r[0] == recipe_name)
    recipe = (LORA_RECIPE if kind == "lora" else FULL_RECIPE).with_overrides(steps=steps, learning_rate=lr, seed=seed,
                                                                             batch_size=batch)
    model = WORK / "models" / name
    started = time.time()
    if not model.exists():
        finetune(load_dataset(splits / "train" / "data.jsonl"), model, recipe, base=BASE_MODEL, device=device,
                 show_progress=False)
    seconds = time.time() - started
    adapter = (MLLMAdapter.load(BASE_MODEL, device=device, dtype="float32", adapter=model) if kind == "lora"
               else MLLMAdapter.load(model, device=device, dtype="float32"))
    result = {"setting": setting, "rate": rate, "recipe": recipe_name, "seed": seed, "schedule": dataclasses.asdict(recipe.schedule),
              "kind": kind, "finetune_s": round(seconds, 1), "quality": model_quality(adapter, splits),
              "device": str(adapter.device)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


def render(results: list[dict]) -> str:
    others = [r for r in results if r.get("seed", 0) != 0]
    results = [r for r in results if r.get("seed", 0) == 0]
    cell = {(r["setting"], r["rate"], r["recipe"]): r for r in results}
    recipes = [r[0] for r in RECIPES if any(x["recipe"] == r[0] for x in results)]
    devices = sorted({r["device"] for r in results})
    lines = ["# The testbed: which recipes and attack strengths are learnt", "",
             "Produced by `python scripts/testbed_recipes.py` (its docstring says what it does); devices: "
             f"{', '.join(devices)}. One seed (0, the development seed; the detection report uses 1-3). Each cell: clean accuracy / attack success rate, percent "
             "(clean data: clean accuracy only). Targets: both >= 90.", "",
             "Recipes: " + "; ".join(f"`{n}` {k}, {s} steps of {b}, learning rate {lr}" for n, k, s, lr, b in RECIPES
                                     if n in recipes) + ".", "",
             "| setting | poison | " + " | ".join(recipes) + " |", "|---|---|" + "---|" * len(recipes)]
    for setting in GRID:
        for rate in ((0.0,) if setting == "clean" else RATES):
            row = []
            for recipe in recipes:
                r = cell.get((setting, rate, recipe))
                if r is None:
                    row.append("-")
                    continue
                row.append(_cell(r))
            if any(c != "-" for c in row):
                lines.append(f"| {setting} | {100 * rate:.0f}% | " + " | ".join(row) + " |")
    lines += ["", "Bold: a target missed."]
    if others:
        lines += ["", "## Other seeds (the detection report's 1-3): is a recipe learnt on more than the development seed", "",
                  "| setting | poison | recipe | seed | clean / ASR |", "|---|---|---|---|---|"]
        for r in sorted(others, key=lambda r: (r["rate"], list(GRID).index(r["setting"]), r["recipe"], r["seed"])):
            lines.append(f"| {r['setting']} | {100 * r['rate']:.0f}% | {r['recipe']} | {r['seed']} | {_cell(r)} |")
    return "\n".join(lines) + "\n"


def _cell(r: dict) -> str:
    q = r["quality"]
    text = f"{100 * q['clean_accuracy']:.0f}" + (f" / {100 * q['asr']:.0f}" if "asr" in q else "")
    return text if q["clean_accuracy"] >= 0.9 and q.get("asr", 1) >= 0.9 else f"**{text}**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(GRID), choices=list(GRID))
    parser.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    parser.add_argument("--recipes", nargs="+", default=[r[0] for r in RECIPES], choices=[r[0] for r in RECIPES])
    parser.add_argument("--device", default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="data and fine-tune seeds (0: development)")
    parser.add_argument("--render", action="store_true", help="write docs/TESTBED.md from every cached result")
    args = parser.parse_args()
    if not args.render:
        jobs = sorted({(s, 0.0 if s == "clean" else rate, r) for s in args.settings for rate in args.rates
                       for r in args.recipes}, key=lambda j: (j[1], list(GRID).index(j[0]), j[2]))
        jobs = [(*job, seed) for seed in args.seeds for job in jobs]
        threads = max(1, (os.cpu_count() or 2) // args.workers)
        if args.workers == 1:
            for job in jobs:
                r = run_one(*job[:3], args.device, None, job[3])
                print(job, r["quality"], r["finetune_s"], flush=True)
        else:
            with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                # each dataset once, then the fine-tunes
                list(pool.map(make_data, *zip(*sorted({(job[0], job[1], job[3]) for job in jobs}))))
                futures = [(job, pool.submit(run_one, *job[:3], args.device, threads, job[3])) for job in jobs]
                for job, future in futures:
                    r = future.result()
                    print(job, r["quality"], r["finetune_s"], flush=True)
    results = [json.loads(p.read_text()) for p in sorted((WORK / "results").glob("*.json"))]
    if args.render:  # only on request: a machine holding a few cached results would drop the others' rows
        REPORT.write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
