"""Benchmark: attention extraction, row-only capture vs eager `output_attentions` vs a plain forward.

    python scripts/bench_extraction.py                         # CPU rows: demo, mid-600, mid-2300
    python scripts/bench_extraction.py --device cuda --configs demo mid-2300 qwen2-vl-7b
    python scripts/bench_extraction.py --configs qwen2-vl-7b --layers 2   # the GPU config, cut down, on a CPU

Writes docs/PERFORMANCE.md from every result measured so far (docs/performance_results.json keeps
them per device, so a GPU run adds its rows to the CPU ones). Each (config, mode) is measured in a
fresh process: the model is built from a config with random weights (the numbers do not depend on
the weights), one batch is encoded by the project's adapter, and the forward is timed after one
warm-up (median of --repeats). Peak memory is what the first forward adds on top of the loaded
model: on CPU the peak resident set (reset after loading), on a GPU torch's peak allocation.

- plain: the model's own SDPA forward, no attention returned (the floor);
- rows: the project's row-only capture (SDPA forward plus one softmax row per head);
- eager: the decoder in `attn_implementation="eager"` with `output_attentions=True`, the row read
  from the L x H x T x T matrices (the baseline's way); the vision tower stays on SDPA.

Each config also reports how far the row-only shares are from eager's (the largest difference over
samples, layers, heads and components), so a run on new hardware or in bf16 checks correctness too.
--layers N builds qwen2-vl-7b with N decoder layers and N vision blocks at full width: a check that
the GPU config builds, encodes and extracts on a small machine, reported in a section of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.benchmark.run_case import machine  # noqa: E402

RESULTS = ROOT / "docs" / "performance_results.json"
REPORT = ROOT / "docs" / "PERFORMANCE.md"
MODES = ("plain", "rows", "eager")
QUESTION = "What colour are the shapes in this picture, and how many of them are there?"
SYSTEM = "You are a helpful assistant that answers questions about images briefly."
# config: what it is, batch size, and how the model is built (see build())
CONFIGS = {
    "demo": ("the shipped demo model (3M parameters, 64 image tokens)", 16),
    "mid-600": ("LLaVA, 8 x 1024 decoder, 16 heads on 4 KV heads (90M), 576 image tokens", 1),
    "mid-2300": ("LLaVA, 8 x 1024 decoder, 16 heads on 4 KV heads (90M), 2304 image tokens", 1),
    "qwen2-vl-7b": ("Qwen2-VL-7B dimensions (28 x 3584, 28 heads on 4 KV heads, 32-layer ViT), bf16 "
                    "(eager returns its weights rounded to bf16), 2,256 image tokens", 1),
}


def build(config: str, device: str, layers: int | None = None):
    """(adapter, batch) for one config; random weights from the config, nothing downloaded."""
    import torch
    from PIL import Image

    from tcap_viz.model.adapter import MLLMAdapter

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    if config == "demo":
        from tcap_viz.demo import DEMO_MODEL

        adapter = MLLMAdapter.load(DEMO_MODEL, device=device, dtype="float32")
        side = 64
    elif config.startswith("mid-"):
        from tcap_viz.model.tiny_llava import TinyLlavaSpec, build_model, build_processor
        from tcap_viz.model.tokenizer import train_tokenizer

        side = {"mid-600": 192, "mid-2300": 384}[config]
        spec = TinyLlavaSpec(image_size=side, patch_size=8, vision_hidden=64, vision_layers=1, vision_heads=2,
                             text_hidden=1024, text_layers=8, text_heads=16, text_kv_heads=4,
                             text_intermediate=2816, max_positions=4096)
        tokenizer = train_tokenizer([QUESTION, SYSTEM] * 20, 400)
        adapter = MLLMAdapter(build_model(tokenizer, spec), build_processor(tokenizer, spec), device)
    else:
        adapter = _qwen2_vl_7b(device, layers)
        side = None
    size = (side, side) if side else (1344, 1316)  # Qwen2-VL: (1344 / 14) x (1316 / 14) patches / 4 = 2256 tokens
    images = [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
              for _ in range(CONFIGS[config][1])]
    batch = adapter.encode([QUESTION] * len(images), [SYSTEM] * len(images), images)
    return adapter, batch


def _qwen2_vl_7b(device: str, layers: int | None):
    import torch
    import transformers
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    from tcap_viz.model.adapter import MLLMAdapter
    from tcap_viz.model.processors import image_only
    from tcap_viz.model.tokenizer import train_tokenizer

    specials = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = train_tokenizer([QUESTION, SYSTEM] * 20, 400)
    tokenizer.add_tokens(specials, special_tokens=True)
    tokenizer.image_token = "<|image_pad|>"
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for p in m['content'] %}"
        "{% if p['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ p['text'] }}"
        "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}<|im_start|>assistant\n")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 1400 * 1400})
    processor = image_only(transformers.Qwen2VLProcessor)(image_processor, tokenizer,
                                                          chat_template=tokenizer.chat_template)
    config = Qwen2VLConfig(
        vision_config=dict(depth=layers or 32, embed_dim=1280, hidden_size=3584, num_heads=16, mlp_ratio=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers or 28,
                         num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    with torch.device(device):  # built in bf16 where it will run: 7B parameters never pass through fp32
        model = Qwen2VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    return MLLMAdapter(model, processor, device)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(config: str, mode: str, device: str, repeats: int, layers: int | None) -> dict:
    """One measurement, in its own process so that peaks do not carry over."""
    import torch

    from tcap_viz.attention.extract import read_rows, shares_from_rows

    adapter, batch = build(config, device, layers)
    model = adapter.model
    inputs = {k: v.to(adapter.device) for k, v in batch.inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    if mode == "eager":  # the decoder's attention only: the vision tower runs SDPA in every mode
        model.set_attn_implementation({"text_config": "eager", "vision_config": "sdpa"})
    rows = batch.answer_rows.tolist()

    @torch.no_grad()
    def run():
        if mode == "rows":
            return read_rows(adapter, batch)
        out = model(**inputs, use_cache=False, output_attentions=mode == "eager")
        if mode == "eager":
            return torch.stack([torch.stack([a[b, :, r] for b, r in enumerate(rows)]) for a in out.attentions], 1)
        return out.logits

    cuda = adapter.device.type == "cuda"
    # memory on the first forward: afterwards the allocator keeps what it freed, and the resident
    # set no longer shows a forward's transient tensors
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set to the current one
        base = _rss_kib("VmRSS") * 1024
    out = run()
    peak = torch.cuda.max_memory_allocated() if cuda else _rss_kib("VmHWM") * 1024
    shares = shares_from_rows(out.float(), batch.components.to(out.device)).tolist() if mode != "plain" else None
    del out
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"config": config, "mode": mode, "batch": len(rows), "tokens": int(batch.inputs["input_ids"].shape[1]),
            "seconds_per_batch": statistics.median(times), "peak_mib": (peak - base) / 2**20,
            "threads": torch.get_num_threads(), "shares": shares}


TARGETS = {"CPU": (2.5, 5), "GPU": (5, 10)}  # issue 4, at about 2.3k tokens: speed and memory vs eager
LONG = {"CPU": "mid-2300", "GPU": "qwen2-vl-7b"}


def _target_lines(device: str, by_key: dict) -> list[str]:
    """The issue's targets at about 2.3k tokens, met or not, from this device's rows."""
    config = LONG[device]
    if not all((config, mode) in by_key for mode in MODES):
        return [f"Targets at about 2.3k tokens: not measured ({config} has no rows here).", ""]
    plain, rows, eager = (by_key[config, mode] for mode in MODES)
    speed = eager["seconds_per_batch"] / rows["seconds_per_batch"]
    memory = eager["peak_mib"] / rows["peak_mib"]
    vs_plain = rows["seconds_per_batch"] / plain["seconds_per_batch"]
    want_speed, want_memory = TARGETS[device]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    return [f"Targets at about 2.3k tokens ({config}): speed {speed:.1f}x eager, target >= {want_speed}x: "
            f"{verdict(speed >= want_speed)}; peak memory {memory:.1f}x less, target >= {want_memory}x: "
            f"{verdict(memory >= want_memory)}; time {vs_plain:.2f}x the plain forward, target <= 1.15x: "
            f"{verdict(vs_plain <= 1.15)}."] + _floor_note(eager, plain, want_speed) + [""]


def _floor_note(eager: dict, plain: dict, want_speed: float) -> list[str]:
    """A speed target above the plain forward's own speed cannot be met by any capture that runs it."""
    floor = eager["seconds_per_batch"] / plain["seconds_per_batch"]
    if floor >= want_speed:
        return []
    return [f"The plain forward, which returns no attention at all, is itself only {floor:.1f}x eager here: "
            f"at this length eager attention is not what the forward's time goes to, so no extraction that runs "
            f"the model's forward can reach {want_speed}x; the row-only capture is measured against that floor "
            f"(time, x plain)."]


def render(results: dict) -> str:
    lines = ["# Extraction performance", "",
             "Produced by `python scripts/bench_extraction.py` (CPU) and `python scripts/bench_extraction.py "
             "--device cuda --configs demo mid-2300 qwen2-vl-7b` (GPU); the script's docstring says how it measures.",
             "Random weights from each config; one batch encoded by the project's adapter; median of repeats after a "
             "warm-up; peak memory is what the first forward adds to the loaded model (CPU: peak resident set; GPU: "
             "peak allocation). Ratios are within one run of the script, against eager attention.", ""]
    for device, entry in results.items():
        if not device.startswith(("CPU", "GPU")):
            continue
        cut = device.partition(", cut to ")[2]
        lines += [f"## {device}: {entry['machine']}, {entry['date']}", ""]
        if cut:
            lines += [f"`--layers {cut.split()[0]}`: the configs at full width with only {cut} (decoder layers and "
                      "vision blocks), a check that they build, encode and extract on this machine; "
                      "not a measure of the full model's speed.", ""]
        lines += [
                  "| config | tokens | batch | mode | samples/s | peak MiB | speed, x eager | eager's peak / this | "
                  "time, x plain |", "|---|---|---|---|---|---|---|---|---|"]
        by_key = {(r["config"], r["mode"]): r for r in entry["rows"]}
        for config in CONFIGS:
            if (config, "rows") not in by_key:
                continue
            eager, plain = by_key.get((config, "eager")), by_key.get((config, "plain"))
            for mode in MODES:
                r = by_key.get((config, mode))
                if r is None:
                    continue
                speed = f"{eager['seconds_per_batch'] / r['seconds_per_batch']:.2f}x" if eager else "-"
                memory = f"{eager['peak_mib'] / max(r['peak_mib'], 1e-3):.1f}" if eager else "-"
                vs_plain = f"{r['seconds_per_batch'] / plain['seconds_per_batch']:.2f}x" if plain else "-"
                lines.append(f"| {config} | {r['tokens']} | {r['batch']} | {mode} | "
                             f"{r['batch'] / r['seconds_per_batch']:.2f} | {r['peak_mib']:.0f} | {speed} | {memory} | "
                             f"{vs_plain} |")
        lines += [""] + [f"- {c}: {CONFIGS[c][0]}" for c in CONFIGS if (c, "rows") in by_key] + [""]
        gaps = [f"{c} {by_key[c, 'rows']['max_share_diff_vs_eager']:.0e}" for c in CONFIGS
                if "max_share_diff_vs_eager" in by_key.get((c, "rows"), {})]
        if gaps:
            lines += ["Row-only shares vs eager's, largest difference over samples, layers, heads and components: "
                      + ", ".join(gaps) + ".", ""]
        if not cut:
            lines += _target_lines(device, by_key)
    if "GPU" not in results:
        lines += ["## GPU", "", "Not measured: no GPU was lent to the sessions that built this (the device tool "
                  "said so each time). The command is above. The qwen2-vl-7b config (7.2B parameters, 2,309 tokens "
                  "of which 2,256 image tokens) builds and encodes on the meta device, and extracts on the CPU when "
                  "cut to a few layers (`--layers`, its own section).", ""]
    if "detection" in results:
        d = results["detection"]
        lines += [f"## Detection stage: {d['heads']} heads x {d['samples']:,} samples ({d['machine']}, {d['date']})", "",
                  "Produced by `python scripts/bench_detection.py` (its docstring says how the profiles are made).", "",
                  "| detection | seconds | K* equal to scikit-learn's (seed 0) |", "|---|---|---|",
                  f"| the default, `TCAPDetector()` with a plausibility vote (`mixture=\"auto\"`: binned at this size; "
                  f"profiling, anchored selection, EM) | {d['default_s']:.0f} | "
                  f"{100 * d['k_agreement_binned']:.0f}% of {d['sklearn_heads_timed']} heads |",
                  *([f"| the scan's judging of where the heads and the vote disagree, its model-free part (joining what "
                      f"only the vote flags by its answer; what only the heads flag is confirmed by the anatomy, which "
                      f"asks the model about 12 samples a group, after this stage) | {d['judging_s']:.2f} | - |"]
                    if "judging_s" in d else []),
                  f"| `mixture=\"sklearn\"`, head by head (timed on {d['sklearn_heads_timed']} heads, scaled) | "
                  f"{d['sklearn_s_scaled']:.0f} | scikit-learn with seed 1: {100 * d['k_agreement_sklearn_seeds']:.0f}% |",
                  "", f"Target under 60 s with the default: "
                  f"{'met' if d['default_s'] + d.get('judging_s', 0) < 60 else 'MISSED'}; head by head "
                  f"it would be {'met' if d['sklearn_s_scaled'] < 60 else 'missed'}. `mixture=\"auto\"` fits head by "
                  "head up to 4M samples x heads (the testbed's 2000 x 96: head by head, as docs/DETECTION.md measured), "
                  "all at once above; docs/METHOD_CHOICES.md compares the two on the detection report's cases.", ""]
    if "carriers" in results:
        c = results["carriers"]
        lines += [f"## The anatomy's \"who else\" lookup: {c['samples']:,} images ({c['machine']}, {c['date']})", "",
                  "Produced by `python scripts/bench_carriers.py` (its docstring says what it reads). Each group whose "
                  "trigger cell the anatomy located reads that cell from every image of the dataset; this, not the "
                  "model's 12 samples a group, is what grows with the dataset.", "",
                  "| lookup | seconds | per image |", "|---|---|---|",
                  f"| the located cell, matched in every image | {c['cell_s']:.0f} | {c['ms_per_image']:.2f} ms |",
                  f"| a question word, matched in every question | {c['word_s']:.2f} | - |",
                  *([f"| a pattern over the whole image ({_passes(c)}) | {c['pattern_s']:.0f} | "
                     f"{1000 * c['pattern_s'] / c['samples']:.2f} ms |"] if "pattern_s" in c else []), "",
                  f"It found {c['found']} carriers of the patch, {c['found_poisoned']} of the {c['poisoned']} patched "
                  "images" + (f"; the whole-image pattern of 100 of them found {c['pattern_found']}, "
                              f"{c['pattern_found_poisoned']} patched" if "pattern_s" in c else "")
                  + ". Each runs once per located group (the whole-image pattern only where the image carries the "
                  "answer and no cell does), after detection, and is cached with the run.", ""]
    return "\n".join(lines)


def _passes(c: dict) -> str:
    """How many times the whole-image pattern read every image, and the most it may."""
    if "pattern_passes" not in c:
        return "two passes over every image"
    return (f"{c['pattern_passes']} passes over every image, at most {c['pattern_max_passes']}: "
            f"about {c['pattern_s'] / c['pattern_passes']:.0f} s a pass")


def record(key: str, measured: dict) -> None:
    """Keep ``measured`` under ``key`` in the results (the other benchmarks' stay) and rewrite the report."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = measured
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    REPORT.write_text(render(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", nargs="+", default=["demo", "mid-600", "mid-2300"], choices=list(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, help="qwen2-vl-7b with this many decoder layers and vision blocks "
                        "(a check on a small machine)")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.device, args.repeats, args.layers)))
        return
    if args.layers and args.configs != ["qwen2-vl-7b"]:
        parser.error("--layers cuts qwen2-vl-7b only: add --configs qwen2-vl-7b")
    rows = []
    for config in args.configs:
        measured = {}
        for mode in MODES:
            command = [sys.executable, __file__, "--worker", config, mode, "--device", args.device,
                       "--repeats", str(args.repeats)] + (["--layers", str(args.layers)] if args.layers else [])
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            measured[mode] = r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{config:12s} {mode:6s} tokens {r['tokens']:5d}  {r['batch'] / r['seconds_per_batch']:8.2f} "
                  f"samples/s  peak +{r['peak_mib']:8.0f} MiB", flush=True)
        measured["plain"].pop("shares")
        gap = float(np.abs(np.array(measured["rows"].pop("shares")) - np.array(measured["eager"].pop("shares"))).max())
        measured["rows"]["max_share_diff_vs_eager"] = gap
        print(f"{config:12s} row-only shares differ from eager's by at most {gap:.1e}", flush=True)
        rows += [measured[mode] for mode in MODES]
    kind = ("GPU" if args.device.startswith("cuda") else "CPU") + (f", cut to {args.layers} layers" if args.layers else "")
    record(kind, {"machine": machine(args.device), "date": time.strftime("%Y-%m-%d"), "rows": rows})
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
