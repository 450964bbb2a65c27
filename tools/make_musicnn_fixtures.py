#!/usr/bin/env python3
"""Reference outputs of the original musicnn 0.1.0 models, run by their own TensorFlow
code (musicnn/models.py), for crates/mirkit-models/tests/musicnn.rs.

Needs a separate environment (TensorFlow does not share numpy 2 with the other tools):
    python3 -m venv tfenv && tfenv/bin/pip install tensorflow-cpu==2.16.2 tf_keras==2.16.0 \
        numpy==1.26.4 librosa==0.11.0 safetensors==0.4.5
    tfenv/bin/pip install --no-deps musicnn-0.1.0-py3-none-any.whl
    TF_USE_LEGACY_KERAS=1 tfenv/bin/python tools/make_musicnn_fixtures.py

What it does, per model (MTT_musicnn, MSD_musicnn, MTT_vgg, MSD_vgg):
1. builds the graph with musicnn.models.define_model exactly as musicnn.extractor does and
   restores the checkpoint shipped in the wheel (no try/except: a failed restore stops);
2. checks every restored variable equals the tensor tools/convert_musicnn.py wrote to
   crates/mirkit-weights-{musicnn,vgg}/weights/*.safetensors (bit for bit), so the TensorFlow-free reader is verified;
3. computes musicnn's front end on tests/fixtures/models/brahms_16k_29s.npy (29 s of the
   Brahms clip at 16 kHz): librosa.feature.melspectrogram(n_fft 512, hop 256, 96 mels,
   pad_mode "reflect" as librosa < 0.10 did when musicnn 0.1.0 was released), float16,
   log10(10000·x + 1), non-overlapping 187-frame patches (9 here);
4. saves the patches, the per-patch sigmoid outputs, and for the MTT models the named
   features of the first patch (musicnn: timbral, temporal, cnn1-3, mean_pool, max_pool,
   penultimate; vgg: per-channel means of pool1/pool2 and pool3-5 in full);
5. runs the unmodified musicnn.extractor end to end on the committed 44.1 kHz clips
   (Brahms, trumpet) and saves the averaged tag scores.
"""
import json
import os

import numpy as np
import librosa
import tensorflow as tf
from safetensors.numpy import load_file

tf.compat.v1.disable_eager_execution()
from musicnn import models  # noqa: E402
from musicnn import configuration as config  # noqa: E402
import musicnn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "musicnn")
N_FRAMES = 187


def front_end(y):
    mel = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96,
                                         pad_mode="reflect").T
    mel = mel.astype(np.float16)
    return np.log10(10000 * mel + 1)


def patches(rep):
    n = (rep.shape[0] - N_FRAMES) // N_FRAMES + 1
    return np.stack([rep[i * N_FRAMES:(i + 1) * N_FRAMES] for i in range(n)]).astype(np.float32)


def run(model, batch, reg):
    labels = config.MTT_LABELS if "MTT" in model else config.MSD_LABELS
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outs = models.define_model(x, is_training, model, len(labels))
        y = tf.nn.sigmoid(outs[0])
    sess = tf.compat.v1.Session()
    saver = tf.compat.v1.train.Saver()
    saver.restore(sess, os.path.join(os.path.dirname(musicnn.__file__), model, ""))
    conv = load_file(os.path.join(ROOT, "crates", f"mirkit-weights-{reg.split('-')[0]}", "weights", f"{reg}.safetensors"))
    tvars = {v.name[:-2]: v for v in tf.compat.v1.global_variables()}
    assert set(tvars) == set(conv), (sorted(set(tvars) ^ set(conv)))
    for name, v in tvars.items():
        val = sess.run(v)
        assert val.shape == conv[name].shape and np.array_equal(val, conv[name]), name
    res = sess.run([y] + list(outs[1:]), feed_dict={x: batch, is_training: False})
    sess.close()
    return res


def main():
    os.makedirs(OUT, exist_ok=True)
    y = np.load(os.path.join(ROOT, "tests", "fixtures", "models", "brahms_16k_29s.npy")).astype(np.float32)
    rep = front_end(y)
    batch = patches(rep)
    np.save(os.path.join(OUT, "brahms_patches.npy"), batch)
    for model, reg in [("MTT_musicnn", "musicnn-mtt"), ("MSD_musicnn", "musicnn-msd"),
                       ("MTT_vgg", "vgg-mtt"), ("MSD_vgg", "vgg-msd")]:
        res = run(model, batch, reg)
        np.save(os.path.join(OUT, f"{reg}_brahms.npy"), res[0].astype(np.float32))
        print(reg, res[0].shape, "mean score of the first tags:", np.round(res[0].mean(0)[:5], 4))
        if reg == "musicnn-mtt":
            names = ["timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate"]
            for n, v in zip(names, res[1:]):
                v = np.asarray(v)[0]
                v = np.squeeze(v)
                np.save(os.path.join(OUT, f"{reg}_{n}.npy"), v.astype(np.float32))
        if reg == "vgg-mtt":
            names = ["pool1", "pool2", "pool3", "pool4", "pool5"]
            for n, v in zip(names, res[1:]):
                v = np.asarray(v)[0]  # (time, freq, channels)
                if n in ("pool1", "pool2"):
                    v = v.mean(axis=(0, 1))
                np.save(os.path.join(OUT, f"{reg}_{n}.npy"), v.astype(np.float32))
    # 5. the original end-to-end pipeline (musicnn.extractor: librosa.load at 16 kHz with
    #    soxr_hq, librosa 0.11's default constant padding, TF) on the committed 44.1 kHz clips
    from musicnn.extractor import extractor
    for clip in ["brahms_hungarian_dance_5", "sorohanro_-_solo-trumpet-06"]:
        path = os.path.join(ROOT, "data", "clips", f"{clip}.hq.ogg")
        for model, reg in [("MTT_musicnn", "musicnn-mtt"), ("MTT_vgg", "vgg-mtt")]:
            taggram, _ = extractor(path, model=model, extract_features=False)
            np.save(os.path.join(OUT, f"{reg}_{clip[:8]}_original.npy"), taggram.mean(0).astype(np.float32))
            print(clip, reg, taggram.shape)
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump({"tensorflow": tf.__version__, "librosa": librosa.__version__, "numpy": np.__version__,
                   "musicnn": "0.1.0", "tf_keras": "2.16.0"}, f, indent=1)


if __name__ == "__main__":
    main()
