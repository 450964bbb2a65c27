"""Bad input raises a Python exception carrying the Rust error's text; nothing crashes
the interpreter."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import mirkit
from conftest import TRUMPET


def test_missing_file_is_file_not_found():
    with pytest.raises(FileNotFoundError, match="no-such.wav"):
        mirkit.load("/nonexistent/no-such.wav")


@pytest.mark.parametrize(
    "content",
    [b"", b"not audio at all" * 100, b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40],
    ids=["empty", "garbage", "bad-header"],
)
def test_undecodable_files_raise_decode_error(tmp_path, content):
    p = tmp_path / "x.wav"
    p.write_bytes(content)
    with pytest.raises(mirkit.DecodeError, match="x.wav"):
        mirkit.load(p)
    with pytest.raises(mirkit.MirkitError):
        mirkit.Tagger().tag(p)


def test_truncated_file(tmp_path):
    data = TRUMPET.read_bytes()
    p = tmp_path / "cut.ogg"
    p.write_bytes(data[: len(data) // 3])
    try:
        y, _ = mirkit.load(p, sr=None)
    except mirkit.DecodeError as e:
        assert "cut.ogg" in str(e)
    else:  # Ogg pages end cleanly: a shorter signal is a valid answer
        assert 0 < y.shape[-1]


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda y: mirkit.feature.melspectrogram(y=y, sr=22050, n_fft=0), "n_fft"),
        (lambda y: mirkit.feature.melspectrogram(y=y, sr=22050, hop_length=0), "hop_length"),
        (lambda y: mirkit.feature.melspectrogram(y=y, sr=22050, norm=2.0), "norm"),
        (lambda y: mirkit.feature.melspectrogram(y=y, sr=22050, fmin=9000.0, fmax=100.0), "fm"),
        (lambda y: mirkit.feature.melspectrogram(y=y, sr=22050, window="kaiser"), "window"),
        (lambda y: mirkit.feature.mfcc(y=y, sr=22050, dct_type=3), "DCT"),
        (lambda y: mirkit.stft(y, pad_mode="wrap"), "pad_mode"),
        (lambda y: mirkit.effects.time_stretch(y, rate=0.0), "rate"),
        (lambda y: mirkit.effects.pitch_shift(y, sr=22050, n_steps=float("nan")), "n_steps"),
        (lambda y: mirkit.resample(y, orig_sr=22050, target_sr=0), "0"),
        (lambda y: mirkit.resample(y, orig_sr=22050, target_sr=16000, res_type="bogus"), "res_type"),
        (lambda y: mirkit.power_to_db(np.abs(y), amin=0.0), "amin"),
        (lambda y: mirkit.load(TRUMPET, offset=-1.0), "offset"),
        (lambda y: mirkit.load(TRUMPET, offset=1e6), "past the end"),
        (lambda y: mirkit.Tagger().tag(y), "sample rate"),
    ],
)
def test_bad_parameters_raise_parameter_error(call, match):
    y = np.sin(np.arange(22050, dtype=np.float32) * 0.05)
    with pytest.raises(mirkit.ParameterError, match=match):
        call(y)


def test_bad_signals():
    nan = np.ones(4096, dtype=np.float32)
    nan[100] = np.nan
    with pytest.raises(mirkit.ParameterError, match="(?i)nan|finite"):
        mirkit.feature.melspectrogram(y=nan, sr=22050)
    with pytest.raises(mirkit.ParameterError):
        mirkit.feature.melspectrogram(y=np.zeros(0, dtype=np.float32), sr=22050)
    with pytest.raises(mirkit.ParameterError, match="real-valued"):
        mirkit.feature.melspectrogram(y=np.array(["a", "b"]), sr=22050)
    # silence is a valid signal: finite output (the dB floor), as librosa
    D = mirkit.power_to_db(mirkit.feature.melspectrogram(y=np.zeros(22050, np.float32), sr=22050))
    assert np.isfinite(D).all()


def test_unknown_model_and_bad_weights(tmp_path):
    with pytest.raises(mirkit.ModelError, match="no-such-model"):
        mirkit.Tagger("no-such-model")
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}              ")
    with pytest.raises(mirkit.MirkitError):
        mirkit.Tagger(str(w))


def test_errors_do_not_kill_the_interpreter(tmp_path):
    # a hundred bad calls in a child process: it exits normally
    code = (
        "import mirkit, numpy as np\n"
        "n = 0\n"
        "for i in range(100):\n"
        "    try:\n"
        "        mirkit.feature.melspectrogram(y=np.full(10, np.inf, np.float32), sr=22050)\n"
        "    except mirkit.MirkitError:\n"
        "        n += 1\n"
        "print(n)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "100"
