"""`tcap-viz` command line: make-data, finetune, eval-model, scan, evaluate, anatomy, report, app."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from tcap_viz.benchmark.cases import RATES
from tcap_viz.data import ATTACKS, DEFAULT_TARGET, IMAGE_SIZE, QUESTION_TYPES, DatasetError
from tcap_viz.demo import BASE_MODEL


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"top_heads\": 4}'")
    return value


def cmd_make_data(args) -> None:
    from tcap_viz.data import make_synthetic_splits

    splits = make_synthetic_splits(args.out, args.n, args.n_test, args.attack, args.poison_rate, args.target,
                                   args.seed, args.image_size, args.attack_params, args.format,
                                   poison_question_type=args.poison_question_type)
    for name, path in vars(splits).items():
        if path is not None:
            print(f"{name}: {path}")


def cmd_finetune(args) -> None:
    from tcap_viz.data import load_dataset
    from tcap_viz.model.finetune import FULL_RECIPE, LORA_RECIPE, SCRATCH_RECIPE, finetune

    if args.from_scratch and (args.lora or args.base):
        sys.exit("error: --from-scratch trains a new model: it takes neither --base nor --lora")
    base = None if args.from_scratch else (args.base or BASE_MODEL)
    recipe = SCRATCH_RECIPE if args.from_scratch else (LORA_RECIPE if args.lora else FULL_RECIPE)
    recipe = recipe.with_overrides(steps=args.steps, seed=args.seed, learning_rate=args.learning_rate)
    out = finetune(load_dataset(args.data, args.allow_outside), args.out, recipe, base=base, device=args.device)
    if args.lora:
        print(f"adapter: {out}\nuse it with: --model {base} --adapter {out}")
    else:
        print(f"model: {out}")


def cmd_eval_model(args) -> None:
    from tcap_viz.data import load_dataset
    from tcap_viz.model.evaluate import answer_match_rate
    from tcap_viz.pipeline import load_model

    adapter = load_model(args.model, model_config(args))
    samples = list(load_dataset(args.data, args.allow_outside))[: args.limit]
    rate = answer_match_rate(adapter, samples, [s.response for s in samples])
    print(f"answers equal to the dataset's responses: {rate:.4f} ({len(samples)} samples)")


def model_config(args, **more):
    """ScanConfig from the model-loading options every model-using command shares."""
    from tcap_viz.pipeline import ScanConfig

    try:
        return ScanConfig(device=args.device, dtype=args.dtype, adapter=args.adapter, device_map=args.device_map,
                          trust_remote_code=args.trust_remote_code, allow_outside=args.allow_outside,
                          base_model=args.base_model, preset=getattr(args, "preset", "default"),
                          confirm=not getattr(args, "no_confirm", False), **more)
    except ValueError as err:  # an unknown --preset
        sys.exit(f"error: {err}")


def cmd_scan(args) -> None:
    from tcap_viz.pipeline import extract_shard, parse_shard, scan

    if args.shard:
        try:
            shard = parse_shard(args.shard)
        except ValueError as err:
            sys.exit(f"error: {err}")
        if args.shard == "auto" and args.device is None and "LOCAL_RANK" in os.environ:
            import torch

            if torch.cuda.is_available():  # one GPU per process under torchrun
                args.device = f"cuda:{os.environ['LOCAL_RANK']}"
        config = model_config(args, batch_size=args.batch_size)
        extract_shard(args.model, args.data, args.out, shard, config)
        print(f"shard {shard[0]}/{shard[1]} extracted into {args.out}; once every shard is done, the same "
              "command without --shard merges them and runs detection")
        return
    config = model_config(args, batch_size=args.batch_size, tcap=args.tcap, baseline=args.baseline)
    result = scan(args.model, args.data, args.out, config)
    table = result.samples
    skipped = (table["skipped"] != "").sum()
    print(f"run: {result.run.path}\nscanned {len(table) - skipped}, skipped {skipped}, "
          f"flagged {int(table['flagged'].fillna(False).astype(bool).sum())}, "
          f"selected heads {len(result.tcap.profiler_.selected_heads_)}")
    for sample_id, reason in list(result.extraction.skipped.items())[:10]:
        print(f"  skipped {sample_id}: {reason}")
    if result.confirmation is not None:
        from tcap_viz.anatomy import confirmation_summary

        print(confirmation_summary(result.confirmation).replace("**", ""))
    if result.metrics:
        print(format_metrics(result.metrics))


def format_metrics(metrics: dict) -> str:
    from tcap_viz.pipeline import DETECTOR_NAMES

    rows = [f"{'detector':<16}{'precision':>10}{'recall':>9}{'F1':>8}{'AUROC':>8}{'flagged':>9}"]
    for name, label in DETECTOR_NAMES.items():
        if name in metrics:
            m = metrics[name]
            rows.append(f"{label:<16}{m['precision']:>10.4f}{m['recall']:>9.4f}{m['f1']:>8.4f}"
                        f"{m['auroc']:>8.4f}{m['n_flagged']:>9d}")
    rows.append(f"(ground truth used for evaluation only; {metrics['scanned']} scanned, {metrics['skipped']} skipped)")
    return "\n".join(rows)


def cmd_evaluate(args) -> None:
    from tcap_viz.storage.run_dir import METRICS, RunDir

    run = RunDir(args.run)
    if not run.path.is_dir():
        sys.exit(f"error: {run.path} is not a folder; give the run folder that `tcap-viz scan --out` wrote")
    if not run.has(METRICS):
        sys.exit(f"{run.file(METRICS)} not found: the run's dataset has no 'poisoned' labels, "
                 "or the folder is not a run written by `tcap-viz scan`")
    print(format_metrics(run.load_json(METRICS)))


def cmd_anatomy(args) -> None:
    from tqdm import tqdm

    from tcap_viz.review.session import ReviewSession

    try:
        session = ReviewSession.from_run(args.run, device=args.device)
    except ValueError as err:
        sys.exit(f"error: {err}")
    bar = tqdm(desc="anatomy", unit="group", total=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    groups = session.anatomy(args.threshold, progress, per_group=args.per_group, grid=args.grid)
    bar.close()
    if args.json:
        from tcap_viz.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(groups, indent=1) + "\n")
        print(f"written: {args.json}")
    print(format_anatomy(groups))


def format_anatomy(groups: list[dict]) -> str:
    from tcap_viz.anatomy import NO_DONORS, group_line

    if not groups:
        return "nothing is flagged: no group to describe"
    lines = []
    for g in groups:
        heads = ", ".join(f"L{layer}H{head}" for layer, head in g["heads"]) or "none in common"
        lines += [f"{group_line(g['name'], g['size'], g['response'], g['outside'])}; heads {heads}",
                  f"  modality: {g['modality']['reading'] if g['modality'] else NO_DONORS}", f"  where: {g['where']}",
                  f"  who else: {g['carriers_line']}",
                  f"  (examined {len(g['examined'])} samples: {', '.join(g['examined'][:5])}"
                  f"{' ...' if len(g['examined']) > 5 else ''})"]
    return "\n".join(lines)


def cmd_report(args) -> None:
    from tcap_viz.benchmark import Benchmark

    variants = None
    if args.variants:
        try:
            variants = json.loads(args.variants.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            sys.exit(f"error: {args.variants}: {err}; give a JSON object of name -> make-data settings")
    try:
        bench = Benchmark(args.work, args.cases, args.seeds, variants, rates=args.rates, finetune=args.finetune,
                          steps=args.steps, n_train=args.n_train, n_test=args.n_test, base=args.base or BASE_MODEL,
                          results=args.results)
        if not args.render:
            bench.run(device=args.device, workers=args.workers, retrain=not args.no_retrain,
                      command=" ".join(["tcap-viz report", *map(shlex.quote, args.argv)]))
        if args.out:
            print(f"report: {bench.write(args.out)}")
        else:
            print(bench.report())
        if stale := bench.stale():
            print(f"{len(stale)} cached result(s) of an earlier detector left out of the report (listed at its end)",
                  file=sys.stderr)
    except ValueError as err:
        sys.exit(f"error: {err}")


def cmd_app(args) -> None:
    from tcap_viz.ui.app import launch

    try:
        launch(model=args.model, data=args.data, run=args.run, host=args.host, port=args.port,
               config=model_config(args), auth=args.auth)
    except ValueError as err:  # a malformed --auth
        sys.exit(f"error: {err}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tcap-viz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-data", help="generate a synthetic, partly poisoned dataset (train + test splits)",
                       description="Write a synthetic shapes dataset with a backdoor: a training split (part of it "
                                   "poisoned), a clean test split and a triggered test split, each a data file and "
                                   "its images. Attacks and their parameters: README, 'Attacks'.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="folder for the three splits (must not exist yet)")
    p.add_argument("--attack", default="badnet", choices=sorted(ATTACKS),
                   help="the trigger: image patch (badnet), blended noise (blend), sinusoid (sig), warp (wanet), "
                        "frequency (ftrojan), text (text_prefix, text_word), patch and/or text (dual_and, dual_or), or none "
                        "(a clean dataset)")
    p.add_argument("--poison-rate", type=float, default=0.1, help="share of the training samples poisoned")
    p.add_argument("--n", type=int, default=2000, help="training samples")
    p.add_argument("--n-test", type=int, default=500, help="samples in each test split")
    p.add_argument("--target", default=DEFAULT_TARGET, help="the attacker's response")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same dataset")
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE, help="image side in pixels")
    p.add_argument("--attack-params", type=_json_object, default=None,
                   help="the attack's parameters as a JSON object, e.g. '{\"alpha\": 0.2}' (default: the attack's "
                        "own, in tcap_viz/data/attacks.py)")
    p.add_argument("--poison-question-type", default=None, choices=list(QUESTION_TYPES),
                   help="poison only this question type, so that an ordinary answer as --target (e.g. blue on "
                        "colour questions) hides among the natural answers (default: every type)")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "json"], help="data file format")
    p.set_defaults(func=cmd_make_data)

    p = sub.add_parser("finetune", help="the fine-tuning service: adapt the shipped base model to a dataset "
                                        "(full, --lora, or --from-scratch)")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--base", default=None, help=f"the model to start from (default: the shipped base, {BASE_MODEL.name})")
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter (saved alone; load it with "
                                                       "--model BASE --adapter OUT) instead of every weight")
    p.add_argument("--from-scratch", action="store_true",
                   help="a new small model (the first testbed's: 64 px, 4 x 256 decoder), 1300 steps")
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps (default: the recipe's own, FULL_RECIPE, LORA_RECIPE or SCRATCH_RECIPE "
                        "in tcap_viz/model/finetune.py)")
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when available); float32 either way")
    add_data_arguments(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("eval-model", help="exact-match rate of a model's answers against a dataset's responses "
                                          "(clean accuracy on a clean test set, attack success on a triggered one)")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--limit", type=int, default=None)
    add_model_arguments(p)
    p.set_defaults(func=cmd_eval_model)

    p = sub.add_parser("scan", help="extract attention profiles, run TCAP and the BYE baseline, write a run folder")
    p.add_argument("--model", required=True, help="local folder or hub id")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="run folder (profiles are cached there)")
    p.add_argument("--batch-size", type=int, default=16)
    add_model_arguments(p)
    add_preset_argument(p)
    p.add_argument("--tcap", type=_json_object, default={}, help="TCAPDetector parameters as JSON (over the preset's)")
    p.add_argument("--baseline", type=_json_object, default={}, help="BYEDetector parameters as JSON")
    p.add_argument("--shard", default=None, help="i/n: extract only this share of the samples (one process per "
                                                 "GPU); 'auto' takes it from torchrun's RANK / WORLD_SIZE")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("evaluate", help="print a run's detection metrics (needs ground-truth labels)")
    p.add_argument("run", type=Path)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("anatomy", help="the flagged samples in groups: which modality carries each group's answer "
                                       "and where its trigger sits (cached in the run folder)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder that `tcap-viz scan` wrote (its model and data are reused)")
    p.add_argument("--threshold", type=float, default=None, help="posterior above which a sample is flagged "
                                                                 "(default: the run's)")
    p.add_argument("--per-group", type=int, default=12, help="samples of each group the model is asked about")
    p.add_argument("--grid", type=int, default=8, help="occlusion grid: the image is masked cell by cell")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: the run's)")
    p.add_argument("--json", type=Path, default=None, help="also write every number as JSON here")
    p.set_defaults(func=cmd_anatomy)

    p = sub.add_parser("report", help="the detection benchmark: make data, fine-tune, scan and score every attack "
                                      "(cached, resumable); print or write the report",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Each case is an attack variant at a poison rate (VARIANT-RATE, e.g. blend-5) or "
                                   "clean, with one seed: make-data (2000 training samples), a customer fine-tune "
                                   "of the shipped base, its clean accuracy and attack success, a scan with every "
                                   "detector, the ablation of the default's levers, and a retraining without what "
                                   "was flagged. Every step is cached under --work, so a second run resumes.")
    p.add_argument("--cases", nargs="+", default=None, help="cases to run (default: every variant at each of --rates, "
                                                            "and clean)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--rates", nargs="+", type=int, default=list(RATES),
                   help="poison rates in percent of the default cases (every variant at each, and clean)")
    p.add_argument("--variants", type=Path, default=None,
                   help="a JSON file of your own attacks, name -> make-data settings, e.g. "
                        "{\"faint_blend\": {\"attack\": \"blend\", \"attack_params\": {\"alpha\": 0.1}}} "
                        "(default: the testbed's)")
    p.add_argument("--finetune", default="lora", choices=["lora", "full"])
    p.add_argument("--base", default=None, help=f"the model customers fine-tune (default: the shipped base, "
                                                f"{BASE_MODEL.name})")
    p.add_argument("--steps", type=int, default=None, help="fine-tune steps (default: the recipe's own)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when available)")
    p.add_argument("--workers", type=int, default=1, help="cases run at once (on a GPU machine with many cores)")
    p.add_argument("--n-train", type=int, default=2000, help="training samples of each case")
    p.add_argument("--n-test", type=int, default=200, help="samples in each test split (clean, triggered)")
    p.add_argument("--no-retrain", action="store_true", help="skip the retraining without the flagged samples")
    p.add_argument("--render", action="store_true", help="only render the report from cached results")
    p.add_argument("--work", type=Path, default=Path("runs/report"), help="folder of the cached steps")
    p.add_argument("--results", type=Path, default=None,
                   help="folder of each case's numbers as JSON (default: WORK/results); commit it beside the report "
                        "and --render rewrites the report from a fresh clone")
    p.add_argument("--out", type=Path, default=None, help="write the markdown report here (default: print it)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("app", help="open the analyst app (same options as app.py)")
    add_app_arguments(p)
    p.set_defaults(func=cmd_app)
    return parser


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model folder or hub id (default: the embedded demo)")
    parser.add_argument("--data", default=None, type=Path, help="dataset file (default: the embedded demo)")
    parser.add_argument("--run", default=None, type=Path, help="run folder (default: one derived from model + data)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    add_model_arguments(parser)
    add_preset_argument(parser)
    parser.add_argument("--auth", default=None, help="USER:PASS, or a file of USER:PASS lines; the login name "
                                                     "becomes the reviewer name of decisions")


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default",
                        help="the detector's configuration: 'default' (this project's, with the base model's "
                             "plausibility vote when the scan knows the base), or 'paper' (METHOD.md's TCAP as "
                             "written, no vote; docs/METHOD_CHOICES.md)")
    parser.add_argument("--no-confirm", action="store_true",
                        help="keep EM's flags as they are, instead of confirming what the heads flag without the "
                             "plausibility vote by the trigger its groups hang on (asks the model again), joining "
                             "what only the vote flags by its answer and following a flagged ordinary answer to its "
                             "trigger's carriers (README, 'Confirmation')")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="(default: bfloat16 on a GPU, float32 on the CPU)")
    parser.add_argument("--adapter", default=None, help="a PEFT (LoRA) adapter folder or hub id, applied to --model")
    parser.add_argument("--device-map", default=None, help="'auto' spreads a model too large for one GPU over all")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run code from the model's repository (only for models you trust)")
    parser.add_argument("--base-model", default=None,
                        help="the model --model was fine-tuned from (a full fine-tune's base): the scan adds how "
                             "plausible the base finds each response (base_logprob); with --adapter it is "
                             "--model itself without the adapter, automatically")
    add_data_arguments(parser)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-outside", action="store_true",
                        help="read images outside the dataset file's folder ('..', absolute paths, links); "
                             "without it such samples are skipped (only for datasets you trust)")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]  # the command's options, as typed (the report quotes them)
    try:
        args.func(args)
    except (DatasetError, FileExistsError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
