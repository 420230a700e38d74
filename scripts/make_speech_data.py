"""Write hwgen/data/speech_commands.npz: spoken keywords synthesized with espeak-ng.

Run once (not part of `make`; the .npz it writes is committed)::

    apt-get install espeak-ng
    .venv/bin/python scripts/make_speech_data.py

Ten keywords (`hwgen.data.SPEECH_WORDS`) spoken by 40 voices. A voice is an espeak-ng voice
variant (its own formants, breathiness, echo, pitch range) with an English accent and a base
pitch of its own; 40 of the 74 distinct variants in POOL are drawn at random (a quarter of
each split female) and held out between the splits (24 train, 6 valid, 10 test), so a test
utterance is always of a voice the model never heard. Each utterance of a voice draws its own
speed (150-230 words/min), pitch (base +/- 8), time offset in the window, added noise (white
to brown-ish, 5-30 dB SNR against the speech), and gain (-20 to +6 dB around half scale,
clipped to full scale, rounded to 16-bit samples).

Features as TIMIT's: the 22.05 kHz synthesis resampled to 16 kHz, 50 frames of 25 ms every
10 ms (0.515 s), 40 log mel filterbank energies, each band normalised over the utterance
(`hwgen.data.log_mel_features`, `normalize_utterance`), stored as int8 codes of 1/16.
Seeded: rerunning with the same espeak-ng (1.51 here) and numpy/scipy writes the same file.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.signal import lfilter, resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen import data  # noqa: E402

SEED = 15
ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# ("en" is British English: "-v en-gb+VARIANT" ignores the variant in espeak-ng 1.51)
# The espeak-ng voice variants that sound like a speaker and differ from each other: the
# near-identical families are kept once (iven2-4, steph2-3, Gene2, edward2, RicishayMax2-3),
# klatt6 and caleb (both exactly klatt) and the robots, whispers, "fast" and "Demonic" left out.
POOL = ("Alex Alicia Andrea Andy Annie AnxiousAndy Denis Diogo Gene Henrique Hugo Jacky Lee "
        "Marco Mario Michael Mike Nguyen RicishayMax Storm Tweaky adam anika antonio aunty "
        "belinda benjamin boris croak david ed edward f1 f2 f3 f4 f5 grandma grandpa gustave "
        "iven john kaukovalta klatt klatt2 klatt3 klatt4 klatt5 linda m1 m2 m3 m4 m5 m6 m7 m8 "
        "marcelo max michel miguel norbert pablo paul pedro quincy rob robert sandro shelby "
        "steph travis victor zac").split()
FEMALE = set("Alicia Andrea Annie anika aunty belinda f1 f2 f3 f4 f5 grandma linda steph".split())
# (female, male) voices of each split, drawn from POOL by a seeded permutation
VOICES = {"test": (3, 7), "valid": (2, 4), "train": (6, 18)}
REPEATS = {"train": 2, "valid": 2, "test": 3}   # utterances of each word per voice
SPEED = (150, 230)          # words per minute
PITCH_BASE = (30, 70)       # espeak-ng -p of a voice
PITCH_JITTER = 8            # per utterance, around the voice's base
SNR_DB = (5.0, 30.0)
GAIN_DB = (-20.0, 6.0)      # speech peak against half scale
SCALE = 1.0 / 16            # int8 code -> feature value (no value reaches the clip)
SYNTH_RATE = 22050


def espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                         check=True).stdout
    return out.split("Data at")[0].strip()


def synthesize(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's waveform of `word`, floats in [-1, 1] at 16 kHz."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                          "--stdout", word], capture_output=True, check=True).stdout
    # --stdout cannot seek back to fill in the sizes: the samples follow the 44-byte header
    rate = int.from_bytes(wav[24:28], "little")
    if rate != SYNTH_RATE or wav[:4] != b"RIFF":
        raise RuntimeError(f"unexpected espeak-ng output for {word!r} / {voice}")
    pcm = np.frombuffer(wav[44:len(wav) - (len(wav) - 44) % 2], dtype="<i2") / 32768.0
    return resample_poly(pcm, 320, 441)     # 22050 * 320 / 441 = 16000


def speech_extent(x: np.ndarray, margin: int = 320) -> tuple[int, int]:
    """First and last sample of 10 ms blocks above 1 % of the peak block RMS, with margin."""
    blocks = x[:len(x) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((blocks ** 2).mean(axis=1))
    active = np.nonzero(rms > 0.01 * rms.max())[0]
    return max(0, active[0] * 160 - margin), min(len(x), (active[-1] + 1) * 160 + margin)


def utterance(word: str, voice: str, base_pitch: int, rng: np.random.Generator):
    """One utterance's signal (exactly the 50 frames' samples) and its drawn settings."""
    speed = int(rng.integers(SPEED[0], SPEED[1] + 1))
    pitch = int(np.clip(base_pitch + rng.integers(-PITCH_JITTER, PITCH_JITTER + 1), 0, 99))
    x = synthesize(word, voice, speed, pitch)
    lo, hi = speech_extent(x)
    speech = x[lo:hi]
    length = (data.SPEECH_STEPS - 1) * data.SPEECH_HOP + data.SPEECH_WIN
    if len(speech) > length:                # crop around the middle
        cut = (len(speech) - length) // 2
        speech = speech[cut:cut + length]
    out = np.zeros(length)
    start = int(rng.integers(0, length - len(speech) + 1))
    out[start:start + len(speech)] = speech
    # noise: white through a one-pole low-pass (0 = white, 0.95 = brown-ish)
    pole = float(rng.uniform(0.0, 0.95))
    noise = lfilter([1.0], [1.0, -pole], rng.standard_normal(length))
    noise /= np.sqrt((noise ** 2).mean())
    snr = float(rng.uniform(*SNR_DB))
    speech_rms = np.sqrt((speech ** 2).mean())
    out += noise * speech_rms * 10 ** (-snr / 20)
    gain = float(rng.uniform(*GAIN_DB))
    out *= 0.5 * 10 ** (gain / 20) / np.abs(speech).max()
    out = np.round(np.clip(out, -1.0, 32767 / 32768) * 32768) / 32768
    return out, dict(speed=speed, pitch=pitch, snr=round(snr, 2), gain=round(gain, 2))


def split_variants() -> dict[str, list[str]]:
    """The voice variants of each split: disjoint, drawn from POOL with seed SEED, with
    the female/male counts of VOICES (14 of the 74 in POOL are female)."""
    order = [POOL[i] for i in np.random.default_rng(SEED).permutation(len(POOL))]
    female = [v for v in order if v in FEMALE]
    male = [v for v in order if v not in FEMALE]
    out = {}
    for split in ("test", "valid", "train"):
        n_f, n_m = VOICES[split]
        out[split] = female[:n_f] + male[:n_m]
        female, male = female[n_f:], male[n_m:]
    return out


def main(out: Path = data.SPEECH_FILE) -> None:
    variants = split_variants()
    rng = np.random.default_rng(SEED)
    voices, voice_split, xs, ys, vs = [], [], [], [], []
    seen = {}
    k = 0
    for split in data.SPLITS:
        for variant in variants[split]:
            accent = ACCENTS[k % len(ACCENTS)]
            k += 1
            base = int(rng.integers(PITCH_BASE[0], PITCH_BASE[1] + 1))
            espeak_voice = f"{accent}+{variant}"
            probe = synthesize("stop", f"en-us+{variant}", 175, 50).tobytes()
            if probe in seen:
                raise SystemExit(f"{variant} sounds exactly as {seen[probe]}")
            seen[probe] = variant
            if np.array_equal(synthesize("stop", espeak_voice, 175, 50),
                              synthesize("stop", accent, 175, 50)):
                raise SystemExit(f"espeak-ng ignores the variant in {espeak_voice}")
            v = len(voices)
            voices.append(f"{variant}/{accent}/p{base}")
            voice_split.append(split)
            for _ in range(REPEATS[split]):
                for label, word in enumerate(data.SPEECH_WORDS):
                    signal, _ = utterance(word, espeak_voice, base, rng)
                    feats = data.normalize_utterance(data.log_mel_features(signal))
                    assert feats.shape == (data.SPEECH_STEPS, data.SPEECH_MELS)
                    codes = np.round(feats / SCALE)
                    assert np.abs(codes).max() <= 127
                    xs.append(codes.astype(np.int8))
                    ys.append(label)
                    vs.append(v)
            print(f"{split:<5} {voices[-1]:<28} {len(xs)} utterances", flush=True)
    info = dict(espeak_ng=espeak_version(), seed=SEED, voices=VOICES, speed=SPEED,
                pitch_base=PITCH_BASE,
                pitch_jitter=PITCH_JITTER, snr_db=SNR_DB, gain_db=GAIN_DB, repeats=REPEATS,
                rate=data.SPEECH_RATE, win=data.SPEECH_WIN, hop=data.SPEECH_HOP,
                mels=data.SPEECH_MELS, fmin=data.SPEECH_FMIN, steps=data.SPEECH_STEPS,
                script="scripts/make_speech_data.py")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x=np.stack(xs), y=np.array(ys, dtype=np.uint8),
                        voice=np.array(vs, dtype=np.uint8), voices=np.array(voices),
                        voice_split=np.array(voice_split), words=np.array(data.SPEECH_WORDS),
                        scale=np.float32(SCALE), info=json.dumps(info, sort_keys=True))
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(xs)} utterances)")


if __name__ == "__main__":
    main()
