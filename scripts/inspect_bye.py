"""Is the BYE baseline implemented faithfully, and why does it score what it scores on a run?

    python scripts/inspect_bye.py --model sample_data/demo_model --data sample_data/demo/train/data.jsonl
    python scripts/inspect_bye.py --model sample_data/base_model --adapter runs/report/models/badnet-10-s1-lora-300 \
        --data runs/report/data/badnet-10-s1/train/data.jsonl

Reads the answer row of every sample again and computes, per layer, the BYE statistic (entropy of
the head-averaged attention over the image, renormalised) three ways: over every image token (what
the detector reads), over the patch tokens only (without a CLS token the model may keep), and
for the patch-only entropy restricted to the last layers. For each: how well low entropy separates
the poisoned samples (AUROC, ground truth used only here), whether the layer passes BYE's
sensitivity test (two-component gap > 2 x (sigma1 + sigma2)), and the detector's F1 when fed that
statistic. It also prints where the poisoned samples' attention goes: the share of image attention
on the trigger's patch tokens (BadNet's corner) for poisoned and clean samples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcap_viz.attention.extract import read_rows, vision_entropy  # noqa: E402
from tcap_viz.data import load_dataset, load_images  # noqa: E402
from tcap_viz.detection import BYEDetector, detection_metrics  # noqa: E402
from tcap_viz.model.adapter import VISION, MLLMAdapter  # noqa: E402
from tcap_viz.model.vision_layout import vision_layout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    adapter = MLLMAdapter.load(args.model, device="cpu", dtype="float32", adapter=args.adapter)
    dataset = list(load_dataset(args.data))
    all_tokens, patches, corner, truth = [], [], [], []
    for start in range(0, len(dataset), args.batch_size):
        kept, images, _ = load_images(dataset[start:start + args.batch_size])
        batch = adapter.encode([s.question for s in kept], [s.system for s in kept], images)
        rows, _ = read_rows(adapter, batch)  # (B, L, H, S)
        patch_only = batch.components.clone()  # the detector's statistic, without the tokens no grid draws
        mean_rows = rows.mean(2).numpy()  # (B, L, S): head-averaged answer rows
        for b, sample in enumerate(kept):
            vision = np.flatnonzero(batch.components[b].numpy() == VISION)
            layout = vision_layout(adapter, batch, b, images[b])
            drawn = np.concatenate([block.tokens.ravel() for block in layout]) if layout else np.arange(len(vision))
            patch_only[b, vision[np.setdiff1d(np.arange(len(vision)), drawn)]] = -1
            if layout:  # bottom-right corner token of the first grid: where BadNet's patch sits
                mass = mean_rows[b][:, vision]  # (L, image tokens)
                corner.append(mass[:, layout[0].tokens[-1, -1]] / np.clip(mass[:, drawn].sum(-1), 1e-12, None))
            truth.append(bool(sample.poisoned))
        all_tokens.append(vision_entropy(rows, batch.components).numpy())
        patches.append(vision_entropy(rows, patch_only).numpy())
    truth = np.array(truth)
    print(f"{len(truth)} samples, {truth.sum()} poisoned; model {args.model}" + (f" + {args.adapter}" if args.adapter else ""))
    for name, values in (("every image token", np.concatenate(all_tokens)), ("patch tokens only", np.concatenate(patches))):
        detector = BYEDetector().fit(values)
        print(f"\nentropy over {name}: layer, AUROC of low entropy for poisoned, sensitive (gap / (s1 + s2))")
        for layer in range(values.shape[1]):
            auroc = roc_auc_score(truth, -values[:, layer])
            gap = np.abs(np.diff(detector.layer_means_[layer]))[0] / detector.layer_stds_[layer].sum()
            print(f"  L{layer}: AUROC {auroc:.3f}  gap {gap:.2f} sigma  {'sensitive' if detector.sensitive_layers_[layer] else ''}")
        m = detection_metrics(truth, detector.flagged_, -np.nan_to_num(detector.score_))
        print(f"  BYE on it: flagged {detector.flagged_.sum()}, precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
              f"F1 {m['f1']:.3f}")
    if corner:
        share = np.array(corner)
        print("\nshare of image attention on the bottom-right patch token, by layer (poisoned mean / clean mean):")
        print("  " + "  ".join(f"L{l}: {share[truth, l].mean():.3f} / {share[~truth, l].mean():.3f}"
                             for l in range(share.shape[1])))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
