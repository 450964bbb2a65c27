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
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                nn.init.uniform_(mod.weight, 0.5, 1.5)
                nn.init.uniform_(mod.bias, -0.2, 0.2)
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
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
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.uniform_(mod.weight, 0.5, 1.5)
                nn.init.uniform_(mod.bias, -0.2, 0.2)
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
        m.eval()
        save_file({k: v.contiguous() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")},
                  os.path.join(OUT, f"{name}_small.safetensors"))
        with torch.no_grad():
            np.save(os.path.join(OUT, f"{name}_small_y.npy"), m(x).numpy())
    json.dump(counts, open(os.path.join(OUT, "param_counts.json"), "w"))
    print("param counts", counts)


if __name__ == "__main__":
    shortchunk_fixtures()
