#!/usr/bin/env python3
"""Rounding error of Winograd's F(m×m, 3×3) in f32 for several interpolation points, the
check behind mirkit_nn::winograd's choice of points and chunked channel sums.

Builds each algorithm by the Toom–Cook construction (Aᵀ columns p^k, G rows
p^k / Π(p − q), Bᵀ solved from Σⱼ Aᵀᵢⱼ Gⱼₖ Bᵀⱼₗ = [l = i + k]), runs a padded 3×3
convolution of post-ReLU input with He-scaled kernels in f32 (transforms and the sum over
channels in f32, sequentially, in chunks of `chunk` channels), and prints the max and RMS
error against an f64 direct convolution, relative to the outputs' RMS. Uses numpy only.

Usage: python3 tools/winograd_points.py  (numpy from tools/requirements.txt)
Reference: numpy 2.1.3 (tools/requirements.txt).
"""
import numpy as np


def build(m, pts, r=3):
    n = m + r - 1
    at = np.zeros((m, n))
    g = np.zeros((n, r))
    for j, p in enumerate(pts):
        at[:, j] = [p ** i for i in range(m)]
        f = np.prod([p - q for q in pts if q != p])
        g[j] = [p ** k / f for k in range(r)]
    at[m - 1, n - 1] = 1
    g[n - 1, r - 1] = 1
    rows, rhs = [], []
    for i in range(m):
        for k in range(r):
            for l in range(n):
                row = np.zeros((n, n))
                row[:, l] = at[i] * g[:, k]
                rows.append(row.ravel())
                rhs.append(1.0 if l == i + k else 0.0)
    bt = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0].reshape(n, n)
    return at, g, bt


def direct(x, k):
    c, h, w = x.shape
    xp = np.zeros((c, h + 2, w + 2))
    xp[:, 1:h + 1, 1:w + 1] = x
    y = np.zeros((k.shape[0], h, w))
    for i in range(3):
        for j in range(3):
            y += np.einsum("oc,chw->ohw", k[:, :, i, j].astype(np.float64), xp[:, i:i + h, j:j + w])
    return y


def winograd(x, k, m, at, g, bt, chunk):
    c, h, w = x.shape
    n = m + 2
    f32 = np.float32
    xp = np.zeros((c, h + n, w + n), f32)
    xp[:, 1:h + 1, 1:w + 1] = x
    u = np.einsum("ak,ockl,bl->ocab", g, k.astype(np.float64), g).astype(f32)
    bt32, at32 = bt.astype(f32), at.astype(f32)
    y = np.zeros((k.shape[0], h, w))
    for bi in range(h // m):
        for bj in range(w // m):
            d = xp[:, bi * m:bi * m + n, bj * m:bj * m + n]
            v = np.einsum("ab,cbd,ed->cae", bt32, d, bt32).astype(f32)
            tot = None
            for c0 in range(0, c, chunk):
                acc = np.zeros((k.shape[0], n, n), f32)
                for ci in range(c0, min(c, c0 + chunk)):
                    acc = (acc + u[:, ci] * v[ci]).astype(f32)
                tot = acc if tot is None else (tot + acc).astype(f32)
            y[:, bi * m:bi * m + m, bj * m:bj * m + m] = np.einsum(
                "ia,oab,jb->oij", at32, tot, at32).astype(f32)
    return y


def main():
    rng = np.random.default_rng(3)
    for c in (128, 256):
        x = np.maximum(rng.standard_normal((c, 16, 16)), 0).astype(np.float32)
        k = (rng.standard_normal((16, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        ref = direct(x, k)
        s = np.sqrt(np.mean(ref ** 2))
        for name, m, pts, chunk in [
            ("F(2x2) 0,1,-1", 2, [0, 1, -1], c),
            ("F(4x4) 0,1,-1,2,-2", 4, [0, 1, -1, 2, -2], c),
            ("F(4x4) 0,-1,1,1/2,-2", 4, [0, -1, 1, 0.5, -2], c),
            ("F(4x4) 0,-1,1,1/2,-2 chunks of 16", 4, [0, -1, 1, 0.5, -2], 16),
        ]:
            e = np.abs(winograd(x, k, m, *build(m, [float(p) for p in pts]), chunk) - ref)
            print(f"C={c} {name:36s} max {e.max() / s:.2e}  rms {np.sqrt(np.mean(e ** 2)) / s:.2e}")


if __name__ == "__main__":
    main()
