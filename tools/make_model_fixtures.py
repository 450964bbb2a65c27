#!/usr/bin/env python3
"""Reference outputs of the Won et al. 2020 taggers (FCN, CRNN; MagnaTagATune) for
mirkit-models' parity tests. The PyTorch models below follow the architecture of
minzwon/sota-music-tagging-models (training/model.py, modules.py); weights are the
authors' best_model.pth loaded with strict=True. torch 2.5.1 / torchaudio 2.5.1.

Usage: python3 tools/make_model_fixtures.py   (writes tests/fixtures/models/)
"""
import os
os.environ.setdefault("ATEN_CPU_CAPABILITY", "default")
import numpy as np
import librosa
import torch
import torch.nn as nn
import torchaudio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = os.path.join(ROOT, "..", "shared", "data", "weights", "won2020", "mtat")
OUT = os.path.join(ROOT, "tests", "fixtures", "models")


def randomise_bn(m):
    """Random batch-norm affine parameters and running statistics, so the fixtures test them."""
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.uniform_(mod.weight, 0.5, 1.5)
            nn.init.uniform_(mod.bias, -0.2, 0.2)
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)


class Conv2d(nn.Module):
    def __init__(self, cin, cout, pooling):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.mp = nn.MaxPool2d(pooling)

    def forward(self, x):
        return self.mp(torch.relu(self.bn(self.conv(x))))


class Front(nn.Module):
    def __init__(self):
        super().__init__()
        self.spec = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, f_min=0.0, f_max=8000.0, n_mels=96)
        self.to_db = torchaudio.transforms.AmplitudeToDB()
        self.spec_bn = nn.BatchNorm2d(1)

    def front(self, x):
        return self.spec_bn(self.to_db(self.spec(x)).unsqueeze(1))


class FCN(Front):
    def __init__(self):
        super().__init__()
        pools = [(2, 4), (2, 4), (2, 4), (3, 5), (4, 4)]
        chans = [1, 64, 128, 128, 128, 64]
        for i, p in enumerate(pools):
            setattr(self, f"layer{i + 1}", Conv2d(chans[i], chans[i + 1], p))
        self.dense = nn.Linear(64, 50)

    def forward(self, x):
        x = self.front(x)
        for i in range(5):
            x = getattr(self, f"layer{i + 1}")(x)
        return torch.sigmoid(self.dense(x.view(x.size(0), -1)))


class CRNN(Front):
    def __init__(self):
        super().__init__()
        pools = [(2, 2), (3, 3), (4, 4), (4, 4)]
        chans = [1, 64, 128, 128, 128]
        for i, p in enumerate(pools):
            setattr(self, f"layer{i + 1}", Conv2d(chans[i], chans[i + 1], p))
        self.layer5 = nn.GRU(128, 32, 2, batch_first=True)
        self.dense = nn.Linear(32, 50)

    def forward(self, x):
        x = self.front(x)
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        x = x.squeeze(2).permute(0, 2, 1)
        x, _ = self.layer5(x)
        return torch.sigmoid(self.dense(x[:, -1, :]))


class ConvV(nn.Module):
    def __init__(self, cout, shape):
        super().__init__()
        self.conv = nn.Conv2d(1, cout, shape, padding=(0, shape[1] // 2))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return nn.MaxPool2d((x.size(2), 1), stride=(x.size(2), 1))(x).squeeze(2)


class ConvH(nn.Module):
    def __init__(self, cout, length):
        super().__init__()
        self.conv = nn.Conv1d(1, cout, length, padding=length // 2)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x):
        x = nn.AvgPool2d((x.size(2), 1), stride=(x.size(2), 1))(x).squeeze(2)
        return torch.relu(self.bn(self.conv(x)))


class Conv1d(nn.Module):
    def __init__(self, cin, cout, shape):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, shape, padding=shape // 2)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Musicnn(Front):
    def __init__(self, backend=64, dense=200):
        super().__init__()
        self.layers = nn.ModuleList([ConvV(204, (67, 7)), ConvV(204, (38, 7)), ConvH(51, 129), ConvH(51, 65), ConvH(51, 33)])
        self.layer1 = Conv1d(561, backend, 7)
        self.layer2 = Conv1d(backend, backend, 7)
        self.layer3 = Conv1d(backend, backend, 7)
        self.dense1 = nn.Linear((561 + backend * 3) * 2, dense)
        self.bn = nn.BatchNorm1d(dense)
        self.dense2 = nn.Linear(dense, 50)

    def forward(self, x):
        x = self.front(x)
        out = torch.cat([l(x) for l in self.layers], dim=1)
        length = out.size(2)
        r1 = self.layer1(out)
        r2 = self.layer2(r1) + r1
        r3 = self.layer3(r2) + r2
        out = torch.cat([out, r1, r2, r3], 1)
        out = torch.cat([nn.MaxPool1d(length)(out), nn.AvgPool1d(length)(out)], dim=1).squeeze(2)
        out = torch.relu(self.bn(self.dense1(out)))
        return torch.sigmoid(self.dense2(out))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    y, _ = librosa.load(os.path.join(ROOT, "data", "clips", "brahms_hungarian_dance_5.hq.ogg"), sr=16000, offset=5.0, duration=29.0)
    y = y[:464000].astype(np.float32)
    assert len(y) == 464000
    np.save(os.path.join(OUT, "brahms_16k_29s.npy"), y)
    for ds in ("mtat", "msd", "jamendo"):
        wd = os.path.join(os.path.dirname(W), ds)
        for name, cls in [("fcn", FCN), ("crnn", CRNN), ("musicnn", Musicnn)]:
            path = os.path.join(wd, f"{name}.pth")
            if not os.path.exists(path):
                continue
            m = cls()
            x = torch.from_numpy(y[:48000] if name == "musicnn" else y).unsqueeze(0)
            m.load_state_dict(torch.load(path, map_location="cpu", weights_only=False), strict=True)
            m.eval()
            with torch.no_grad():
                out = m(x)[0].numpy()
            np.save(os.path.join(OUT, f"won2020_{name}_{ds}_brahms.npy"), out.astype(np.float32))
            tags = [t.strip() for t in open(os.path.join(wd, "tags.txt")) if t.strip()]
            top = np.argsort(-out)[:5]
            print(ds, name, [(tags[i], round(float(out[i]), 4)) for i in top])

if __name__ == "__main__":
    main()


# ---------------------------------------------------------------- SampleCNN / SampleCNN+SE (random weights)
class Conv1dBlock(nn.Module):
    def __init__(self, cin, cout, shape=3, stride=1, pooling=2):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, shape, stride=stride, padding=shape // 2)
        self.bn = nn.BatchNorm1d(cout)
        self.mp = nn.MaxPool1d(pooling)

    def forward(self, x):
        return self.mp(torch.relu(self.bn(self.conv(x))))


class ResSE1d(nn.Module):
    def __init__(self, cin, cout, shape=3, stride=1, pooling=3):
        super().__init__()
        self.conv_1 = nn.Conv1d(cin, cout, shape, stride=stride, padding=shape // 2)
        self.bn_1 = nn.BatchNorm1d(cout)
        self.conv_2 = nn.Conv1d(cout, cout, shape, padding=shape // 2)
        self.bn_2 = nn.BatchNorm1d(cout)
        self.dense1 = nn.Linear(cout, cout)
        self.dense2 = nn.Linear(cout, cout)
        self.diff = stride != 1 or cin != cout
        if self.diff:
            self.conv_3 = nn.Conv1d(cin, cout, shape, stride=stride, padding=shape // 2)
            self.bn_3 = nn.BatchNorm1d(cout)
        self.mp = nn.MaxPool1d(pooling)

    def forward(self, x):
        out = self.bn_2(self.conv_2(torch.relu(self.bn_1(self.conv_1(x)))))
        se = torch.sigmoid(self.dense2(torch.relu(self.dense1(out.mean(-1))))).unsqueeze(-1)
        out = out * se
        if self.diff:
            x = self.bn_3(self.conv_3(x))
        return self.mp(torch.relu(x + out))


class SampleCNN(nn.Module):
    """Lee et al. 2017 as in Won 2020 (SampleCNN) and Kim et al. 2018 (SampleCNN+SE)."""

    def __init__(self, ch, se=False, n_class=50):
        super().__init__()
        blk = ResSE1d if se else Conv1dBlock
        self.se = se
        layers = [blk(1, ch[0], 3, 3, 1)]
        for i in range(1, 10):
            layers.append(blk(ch[i - 1], ch[i], 3, 1, 3))
        layers.append(blk(ch[9], ch[10], 1, 1, 1))
        for i, l in enumerate(layers):
            setattr(self, f"layer{i + 1}", l)
        if se:
            self.dense1 = nn.Linear(ch[10], ch[10])
            self.bn = nn.BatchNorm1d(ch[10])
            self.dense2 = nn.Linear(ch[10], n_class)
        else:
            self.dense = nn.Linear(ch[10], n_class)

    def forward(self, x):
        x = x.unsqueeze(1)
        for i in range(11):
            x = getattr(self, f"layer{i + 1}")(x)
        x = x.squeeze(-1)
        if self.se:
            x = torch.relu(self.bn(self.dense1(x)))
            return torch.sigmoid(self.dense2(x))
        return torch.sigmoid(self.dense(x))


def samplecnn_fixtures():
    import json
    from safetensors.torch import save_file
    full = [128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
    small = [8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32]
    counts = {}
    torch.manual_seed(11)
    x = torch.randn(2, 59049) * 0.1
    np.save(os.path.join(OUT, "samplecnn_x.npy"), x.numpy())
    for se in (False, True):
        name = "samplecnn_se" if se else "samplecnn"
        counts[name] = sum(p.numel() for p in SampleCNN(full, se).parameters())
        torch.manual_seed(7)
        m = SampleCNN(small, se)
        randomise_bn(m)
        m.eval()
        sd = {k: v.contiguous() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
        save_file(sd, os.path.join(OUT, f"{name}_small.safetensors"))
        with torch.no_grad():
            np.save(os.path.join(OUT, f"{name}_small_y.npy"), m(x).numpy())
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f)
    print("param counts", counts)


if __name__ == "__main__":
    samplecnn_fixtures()


# ---------------------------------------------------------------- short-chunk CNN / ResNet (Won 2020), random weights
class Res2d(nn.Module):
    def __init__(self, cin, cout, shape=3, stride=2):
        super().__init__()
        self.conv_1 = nn.Conv2d(cin, cout, shape, stride=stride, padding=shape // 2)
        self.bn_1 = nn.BatchNorm2d(cout)
        self.conv_2 = nn.Conv2d(cout, cout, shape, padding=shape // 2)
        self.bn_2 = nn.BatchNorm2d(cout)
        self.diff = stride != 1 or cin != cout
        if self.diff:
            self.conv_3 = nn.Conv2d(cin, cout, shape, stride=stride, padding=shape // 2)
            self.bn_3 = nn.BatchNorm2d(cout)

    def forward(self, x):
        out = self.bn_2(self.conv_2(torch.relu(self.bn_1(self.conv_1(x)))))
        if self.diff:
            x = self.bn_3(self.conv_3(x))
        return torch.relu(x + out)


class ShortChunk(nn.Module):
    """Body of ShortChunkCNN / ShortChunkCNN_Res (after the front end and spec_bn)."""

    def __init__(self, c, res, n_class=50):
        super().__init__()
        ch = [1, c, c, 2 * c, 2 * c, 2 * c, 2 * c, 4 * c]
        for i in range(7):
            setattr(self, f"layer{i + 1}", Res2d(ch[i], ch[i + 1]) if res else Conv2d(ch[i], ch[i + 1], 2))
        self.dense1 = nn.Linear(4 * c, 4 * c)
        self.bn = nn.BatchNorm1d(4 * c)
        self.dense2 = nn.Linear(4 * c, n_class)

    def forward(self, x):
        for i in range(7):
            x = getattr(self, f"layer{i + 1}")(x)
        x = x.squeeze(2)
        if x.size(-1) != 1:
            x = nn.MaxPool1d(x.size(-1))(x)
        x = x.squeeze(2)
        return torch.sigmoid(self.dense2(torch.relu(self.bn(self.dense1(x)))))


def shortchunk_fixtures():
    import json
    from safetensors.torch import save_file
    torch.manual_seed(13)
    x = torch.randn(2, 1, 128, 231)  # 3.69 s at 16 kHz, hop 256 -> 231 frames
    np.save(os.path.join(OUT, "shortchunk_x.npy"), x.numpy())
    counts = json.load(open(os.path.join(OUT, "param_counts.json")))
    for res in (False, True):
        name = "shortchunk_res" if res else "shortchunk_cnn"
        counts[name] = sum(p.numel() for p in ShortChunk(128, res).parameters())
        torch.manual_seed(17)
        m = ShortChunk(8, res)
        randomise_bn(m)
        m.eval()
        save_file({k: v.contiguous() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")},
                  os.path.join(OUT, f"{name}_small.safetensors"))
        with torch.no_grad():
            np.save(os.path.join(OUT, f"{name}_small_y.npy"), m(x).numpy())
    json.dump(counts, open(os.path.join(OUT, "param_counts.json"), "w"))
    print("param counts", counts)


if __name__ == "__main__":
    shortchunk_fixtures()


# ---------------------------------------------------------------- the review's other architectures (random weights)
# ReSE-2 with multi-level features (Kim, Lee & Nam 2018, "Sample-level CNN architectures
# for music auto-tagging using raw waveforms", ICASSP; the authors' Keras `resemul` with
# block_type="rese", multi=True, amplifying_ratio=16, drop_rate=0.5), ported to PyTorch
# with Keras' batch-norm epsilon 1e-3.
class ReSE2Block(nn.Module):
    def __init__(self, cin, cout, alpha=16):
        super().__init__()
        self.conv_1 = nn.Conv1d(cin, cout, 3, padding=1)
        self.bn_1 = nn.BatchNorm1d(cout, eps=1e-3)
        self.conv_2 = nn.Conv1d(cout, cout, 3, padding=1)
        self.bn_2 = nn.BatchNorm1d(cout, eps=1e-3)
        self.se_1 = nn.Linear(cout, cout * alpha)
        self.se_2 = nn.Linear(cout * alpha, cout)
        self.diff = cin != cout
        if self.diff:
            self.conv_3 = nn.Conv1d(cin, cout, 1)
            self.bn_3 = nn.BatchNorm1d(cout, eps=1e-3)

    def forward(self, x):
        out = self.bn_2(self.conv_2(torch.relu(self.bn_1(self.conv_1(x)))))
        se = torch.sigmoid(self.se_2(torch.relu(self.se_1(out.mean(-1))))).unsqueeze(-1)
        short = self.bn_3(self.conv_3(x)) if self.diff else x
        return nn.functional.max_pool1d(torch.relu(short + out * se), 3)


class ReSE2Multi(nn.Module):
    def __init__(self, init=128, alpha=16, n_class=50):
        super().__init__()
        self.conv0 = nn.Conv1d(1, init, 3, stride=3)
        self.bn0 = nn.BatchNorm1d(init, eps=1e-3)
        c, cin = init, init
        for i in range(9):
            c *= 2 if i in (2, 8) else 1
            setattr(self, f"block{i + 1}", ReSE2Block(cin, c, alpha))
            cin = c
        feat = 2 * (2 * init) + 4 * init
        self.dense1 = nn.Linear(feat, feat)
        self.bn = nn.BatchNorm1d(feat, eps=1e-3)
        self.dense2 = nn.Linear(feat, n_class)

    def forward(self, x):
        x = torch.relu(self.bn0(self.conv0(x.unsqueeze(1))))
        outs = []
        for i in range(9):
            x = getattr(self, f"block{i + 1}")(x)
            outs.append(x)
        x = torch.cat([o.amax(-1) for o in outs[-3:]], 1)
        return torch.sigmoid(self.dense2(torch.relu(self.bn(self.dense1(x)))))


# FCN-4 (Choi, Fazekas & Sandler 2016, "Automatic tagging using deep convolutional neural
# networks", ISMIR, Table 1): 96 × 1366 log-mel; [3×3 conv, BN, ELU, max pool] with 128,
# 384, 768, 2048 channels and pools (2,4) (4,5) (3,8) (4,8); a 50-way sigmoid output.
class FCN4(nn.Module):
    def __init__(self, ch=(128, 384, 768, 2048), n_class=50):
        super().__init__()
        self.pools = [(2, 4), (4, 5), (3, 8), (4, 8)]
        self.bn_in = nn.BatchNorm2d(1)
        cin = 1
        for i, c in enumerate(ch):
            setattr(self, f"layer{i + 1}", nn.Sequential())
            l = getattr(self, f"layer{i + 1}")
            l.add_module("conv", nn.Conv2d(cin, c, 3, padding=1))
            l.add_module("bn", nn.BatchNorm2d(c))
            cin = c
        self.dense = nn.Linear(cin, n_class)

    def forward(self, x):
        x = self.bn_in(x.unsqueeze(1))
        for i, p in enumerate(self.pools):
            l = getattr(self, f"layer{i + 1}")
            x = nn.functional.max_pool2d(nn.functional.elu(l.bn(l.conv(x))), p)
        return torch.sigmoid(self.dense(x.flatten(1)))


# 1-D CNN over mel frames (Dieleman & Schrauwen 2014, "End-to-end learning for music
# audio", ICASSP): two [conv 8, ReLU, max pool 4] layers with 32 filters over time (the
# mel bands as channels), dense 100 + ReLU, 50 sigmoid outputs; the raw-audio variant
# replaces the mel spectrogram by a strided convolution (length = stride = 256, 128
# filters, linear) on the waveform.
class Dieleman1d(nn.Module):
    def __init__(self, n_mels=128, frames=94, raw=False, ch=32, hidden=100, n_class=50):
        super().__init__()
        self.raw = raw
        if raw:
            self.frontend = nn.Conv1d(1, n_mels, 256, stride=256)
        self.conv1 = nn.Conv1d(n_mels, ch, 8)
        self.conv2 = nn.Conv1d(ch, ch, 8)
        t = ((frames - 7) // 4 - 7) // 4
        self.dense1 = nn.Linear(ch * t, hidden)
        self.dense2 = nn.Linear(hidden, n_class)

    def forward(self, x):
        if self.raw:
            x = self.frontend(x.unsqueeze(1))
        x = nn.functional.max_pool1d(torch.relu(self.conv1(x)), 4)
        x = nn.functional.max_pool1d(torch.relu(self.conv2(x)), 4)
        return torch.sigmoid(self.dense2(torch.relu(self.dense1(x.flatten(1)))))


def wavy(shape):
    """A deterministic input both sides can build: sin(0.001·i·(1 + i mod 7)) over the
    flattened index i, in float64 then rounded to float32."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    return torch.from_numpy(np.sin(0.001 * i * (1 + i % 7)).astype(np.float32).reshape(shape))


def review_fixtures():
    import json
    from safetensors.torch import save_file
    counts = json.load(open(os.path.join(OUT, "param_counts.json")))
    counts["rese2_multi"] = sum(p.numel() for p in ReSE2Multi().parameters())
    counts["fcn4"] = sum(p.numel() for p in FCN4().parameters())
    counts["dieleman_mel"] = sum(p.numel() for p in Dieleman1d().parameters())
    counts["dieleman_raw"] = sum(p.numel() for p in Dieleman1d(frames=187, raw=True).parameters())
    # (name, model, input shape, weight scale: keeps the sigmoid outputs off 0 and 1)
    cases = [
        ("rese2_small", ReSE2Multi(init=4, alpha=2), (2, 59049), 0.3),
        ("fcn4_small", FCN4(ch=(4, 6, 8, 10)), (2, 96, 1366), 0.3),
        ("dieleman_mel", Dieleman1d(), (2, 128, 94), 0.07),
        ("dieleman_raw", Dieleman1d(frames=187, raw=True), (2, 48000), 0.05),
    ]
    for i, (name, m, shape, scale) in enumerate(cases):
        torch.manual_seed(100 + i)
        for p in m.parameters():
            with torch.no_grad():
                p.copy_(torch.randn_like(p) * scale)
        randomise_bn(m)
        m.eval()
        save_file({k: v.contiguous() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")},
                  os.path.join(OUT, f"{name}.safetensors"))
        with torch.no_grad():
            y = m(wavy(shape))
        np.save(os.path.join(OUT, f"{name}_y.npy"), y.numpy())
        print(name, tuple(y.shape), float(y.mean()))
    json.dump(counts, open(os.path.join(OUT, "param_counts.json"), "w"))
    print("param counts", counts)


if __name__ == "__main__":
    review_fixtures()
