#!/usr/bin/env python3
"""Converts the pretrained taggers of musicnn 0.1.0 (Pons & Serra, ISC licence; PyPI wheel
`musicnn-0.1.0-py3-none-any.whl`) from their TensorFlow 1 checkpoints to safetensors,
**without TensorFlow**: the checkpoint's `.index` file is a LevelDB-format SSTable whose
values are `BundleEntryProto` protobufs (dtype, shape, offset, size, masked CRC-32C) and
the `.data-00000-of-00001` file holds the raw little-endian tensors
(tensorflow/core/util/tensor_bundle/tensor_bundle.proto and table_format.md, TF 1.x).

Only the model's variables are kept (the Adam slots, beta powers and the global step are
dropped); names are the TensorFlow variable names (e.g. `conv2d/kernel`,
`batch_normalization/moving_mean`) and layouts are TensorFlow's (conv kernels
height × width × in × out, dense kernels in × out). The metadata carries the model name,
its tags in output order, its architecture and the source.

Every tensor's CRC-32C is checked against the checkpoint.

Usage: python3 tools/convert_musicnn.py --wheel musicnn-0.1.0-py3-none-any.whl [--dst crates]
Writes crates/mirkit-weights-musicnn/weights/musicnn-*.safetensors and
crates/mirkit-weights-vgg/weights/vgg-*.safetensors (and each crate's LICENSE).
       (pip download musicnn==0.1.0 --no-deps fetches the wheel)
"""
import argparse
import json
import os
import struct
import zipfile

import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# musicnn/configuration.py of musicnn 0.1.0
MTT_LABELS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano', 'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals', 'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft', 'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal', 'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral']
MSD_LABELS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s', 'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul', 'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies', 'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop', '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal', 'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']

MODELS = {
    "MTT_musicnn": ("musicnn-mtt", "musicnn", MTT_LABELS),
    "MSD_musicnn": ("musicnn-msd", "musicnn", MSD_LABELS),
    "MTT_vgg": ("vgg-mtt", "vgg", MTT_LABELS),
    "MSD_vgg": ("vgg-msd", "vgg", MSD_LABELS),
}

DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}


# ---- CRC-32C (Castagnoli), as TensorFlow's crc32c::Value / Mask ----
def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return np.array(t, dtype=np.uint32)


_T = _crc_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _T
    for b in data:
        c = int(t[(c ^ b) & 0xFF]) ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ---- protobuf and SSTable primitives ----
def varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def proto_fields(buf):
    """(field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = varint(buf, pos)
        elif wt == 1:
            v = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wt == 2:
            n, pos = varint(buf, pos)
            v = buf[pos:pos + n]
            pos += n
        elif wt == 5:
            v = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        yield field, wt, v


def read_block(data, handle):
    off, size = handle
    kind = data[off + size]
    if kind != 0:
        raise ValueError(f"compressed SSTable block (type {kind}) is not supported")
    block = data[off:off + size]
    n_restarts = struct.unpack_from("<I", block, size - 4)[0]
    end = size - 4 * (1 + n_restarts)
    pos, key = 0, b""
    while pos < end:
        shared, pos = varint(block, pos)
        non_shared, pos = varint(block, pos)
        vlen, pos = varint(block, pos)
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + vlen]
        pos += vlen


def sstable(path):
    data = open(path, "rb").read()
    footer = data[-48:]
    if struct.unpack_from("<Q", footer, 40)[0] != 0xDB4775248B80FB57:
        raise ValueError(f"{path}: not an SSTable (bad magic)")
    pos = 0
    _, pos = varint(footer, pos)
    _, pos = varint(footer, pos)  # metaindex handle (unused)
    io, pos = varint(footer, pos)
    isz, pos = varint(footer, pos)
    for _, h in read_block(data, (io, isz)):
        o, p = varint(h, 0)
        s, _ = varint(h, p)
        yield from read_block(data, (o, s))


def read_checkpoint(prefix):
    """{name: ndarray} of a TF1 checkpoint `prefix` (prefix + .index / .data-00000-of-00001)."""
    blob = open(prefix + ".data-00000-of-00001", "rb").read()
    out = {}
    for key, value in sstable(prefix + ".index"):
        if key == b"":
            continue  # BundleHeaderProto
        name = key.decode()
        dtype, shape, offset, size, crc, shard = None, [], 0, 0, None, 0
        for f, _, v in proto_fields(value):
            if f == 1:
                dtype = v
            elif f == 2:
                for sf, _, sv in proto_fields(v):
                    if sf == 2:
                        dim = dict((df, dv) for df, _, dv in proto_fields(sv))
                        shape.append(dim.get(1, 0))
            elif f == 3:
                shard = v
            elif f == 4:
                offset = v
            elif f == 5:
                size = v
            elif f == 6:
                crc = v
            elif f == 7:
                raise ValueError(f"{name}: sliced tensors are not supported")
        if shard != 0:
            raise ValueError(f"{name}: multi-shard checkpoints are not supported")
        if dtype not in DTYPES:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        raw = blob[offset:offset + size]
        arr = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<")).reshape(shape)
        out[name] = (arr, raw, crc)
    return out


def keep(name):
    return not ("Adam" in name or name.startswith("beta1_power") or name.startswith("beta2_power")
                or name == "global_step")


def convert(wheel_dir, dst, verify_crc=True):
    for folder, (reg, arch, labels) in MODELS.items():
        prefix = os.path.join(wheel_dir, "musicnn", folder, "")
        ck = read_checkpoint(prefix)
        tensors = {}
        for name, (arr, raw, crc) in sorted(ck.items()):
            if not keep(name):
                continue
            if verify_crc and crc is not None and masked(crc32c(raw)) != crc:
                raise ValueError(f"{folder}/{name}: CRC-32C mismatch")
            tensors[name] = np.ascontiguousarray(arr.astype(np.float32))
        meta = {"model": reg, "arch": arch, "tags": json.dumps(labels),
                "source": f"musicnn 0.1.0 (PyPI wheel) musicnn/{folder}/ TF1 checkpoint",
                "licence": "ISC (Jordi Pons, Xavier Serra)",
                "front_end": "librosa mel 16 kHz, n_fft 512, hop 256, 96 Slaney mels, float16, log10(10000x+1); 187-frame patches"}
        crate = os.path.join(dst, f"mirkit-weights-{reg.split('-')[0]}")
        os.makedirs(os.path.join(crate, "weights"), exist_ok=True)
        out = os.path.join(crate, "weights", f"{reg}.safetensors")
        save_file(tensors, out, metadata=meta)
        n = sum(t.size for t in tensors.values())
        print(f"{out}: {len(tensors)} tensors, {n} values")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", required=True, help="musicnn-0.1.0-py3-none-any.whl or an unpacked copy")
    ap.add_argument("--dst", default=os.path.join(ROOT, "crates"),
                    help="folder holding the mirkit-weights-musicnn and mirkit-weights-vgg crates")
    ap.add_argument("--no-crc", action="store_true", help="skip the (slow, pure-Python) CRC check")
    a = ap.parse_args()
    src = a.wheel
    if src.endswith(".whl"):
        import tempfile
        tmp = tempfile.mkdtemp()
        zipfile.ZipFile(src).extractall(tmp)
        src = tmp
    convert(src, a.dst, verify_crc=not a.no_crc)
    lic = os.path.join(src, "musicnn-0.1.0.dist-info", "LICENSE.md")
    if os.path.exists(lic):
        text = open(lic).read()
        for crate in ("mirkit-weights-musicnn", "mirkit-weights-vgg"):
            with open(os.path.join(a.dst, crate, "LICENSE"), "w") as g:
                g.write("Weights converted from musicnn 0.1.0 (https://github.com/jordipons/musicnn),\n"
                        "by tools/convert_musicnn.py. Licence of the original package:\n\n")
                g.write(text)


if __name__ == "__main__":
    main()
