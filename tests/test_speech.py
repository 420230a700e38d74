"""The speech task (hwgen.data: speech commands from espeak-ng voices) and its bundled models."""
import json
import subprocess
import sys

import numpy as np
import pytest

from hwgen import data
from hwgen.models import HERE as MODELS_DIR
from hwgen.models import list_models, load_model, load_task_data

SPEECH = ["speech_gru", "speech_ligru", "speech_lstm", "speech_sru"]
SIZES = {"train": 480, "valid": 120, "test": 300}
VOICES = {"train": 24, "valid": 6, "test": 10}


@pytest.fixture(scope="module")
def splits():
    return {s: data.load_speech_commands(s) for s in data.SPLITS}


def test_file_is_small_and_its_arrays_documented():
    assert data.SPEECH_FILE.stat().st_size < 1_500_000
    with np.load(data.SPEECH_FILE) as f:      # no pickles: plain arrays only
        assert f["x"].dtype == np.int8 and f["x"].shape == (900, 50, 40)
        assert float(f["scale"]) == 1 / 16
        assert tuple(f["words"]) == data.SPEECH_WORDS
        assert len(f["voices"]) == len(f["voice_split"]) == 40
        info = json.loads(str(f["info"]))
    assert (info["rate"], info["win"], info["hop"], info["mels"], info["steps"]) == (
        data.SPEECH_RATE, data.SPEECH_WIN, data.SPEECH_HOP, data.SPEECH_MELS,
        data.SPEECH_STEPS)
    assert info["espeak_ng"].startswith("eSpeak NG")


@pytest.mark.parametrize("split", data.SPLITS)
def test_shapes_dtypes_and_balanced_labels(splits, split):
    x, y = splits[split]
    assert x.shape == (SIZES[split], data.SPEECH_STEPS, data.SPEECH_MELS)
    assert x.dtype == np.float32 and y.dtype == np.int64 and y.shape == (SIZES[split],)
    assert np.array_equal(np.bincount(y, minlength=10), np.full(10, SIZES[split] // 10))
    assert np.array_equal(load_task_data({"task": "speech"}, split)[0], x)


def test_stored_features_are_normalised_per_utterance(splits):
    x = np.concatenate([splits[s][0] for s in data.SPLITS]).astype(np.float64)
    # each band of each utterance: mean 0, variance 1, up to the int8 codes' rounding (1/32)
    assert np.abs(x.mean(axis=1)).max() < 1 / 32
    assert np.abs(x.std(axis=1) - 1).max() < 0.02
    assert np.array_equal(x * 16, np.round(x * 16))


def test_voices_are_held_out_between_splits():
    voices = {s: data.speech_voices(s) for s in data.SPLITS}
    names = {s: set(v) for s, v in voices.items()}
    assert {s: len(n) for s, n in names.items()} == VOICES
    variants = {s: {v.split("/")[0] for v in n} for s, n in names.items()}
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not names[a] & names[b] and not variants[a] & variants[b]
    for s in data.SPLITS:   # every voice says every word equally often
        assert len(voices[s]) == SIZES[s]
        _, y = data.load_speech_commands(s)
        for name in names[s]:
            assert np.array_equal(np.bincount(y[voices[s] == name], minlength=10),
                                  np.full(10, SIZES[s] // 10 // VOICES[s]))


def test_bad_split_raises():
    for fn in (data.load_speech_commands, data.speech_voices):
        with pytest.raises(ValueError, match="split"):
            fn("validation")


def test_loading_needs_no_torch():
    code = ("import sys, hwgen.data as d; d.load_speech_commands('test'); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mel_filterbank_shape():
    fb = data.mel_filterbank()
    centers = data.mel_band_centers()
    assert fb.shape == (40, 257) and centers.shape == (40,)
    assert np.all(np.diff(centers) > 0) and 20 < centers[0] < centers[-1] < 8000
    assert np.all(fb >= 0) and np.all(fb.max(axis=1) > 0.5)   # no empty band at 512 points
    assert np.all(fb[:, 0] == 0)                               # DC below 20 Hz


def _tone(freq, seconds=0.3, rate=data.SPEECH_RATE):
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


@pytest.mark.parametrize("band", [3, 10, 20, 30, 38])
def test_pure_tone_lands_in_its_band(band):
    f = data.log_mel_features(_tone(data.mel_band_centers()[band]))
    assert f.shape == (1 + (4800 - 400) // 160, 40)
    assert np.all(f.argmax(axis=1) == band)
    assert f[:, band].mean() > np.delete(f, [band - 1, band, band + 1], axis=1).max() + 5


def test_frames_are_25ms_every_10ms():
    x = np.zeros(16000)
    x[8000:8400] = _tone(1000, seconds=0.025)       # a 25 ms burst at 0.5 s
    f = data.log_mel_features(x)
    assert f.shape == (98, 40)
    loud = np.nonzero(f.max(axis=1) > -10)[0]       # silence sits at the floor log(1e-10)
    assert loud.min() == 48 and loud.max() == 52 and f.max(axis=1).argmax() == 50


def test_normalisation_zero_mean_unit_variance_and_gain_invariance(rng):
    noise = rng.standard_normal(8240) * 0.01 + 0.3 * _tone(700, seconds=0.515)
    raw = data.log_mel_features(noise)
    z = data.normalize_utterance(raw)
    assert z.shape == raw.shape == (50, 40)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-12)
    # a gain only shifts the log energies: the normalised features do not change
    np.testing.assert_allclose(data.log_mel_features(4 * noise), raw + np.log(16), atol=1e-9)
    np.testing.assert_allclose(data.normalize_utterance(data.log_mel_features(4 * noise)), z,
                               atol=1e-9)
    const = data.normalize_utterance(np.ones((5, 3)))
    assert np.array_equal(const, np.zeros((5, 3)))


def test_short_signal_is_refused():
    with pytest.raises(ValueError, match="at least 400 samples"):
        data.log_mel_features(np.zeros(399))


def test_speech_models_are_bundled_and_listed(capsys):
    from hwgen.cli import main
    assert set(SPEECH) <= set(list_models())
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in SPEECH:
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert "I=40" in line and "speech" in line and "test_accuracy=" in line


@pytest.mark.parametrize("name", SPEECH)
def test_speech_model_reaches_recorded_accuracy(splits, name):
    from hwgen import train
    model, meta = load_model(name)
    cfg = meta["config"]
    assert meta["task"] == "speech" and cfg["head_mode"] == "last"
    assert (cfg["input_size"], cfg["output_size"], cfg["hidden_size"]) == (40, 10, 64)
    assert meta == json.loads((MODELS_DIR / f"{name}.json").read_text())
    for split in ("test", "valid"):
        acc = train.accuracy(model, *splits[split])
        assert acc == pytest.approx(meta["metrics"][f"{split}_accuracy"], rel=1e-6)
        assert acc >= 80.0       # chance is 10 %: voices never heard in training


def test_augmentation_is_seeded_and_shifts_bands():
    import torch

    from hwgen.train import speech_augment
    x = torch.arange(2 * 3 * 40, dtype=torch.float32).reshape(2, 3, 40)
    a = speech_augment(x, torch.Generator().manual_seed(5))
    b = speech_augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)
    plain = speech_augment(x, torch.Generator().manual_seed(5), noise=0.0)
    for n in range(2):      # a whole-utterance band shift of at most 2, edges repeated
        shifts = [s for s in range(-2, 3) if torch.equal(
            plain[n], x[n][:, (torch.arange(40) - s).clamp(0, 39)])]
        assert len(shifts) == 1


def test_large_speech_gru_is_bundled_with_its_recorded_accuracy(splits, capsys):
    """speech_gru256: the throughput table's large design (GRU I=40 H=256) trained on the
    speech task (`python -m hwgen.train speech_gru256`; bench/speech_big.py)."""
    from hwgen import train
    from hwgen.cli import main
    name = "speech_gru256"
    assert name in list_models()
    model, meta = load_model(name)
    assert meta["name"] == name and meta["task"] == "speech"
    assert meta["config"] == {"cell": "gru", "input_size": 40, "hidden_size": 256,
                              "num_layers": 1, "output_size": 10, "head_mode": "last"}
    assert model.config() == meta["config"]
    assert meta == json.loads((MODELS_DIR / f"{name}.json").read_text())
    assert name in train.BUNDLED
    for split in ("test", "valid"):
        acc = train.accuracy(model, *splits[split])
        assert acc == pytest.approx(meta["metrics"][f"{split}_accuracy"], rel=1e-6)
        assert acc >= 85.0
    assert main(["list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines()
                if ln.startswith(name + " "))
    assert "I=40" in line and "H=256" in line and "speech" in line
