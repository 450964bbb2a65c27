#!/usr/bin/env python3
"""Converts the Won et al. 2020 pretrained taggers (legacy-pickle PyTorch state dicts,
MIT licence, Music Technology Group UPF) to safetensors with their state-dict names kept,
the tag list in the metadata. Reads ../shared/data/weights/won2020, writes crates/mirkit-weights-won2020-<data set>/weights.

Usage: python3 tools/convert_won2020.py [--src DIR] [--dst DIR] [--models fcn,crnn]
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(ROOT, "..", "shared", "data", "weights", "won2020"))
    ap.add_argument("--dst", default=os.path.join(ROOT, "crates"),
                    help="folder holding the mirkit-weights-won2020-<data set> crates")
    ap.add_argument("--datasets", default="mtat")
    ap.add_argument("--models", default="fcn,crnn")
    a = ap.parse_args()
    for ds in a.datasets.split(","):
        tags = [t.strip() for t in open(os.path.join(a.src, ds, "tags.txt")) if t.strip()]
        for m in a.models.split(","):
            src = os.path.join(a.src, ds, f"{m}.pth")
            if not os.path.exists(src):
                continue
            sd = torch.load(src, map_location="cpu", weights_only=False)
            tensors = {k: v.contiguous() for k, v in sd.items() if not k.endswith("num_batches_tracked")}
            meta = {"model": f"won2020-{m}-{ds}", "tags": json.dumps(tags), "source": "minzwon/sota-music-tagging-models best_model.pth",
                    "licence": "MIT (Music Technology Group, Universitat Pompeu Fabra)"}
            folder = os.path.join(a.dst, f"mirkit-weights-won2020-{ds}", "weights")
            os.makedirs(folder, exist_ok=True)
            out = os.path.join(folder, f"{m}.safetensors")
            save_file(tensors, out, metadata=meta)
            print(out, len(tensors), "tensors")


if __name__ == "__main__":
    main()
