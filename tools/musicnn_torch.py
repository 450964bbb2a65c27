#!/usr/bin/env python3
"""musicnn 0.1.0's two architectures (Pons & Serra 2019) ported to PyTorch, with the
published weights, for timing mirkit's `musicnn-*`/`vgg-*` taggers against the same
networks in PyTorch (tools/bench_models.py, issue #14).

The graphs follow musicnn/models.py of musicnn 0.1.0 layer by layer, in eval mode:
- musicnn: input batch norm; timbral branches (time-padded 3/3, "valid" 7×38 and 7×67
  convolutions, 204 filters) and temporal branches ("same" 128×1, 64×1, 32×1, 51 filters;
  TensorFlow's "same" pads the odd extra row after), each conv → ReLU → batch norm → max
  over frequency; concatenated (561) → three width-7 convolutions over time (64, the 2nd
  and 3rd residual), each conv → ReLU → batch norm; the front end and the three outputs
  concatenated (753) → max and mean over time, interleaved per channel (TensorFlow
  flattens (753, 2)) → batch norm → dense 200 + ReLU → batch norm → dense (logits).
- vgg: input batch norm; five [3×3 "same" conv (128) → ReLU → batch norm → max pool]
  with pools 4×1 stride 2×2, then 2×2/2, 2×2/2, 2×2/2, 4×4/4; flattened in TensorFlow's
  NHWC order (time, frequency, channel) → dense (logits).
Batch norm ε is TensorFlow's 1e-3. Weights come from the safetensors files
tools/convert_musicnn.py wrote (TensorFlow names and layouts: kernels kh × kw × in × out,
dense kernels in × out), converted to PyTorch's layouts here.

`python3 tools/musicnn_torch.py` checks the port against the original TensorFlow
outputs kept in tests/fixtures/musicnn (per-patch sigmoid scores of 9 Brahms patches,
from tools/make_musicnn_fixtures.py, musicnn 0.1.0 on TensorFlow 2.16.2) and prints the
largest difference; tools/bench_models.py runs the same check before timing.

Reference versions: torch 2.5.1, safetensors 0.4.5 (tools/requirements.txt).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPS = 1e-3  # tf.layers.batch_normalization's default
WEIGHTS = {
    "musicnn": "crates/mirkit-weights-musicnn/weights/{}.safetensors",
    "vgg": "crates/mirkit-weights-vgg/weights/{}.safetensors",
}


def _load_bn(bn, w, name):
    bn.weight.data = torch.from_numpy(w[f"{name}/gamma"])
    bn.bias.data = torch.from_numpy(w[f"{name}/beta"])
    bn.running_mean = torch.from_numpy(w[f"{name}/moving_mean"])
    bn.running_var = torch.from_numpy(w[f"{name}/moving_variance"])
    return bn


def _conv2d(w, name, padding=0):
    k = w[f"{name}/kernel"]  # (kh, kw, in, out)
    c = nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding=padding)
    c.weight.data = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
    c.bias.data = torch.from_numpy(w[f"{name}/bias"])
    return c


def _dense(w, name):
    k = w[f"{name}/kernel"]  # (in, out)
    d = nn.Linear(k.shape[0], k.shape[1])
    d.weight.data = torch.from_numpy(np.ascontiguousarray(k.T))
    d.bias.data = torch.from_numpy(w[f"{name}/bias"])
    return d


class MusicnnTF(nn.Module):
    """musicnn 0.1.0's `musicnn` architecture; input (B, frames, 96) log-mel patches."""

    def __init__(self, w):
        super().__init__()
        self.bn_in = _load_bn(nn.BatchNorm2d(1, eps=EPS), w, "batch_normalization")
        self.timbral = nn.ModuleList(_conv2d(w, f"conv2d{'' if i == 0 else '_' + str(i)}")
                                     for i in range(2))
        self.temporal = nn.ModuleList(_conv2d(w, f"conv2d_{i}") for i in range(2, 5))
        self.front_bn = nn.ModuleList(
            _load_bn(nn.BatchNorm2d(w[f"conv2d{'' if i == 0 else '_' + str(i)}/bias"].shape[0],
                                    eps=EPS), w, f"batch_normalization_{i + 1}")
            for i in range(5))
        mids = []
        for i in range(5, 8):
            k = w[f"conv2d_{i}/kernel"]  # (7, C, 1, out) over (time, channel)
            c = nn.Conv1d(k.shape[1], k.shape[3], 7, padding=3)
            c.weight.data = torch.from_numpy(np.ascontiguousarray(k[:, :, 0, :].transpose(2, 1, 0)))
            c.bias.data = torch.from_numpy(w[f"conv2d_{i}/bias"])
            mids.append(c)
        self.mid = nn.ModuleList(mids)
        self.mid_bn = nn.ModuleList(
            _load_bn(nn.BatchNorm1d(64, eps=EPS), w, f"batch_normalization_{i + 1}")
            for i in range(5, 8))
        self.bn_flat = _load_bn(nn.BatchNorm1d(1506, eps=EPS), w, "batch_normalization_9")
        self.dense = _dense(w, "dense")
        self.bn_dense = _load_bn(nn.BatchNorm1d(200, eps=EPS), w, "batch_normalization_10")
        self.out = _dense(w, "dense_1")

    def forward(self, x):
        x = self.bn_in(x.unsqueeze(1))  # (B, 1, T, 96)
        front = []
        xt = F.pad(x, (0, 0, 3, 3))
        for c, bn in zip(self.timbral, self.front_bn[:2]):
            front.append(bn(F.relu(c(xt))).amax(dim=3))
        for c, bn in zip(self.temporal, self.front_bn[2:]):
            kh = c.kernel_size[0]
            xs = F.pad(x, (0, 0, (kh - 1) // 2, kh // 2))  # TensorFlow "same"
            front.append(bn(F.relu(c(xs))).amax(dim=3))
        front = torch.cat(front, 1)  # (B, 561, T)
        c1 = self.mid_bn[0](F.relu(self.mid[0](front)))
        c2 = self.mid_bn[1](F.relu(self.mid[1](c1))) + c1
        c3 = self.mid_bn[2](F.relu(self.mid[2](c2))) + c2
        feats = torch.cat([front, c1, c2, c3], 1)  # (B, 753, T)
        flat = torch.stack([feats.amax(dim=2), feats.mean(dim=2)], 2).flatten(1)
        h = self.bn_dense(F.relu(self.dense(self.bn_flat(flat))))
        return self.out(h)


class VggTF(nn.Module):
    """musicnn 0.1.0's `vgg` baseline; input (B, 187, 96) log-mel patches."""

    POOLS = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
             ((4, 4), (4, 4))]

    def __init__(self, w):
        super().__init__()
        self.bn_in = _load_bn(nn.BatchNorm2d(1, eps=EPS), w, "batch_normalization")
        self.convs = nn.ModuleList(_conv2d(w, f"{i}CNN", padding=1) for i in range(1, 6))
        self.bns = nn.ModuleList(_load_bn(nn.BatchNorm2d(128, eps=EPS), w,
                                          f"batch_normalization_{i}") for i in range(1, 6))
        self.out = _dense(w, "dense")

    def forward(self, x):
        h = self.bn_in(x.unsqueeze(1))
        for c, bn, (k, s) in zip(self.convs, self.bns, self.POOLS):
            h = F.max_pool2d(bn(F.relu(c(h))), k, s)
        return self.out(h.permute(0, 2, 3, 1).flatten(1))


def load(model):
    """The eval-mode port of `musicnn-mtt`, `musicnn-msd`, `vgg-mtt` or `vgg-msd`."""
    arch = model.split("-")[0]
    w = load_file(os.path.join(ROOT, WEIGHTS[arch].format(model)))
    m = MusicnnTF(w) if arch == "musicnn" else VggTF(w)
    return m.eval()


def check(model, m=None):
    """Largest |sigmoid difference| of the port `m` (loaded here if not given) against
    musicnn's TensorFlow outputs on the fixture patches (tests/fixtures/musicnn)."""
    fx = os.path.join(ROOT, "tests", "fixtures", "musicnn")
    x = torch.from_numpy(np.load(os.path.join(fx, "brahms_patches.npy")))
    want = np.load(os.path.join(fx, f"{model}_brahms.npy"))
    with torch.no_grad():
        got = torch.sigmoid((m or load(model))(x)).numpy()
    return float(np.abs(got - want).max())


if __name__ == "__main__":
    worst = 0.0
    for name in sys.argv[1:] or ["musicnn-mtt", "musicnn-msd", "vgg-mtt", "vgg-msd"]:
        d = check(name)
        worst = max(worst, d)
        print(f"{name}: max |PyTorch port − TensorFlow| of the sigmoid scores = {d:.2e}")
    # TensorFlow's and PyTorch's convolutions sum in different orders (f32)
    sys.exit(0 if worst < 1e-4 else 1)
