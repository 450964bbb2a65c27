#!/usr/bin/env python3
"""Parity fixtures for mirkit-dsp and mirkit-io.

Reference versions are pinned in tools/requirements.txt (librosa 0.11.0,
torchaudio 2.5.1, numpy 2.1.3, scipy 1.14.1, soxr 0.5.0.post1, soundfile 0.12.1,
av 13.1.0 for the AAC test file; the ALAC file was made with av 18.1.0)
and recorded in tests/fixtures/versions.json.

Usage:  python3 tools/make_fixtures.py   (from the repository root)

Every fixture is a float32/complex-as-two-float32 .npy file in tests/fixtures/.
Inputs are saved next to outputs so the Rust tests compute from exactly the same
samples; decoding/resampling parity is tested separately (io_*.npy).
"""
import os
os.environ.setdefault("ATEN_CPU_CAPABILITY", "default")  # portable torch kernels, see below
import json
import os
import sys

import numpy as np
import librosa
import scipy
import soundfile as sf
import soxr
import torch
import torchaudio
import av

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")
CLIPS = os.path.join(ROOT, "data", "clips")
TRUMPET = os.path.join(CLIPS, "sorohanro_-_solo-trumpet-06.hq.ogg")
BRAHMS = os.path.join(CLIPS, "brahms_hungarian_dance_5.hq.ogg")
os.makedirs(OUT, exist_ok=True)


def save(name, a):
    a = np.asarray(a)
    if np.iscomplexobj(a):
        a = np.stack([a.real, a.imag], axis=-1)
    np.save(os.path.join(OUT, name + ".npy"), a.astype(np.float32))


def generated(sr, seconds, seed):
    """Chirp 100 Hz -> 0.45 sr, two partials, and low-level noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0, f1 = 100.0, 0.45 * sr
    k = (f1 - f0) / seconds
    y = 0.5 * np.sin(2 * np.pi * (f0 * t + 0.5 * k * t * t))
    y += 0.2 * np.sin(2 * np.pi * 440.0 * t) + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def write_alac(wav, m4a):
    """The 16-bit samples of `wav` as ALAC in an MP4 container (PyAV, FFmpeg's encoder)."""
    y, sr = sf.read(wav, dtype="int16", always_2d=True)
    with av.open(m4a, "w", format="mp4") as out:
        st = out.add_stream("alac", rate=sr, layout="stereo" if y.shape[1] == 2 else "mono")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y.T), format="s16p", layout=st.layout.name)
        frame.sample_rate = sr
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)


def make_format_files():
    """Small files in every format the decoder must read (0.5 s, 44.1 kHz stereo:
    440 Hz left, 660 Hz right, amplitude 0.5), plus a float WAV holding a NaN."""
    fdir = os.path.join(OUT, "formats")
    os.makedirs(fdir, exist_ok=True)
    sr = 44100
    t = np.arange(sr // 2) / sr
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)
    for name, fmt, sub in [("pcm16.wav", "WAV", "PCM_16"), ("pcm24.wav", "WAV", "PCM_24"), ("pcm32.wav", "WAV", "PCM_32"),
                           ("u8.wav", "WAV", "PCM_U8"), ("f32.wav", "WAV", "FLOAT"), ("tone.flac", "FLAC", "PCM_16"),
                           ("tone.ogg", "OGG", "VORBIS"), ("tone.mp3", "MP3", "MPEG_LAYER_III"), ("tone.aiff", "AIFF", "PCM_16")]:
        sf.write(os.path.join(fdir, name), x, sr, format=fmt, subtype=sub)
        if fmt in ("WAV", "FLAC", "AIFF"):  # lossless: save what soundfile decodes, to compare exactly
            y, _ = sf.read(os.path.join(fdir, name), dtype="float32", always_2d=True)
            save(f"formats_{name.replace('.', '_')}", y.T)
    # AAC in MP4 via PyAV (FFmpeg's native AAC encoder)
    with av.open(os.path.join(fdir, "tone.m4a"), "w", format="mp4") as out:
        st = out.add_stream("aac", rate=sr, layout="stereo")
        st.bit_rate = 128000
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout="stereo")
        frame.sample_rate = sr
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    # ALAC in MP4 via PyAV (FFmpeg's ALAC encoder), from pcm16.wav's 16-bit samples: a
    # lossless decode gives pcm16.wav's samples exactly
    write_alac(os.path.join(fdir, "pcm16.wav"), os.path.join(fdir, "tone_alac.m4a"))
    bad = x.copy()
    bad[1000, 0] = np.nan
    sf.write(os.path.join(fdir, "nan_f32.wav"), bad, sr, format="WAV", subtype="FLOAT")
    with open(os.path.join(fdir, "not_audio.mp3"), "w") as f:
        f.write("This is a text file with an .mp3 name.\n" * 20)


def main():
    torch.set_num_threads(1)
    # ---------------------------------------------------------------- filterbanks
    fb_cases = {
        "mel_librosa_22050_2048_128": dict(sr=22050, n_fft=2048, n_mels=128),
        "mel_htk_16000_512_96_fmax8000_nonorm": dict(sr=16000, n_fft=512, n_mels=96, fmax=8000, htk=True, norm=None),
        "mel_slaney_44100_1024_64_50_14000_nonorm": dict(sr=44100, n_fft=1024, n_mels=64, fmin=50, fmax=14000, norm=None),
        "mel_htk_slaneynorm_22050_512_40": dict(sr=22050, n_fft=512, n_mels=40, htk=True),
    }
    for name, kw in fb_cases.items():
        save(name, librosa.filters.mel(**kw))
    # torchaudio returns (n_freqs, n_mels): saved transposed to librosa's (n_mels, n_freqs)
    # torchaudio filterbanks depend on the CPU capability torch dispatches to (AVX2/AVX512
    # kernels fuse multiply-adds and use SLEEF powf); this script runs with
    # ATEN_CPU_CAPABILITY=default (set below) so fixtures are the portable reference.
    ta = torchaudio.functional.melscale_fbanks(257, 0.0, 8000.0, 96, 16000, norm=None, mel_scale="htk")
    save("mel_torchaudio_16000_512_96_htk", ta.numpy().T)
    ta = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, 128, 16000, norm="slaney", mel_scale="slaney")
    save("mel_torchaudio_16000_400_128_slaney", ta.numpy().T)

    # ---------------------------------------------------------------- STFT on a generated signal
    y = generated(22050, 1.0, 0)
    save("gen_22050", y)
    save("stft_gen_512_128_constant", librosa.stft(y, n_fft=512, hop_length=128))
    save("stft_gen_512_128_reflect", librosa.stft(y, n_fft=512, hop_length=128, pad_mode="reflect"))
    save("stft_gen_512_100_edge_win400_hamming",
         librosa.stft(y, n_fft=512, hop_length=100, win_length=400, window="hamming", pad_mode="edge"))
    save("stft_gen_1024_256_nocenter_blackman",
         librosa.stft(y, n_fft=1024, hop_length=256, window="blackman", center=False))
    S = librosa.stft(y, n_fft=512, hop_length=128)
    save("istft_gen_512_128", librosa.istft(S, hop_length=128, length=len(y)))
    short = y[:300].copy()
    save("gen_short300", short)
    save("stft_short300_512_128_reflect", librosa.stft(short, n_fft=512, hop_length=128, pad_mode="reflect"))

    # ---------------------------------------------------------------- real clips
    # librosa.load: soundfile decode, mono mean, soxr_hq resample
    tr, _ = librosa.load(TRUMPET, sr=22050, mono=True, duration=3.0)
    save("trumpet_22050_3s", tr)
    mel = librosa.feature.melspectrogram(y=tr, sr=22050)
    save("trumpet_melspec_default", mel)
    save("trumpet_logmel_default_top80", librosa.power_to_db(mel, top_db=80.0))
    save("trumpet_logmel_512_256_128_refmax",
         librosa.power_to_db(librosa.feature.melspectrogram(y=tr, sr=22050, n_fft=512, hop_length=256),
                             ref=np.max, top_db=80.0))
    save("trumpet_mfcc20", librosa.feature.mfcc(y=tr, sr=22050, n_mfcc=20))
    save("trumpet_mfcc13_lifter22", librosa.feature.mfcc(y=tr, sr=22050, n_mfcc=13, lifter=22))
    m20 = librosa.feature.mfcc(y=tr, sr=22050, n_mfcc=20)
    save("trumpet_mfcc20_delta1", librosa.feature.delta(m20))
    save("trumpet_mfcc20_delta2_w5", librosa.feature.delta(m20, width=5, order=2))
    mag = np.abs(librosa.stft(tr, n_fft=1024, hop_length=256))
    save("trumpet_ampdb_1024_256_refmax", librosa.amplitude_to_db(mag, ref=np.max))

    br, _ = librosa.load(BRAHMS, sr=16000, mono=True, offset=10.0, duration=3.0)
    save("brahms_16000_3s", br)
    x = torch.from_numpy(br)
    # Won et al. 2020 front end (torchaudio MelSpectrogram + AmplitudeToDB)
    won = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, f_min=0.0, f_max=8000.0, n_mels=96)
    won_db = torchaudio.transforms.AmplitudeToDB()
    save("brahms_won2020", won_db(won(x)).numpy())
    save("brahms_torchaudio_default", torchaudio.transforms.MelSpectrogram(sample_rate=16000)(x).numpy())
    # musicnn 0.1.0 front end (librosa mel with reflect padding, float16, log10(10000x+1))
    mm = librosa.feature.melspectrogram(y=br, sr=16000, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect").T
    mm = mm.astype(np.float16)
    # musicnn 0.1.0 pins numpy < 1.17, whose value-based casting makes `10000 * mm` float32;
    # NumPy 2 (NEP 50) would keep float16 and overflow to inf above 6.55, so promote explicitly
    mm = np.log10(10000 * mm.astype(np.float32) + 1)
    save("brahms_musicnn", mm.T.astype(np.float32))

    # ---------------------------------------------------------------- decoding and resampling
    raw, sr = sf.read(TRUMPET, dtype="float32", always_2d=True)  # (n, ch)
    assert sr == 44100
    save("io_trumpet_native_first2s", raw[: 2 * sr].T)  # (ch, n) like librosa mono=False
    mono = raw.mean(axis=1).astype(np.float32)
    for target in (22050, 16000, 12000):
        save(f"io_trumpet_mono_{target}_soxr_hq", librosa.resample(mono, orig_sr=44100, target_sr=target, res_type="soxr_hq"))
    off = librosa.load(TRUMPET, sr=None, mono=True, offset=1.5, duration=0.5)[0]
    save("io_trumpet_offset1.5_dur0.5", off)

    make_format_files()

    # ---------------------------------------------------------------- augmentation (mirkit-augment)
    save("aug_trumpet_stretch_1.25", librosa.effects.time_stretch(tr, rate=1.25))
    save("aug_trumpet_stretch_0.81", librosa.effects.time_stretch(tr, rate=0.81))
    save("aug_trumpet_pitch_+2", librosa.effects.pitch_shift(tr, sr=22050, n_steps=2))
    save("aug_trumpet_pitch_-1.5", librosa.effects.pitch_shift(tr, sr=22050, n_steps=-1.5))
    save("aug_trumpet_pitch_+1_bpo24", librosa.effects.pitch_shift(tr, sr=22050, n_steps=1, bins_per_octave=24))

    versions = dict(av=av.__version__, python=sys.version.split()[0], numpy=np.__version__, scipy=scipy.__version__,
                    librosa=librosa.__version__, soundfile=sf.__version__, soxr=soxr.__version__,
                    torch=torch.__version__, torchaudio=torchaudio.__version__)
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump(versions, f, indent=1)
    print(json.dumps(versions))


if __name__ == "__main__":
    main()
