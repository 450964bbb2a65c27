#!/usr/bin/env python3
"""PyTorch reference fixtures for mirkit-nn (torch 2.5.1, pinned in tools/requirements.txt).

Writes tests/fixtures/nn/*.npy: inputs, parameters (under their state_dict names),
outputs and gradients for pooling, losses (BCE, cross-entropy, MSE, Huber), GRU/LSTM and
optimiser steps.
Usage: python3 tools/make_nn_fixtures.py
"""
import os
import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "nn")
os.makedirs(OUT, exist_ok=True)


def save(name, t):
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
    np.save(os.path.join(OUT, name + ".npy"), a.astype(np.float32))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    # ------------------------------------------------------------ pooling (forward + backward)
    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    save("pool_x", x)
    g = torch.randn(2, 3, 3, 4)
    y = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)  # 7x9 -> 4x5? computed below
    g = torch.randn_like(y)
    save("maxpool2d_k3s2p1_y", y)
    save("maxpool2d_k3s2p1_g", g)
    (y * g).sum().backward()
    save("maxpool2d_k3s2p1_dx", x.grad)
    x.grad = None
    y = F.max_pool2d(x, kernel_size=(2, 3))  # not divisible: 7x9 -> 3x3
    g2 = torch.randn_like(y)
    save("maxpool2d_k23_y", y)
    save("maxpool2d_k23_g", g2)
    (y * g2).sum().backward()
    save("maxpool2d_k23_dx", x.grad)
    x.grad = None
    y = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1)
    g3 = torch.randn_like(y)
    save("avgpool2d_k3s2p1_y", y)
    save("avgpool2d_k3s2p1_g", g3)
    (y * g3).sum().backward()
    save("avgpool2d_k3s2p1_dx", x.grad)
    x1 = torch.randn(2, 4, 11, requires_grad=True)
    save("pool1d_x", x1)
    y = F.max_pool1d(x1, kernel_size=3, stride=3)
    g4 = torch.randn_like(y)
    save("maxpool1d_k3_y", y)
    save("maxpool1d_k3_g", g4)
    (y * g4).sum().backward()
    save("maxpool1d_k3_dx", x1.grad)
    save("adaptive_avg2d_2x3_y", F.adaptive_avg_pool2d(x.detach(), (2, 3)))
    # ------------------------------------------------------------ losses
    logits = torch.tensor([[-120.0, -3.0, 0.0, 2.5, 40.0, 150.0], [1.0, -1.0, 0.5, -0.5, 3.0, -3.0]], requires_grad=True)
    target = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
    pw = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0, 1.5])
    save("bce_logits", logits)
    save("bce_target", target)
    save("bce_pos_weight", pw)
    l = F.binary_cross_entropy_with_logits(logits, target)
    save("bce_loss", l)
    l.backward()
    save("bce_dlogits", logits.grad)
    logits.grad = None
    l = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)
    save("bce_pw_loss", l)
    l.backward()
    save("bce_pw_dlogits", logits.grad)
    ce_logits = torch.randn(4, 5, requires_grad=True)
    ce_target = torch.tensor([0, 3, 4, 1])
    save("ce_logits", ce_logits)
    save("ce_target", ce_target.float())
    l = F.cross_entropy(ce_logits, ce_target, label_smoothing=0.1)
    save("ce_ls0.1_loss", l)
    l.backward()
    save("ce_ls0.1_dlogits", ce_logits.grad)
    # ------------------------------------------------------------ GRU / LSTM (2 layers, bidirectional, batch_first)
    for kind in ("gru", "lstm"):
        torch.manual_seed(1)
        m = (torch.nn.GRU if kind == "gru" else torch.nn.LSTM)(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        for k, v in m.state_dict().items():
            save(f"{kind}.{k}", v)
        inp = torch.randn(2, 5, 3)
        save(f"{kind}_input", inp)
        out, h = m(inp)
        save(f"{kind}_output", out)
        if kind == "gru":
            save("gru_h_n", h)
        else:
            save("lstm_h_n", h[0])
            save("lstm_c_n", h[1])
    # ------------------------------------------------------------ optimiser steps on a fixed quadratic
    for name, make in [
        ("sgd_m0.9_nesterov_wd0.01", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
        ("sgd_m0.9_damp0.1", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1)),
        ("adamw_wd0.01", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01)),
    ]:
        torch.manual_seed(2)
        w = torch.randn(3, 4, requires_grad=True)
        a = torch.randn(3, 4)
        save(f"opt_{name}_w0", w)
        save("opt_target", a)
        opt = make([w])
        for _ in range(5):
            opt.zero_grad()
            loss = ((w - a) ** 2 * torch.arange(1.0, 13.0).reshape(3, 4)).sum()
            loss.backward()
            opt.step()
        save(f"opt_{name}_w5", w)
    # ------------------------------------------------------------ residual / SE blocks (Won 2020 modules.py)
    class ResSE1d(torch.nn.Module):
        def __init__(self, cin, cout, shape=3, stride=1, pooling=3):
            super().__init__()
            self.conv_1 = torch.nn.Conv1d(cin, cout, shape, stride=stride, padding=shape // 2)
            self.bn_1 = torch.nn.BatchNorm1d(cout)
            self.conv_2 = torch.nn.Conv1d(cout, cout, shape, padding=shape // 2)
            self.bn_2 = torch.nn.BatchNorm1d(cout)
            self.dense1 = torch.nn.Linear(cout, cout)
            self.dense2 = torch.nn.Linear(cout, cout)
            self.diff = stride != 1 or cin != cout
            if self.diff:
                self.conv_3 = torch.nn.Conv1d(cin, cout, shape, stride=stride, padding=shape // 2)
                self.bn_3 = torch.nn.BatchNorm1d(cout)
            self.mp = torch.nn.MaxPool1d(pooling)

        def forward(self, x):
            out = self.bn_2(self.conv_2(torch.relu(self.bn_1(self.conv_1(x)))))
            se = out.mean(-1)
            se = torch.sigmoid(self.dense2(torch.relu(self.dense1(se)))).unsqueeze(-1)
            out = out * se
            if self.diff:
                x = self.bn_3(self.conv_3(x))
            return self.mp(torch.relu(x + out))

    class Res2d(torch.nn.Module):
        def __init__(self, cin, cout, shape=3, stride=2):
            super().__init__()
            self.conv_1 = torch.nn.Conv2d(cin, cout, shape, stride=stride, padding=shape // 2)
            self.bn_1 = torch.nn.BatchNorm2d(cout)
            self.conv_2 = torch.nn.Conv2d(cout, cout, shape, padding=shape // 2)
            self.bn_2 = torch.nn.BatchNorm2d(cout)
            self.diff = stride != 1 or cin != cout
            if self.diff:
                self.conv_3 = torch.nn.Conv2d(cin, cout, shape, stride=stride, padding=shape // 2)
                self.bn_3 = torch.nn.BatchNorm2d(cout)

        def forward(self, x):
            out = self.bn_2(self.conv_2(torch.relu(self.bn_1(self.conv_1(x)))))
            if self.diff:
                x = self.bn_3(self.conv_3(x))
            return torch.relu(x + out)

    for name, m, shape in [("resse1d", ResSE1d(2, 4), (2, 2, 27)), ("res2d", Res2d(2, 4), (2, 2, 8, 10))]:
        torch.manual_seed(4)
        for p_ in m.modules():
            if isinstance(p_, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                torch.nn.init.uniform_(p_.weight, 0.5, 1.5)
                torch.nn.init.uniform_(p_.bias, -0.2, 0.2)
                p_.running_mean.uniform_(-0.1, 0.1)
                p_.running_var.uniform_(0.5, 1.5)
        for k, v in m.state_dict().items():
            if not k.endswith("num_batches_tracked"):
                save(f"{name}.{k}", v)
        x = torch.randn(*shape)
        save(f"{name}_x", x)
        m.eval()
        with torch.no_grad():
            save(f"{name}_eval_y", m(x))
        m.train()
        with torch.no_grad():
            save(f"{name}_train_y", m(x))
    # ------------------------------------------------------------ regression losses (own seed)
    torch.manual_seed(7)
    pred = (torch.randn(6, 2) * 2.0).requires_grad_(True)  # errors on both sides of delta
    target = torch.randn(6, 2)
    save("reg_pred", pred)
    save("reg_target", target)
    for name, fn in [("mse", lambda: F.mse_loss(pred, target)),
                     ("huber1", lambda: F.huber_loss(pred, target, delta=1.0)),
                     ("huber0.5", lambda: F.huber_loss(pred, target, delta=0.5))]:
        pred.grad = None
        l = fn()
        save(f"{name}_loss", l)
        l.backward()
        save(f"{name}_dpred", pred.grad)
    print("ok", torch.__version__)


if __name__ == "__main__":
    main()
