"""Procedural music with known genre, mood, instrument and era, rendered from a soundfont.

A track is drawn in two steps, both deterministic in the track's seed:

1. `sample_track_spec` draws the tags (genre, mood, 2-4 instruments, era) with
   catalogue-like co-occurrence (instrument, mood and era depend on genre) while every
   combination keeps a non-zero probability, and the generative factors that follow
   from them (tempo, key, mode, swing, dynamics, register, articulation, GM programs,
   production settings).
2. `render_track` composes a groove, bass line, harmony and melody from the spec,
   renders them with a General MIDI soundfont (tinysoundfont, no system library) and
   applies the era's production chain (bandwidth, saturation, noise, reverb, loudness).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Sequence

import numpy as np
from scipy import signal

from musicrep_jax import errors

CATEGORIES = ("genre", "mood", "instrument", "era")
GENRES = ("rock", "metal", "jazz", "electronic", "hiphop", "classical", "country", "latin")
MOODS = ("happy", "sad", "aggressive", "calm", "dark")
INSTRUMENTS = ("drums", "bass", "piano", "organ", "electric_guitar", "acoustic_guitar",
               "strings", "brass", "saxophone", "synth")
ERAS = ("1950s", "1970s", "1990s", "2010s")
TAGS = {"genre": GENRES, "mood": MOODS, "instrument": INSTRUMENTS, "era": ERAS}

# Probability that a tag is drawn from the genre's preferences rather than uniformly:
# below 1 so that every combination of tags stays possible.
PREFERENCE = 0.75

MODES = {  # semitone offsets of the seven scale degrees
    "ionian": (0, 2, 4, 5, 7, 9, 11), "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10), "dorian": (0, 2, 3, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10), "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}

# Mood: scale modes, tempo factor, MIDI velocity, octave shift, note-length fraction,
# melodic note density factor.
MOOD_STYLE = {
    "happy": dict(modes=("ionian", "mixolydian", "lydian"), tempo=1.12, vel=96, octave=1, gate=0.5, density=1.2),
    "sad": dict(modes=("aeolian", "dorian"), tempo=0.78, vel=58, octave=0, gate=0.95, density=0.6),
    "aggressive": dict(modes=("phrygian", "aeolian"), tempo=1.2, vel=122, octave=-1, gate=0.35, density=1.5),
    "calm": dict(modes=("lydian", "ionian"), tempo=0.72, vel=50, octave=0, gate=1.0, density=0.5),
    "dark": dict(modes=("harmonic_minor", "phrygian"), tempo=0.92, vel=80, octave=-1, gate=0.8, density=0.8),
}

# Genre: tempo range (BPM), swing (0 straight .. 0.33 triplet feel), chord progressions
# as scale degrees, chord voicing, comping and bass styles, melodic density (notes per
# beat), and the preferences that make tags co-occur.
GENRE_STYLE = {
    "rock": dict(tempo=(100, 140), swing=0.0, progs=((0, 3, 4, 3), (0, 4, 5, 3), (0, 6, 3, 0)),
                 voicing="power", comp="eighths", bass="eighths", density=1.0,
                 instruments={"drums": 5, "bass": 5, "electric_guitar": 6, "organ": 2, "piano": 2},
                 moods={"happy": 2, "aggressive": 2}, eras={"1970s": 3, "1990s": 2}),
    "metal": dict(tempo=(150, 200), swing=0.0, progs=((0, 5, 6, 0), (0, 1, 0, 6)),
                  voicing="power", comp="sixteenths", bass="sixteenths", density=1.5,
                  instruments={"drums": 6, "bass": 4, "electric_guitar": 7, "synth": 1},
                  moods={"aggressive": 5, "dark": 3}, eras={"1990s": 3, "2010s": 2}),
    "jazz": dict(tempo=(110, 190), swing=0.3, progs=((1, 4, 0, 5), (0, 5, 1, 4), (2, 5, 1, 4)),
                 voicing="seventh", comp="stabs", bass="walking", density=1.5,
                 instruments={"drums": 4, "bass": 5, "piano": 5, "saxophone": 5, "brass": 4},
                 moods={"calm": 2, "happy": 2}, eras={"1950s": 5, "1970s": 1}),
    "electronic": dict(tempo=(120, 132), swing=0.0, progs=((0, 5, 2, 6), (5, 3, 0, 4)),
                       voicing="triad", comp="pad", bass="offbeat", density=1.0,
                       instruments={"drums": 6, "synth": 7, "bass": 3, "piano": 1},
                       moods={"happy": 2, "dark": 2}, eras={"2010s": 5, "1990s": 2}),
    "hiphop": dict(tempo=(80, 98), swing=0.2, progs=((0, 3), (0, 5, 3, 4)),
                   voicing="seventh", comp="stabs", bass="syncopated", density=0.75,
                   instruments={"drums": 7, "bass": 5, "piano": 3, "strings": 2, "synth": 3},
                   moods={"dark": 2, "aggressive": 1}, eras={"1990s": 4, "2010s": 3}),
    "classical": dict(tempo=(60, 120), swing=0.0, progs=((0, 3, 4, 0), (0, 5, 1, 4), (0, 4, 5, 3)),
                      voicing="triad", comp="arpeggio", bass="sustained", density=1.0,
                      instruments={"strings": 7, "piano": 5, "brass": 2, "organ": 1},
                      moods={"calm": 3, "sad": 2}, eras={"1950s": 2, "1970s": 2}),
    "country": dict(tempo=(90, 130), swing=0.1, progs=((0, 3, 0, 4), (0, 0, 3, 4)),
                    voicing="triad", comp="strum", bass="root_fifth", density=1.0,
                    instruments={"acoustic_guitar": 7, "bass": 4, "drums": 4, "strings": 2, "piano": 2},
                    moods={"happy": 3, "sad": 2}, eras={"1950s": 2, "1970s": 3}),
    "latin": dict(tempo=(95, 130), swing=0.0, progs=((1, 4, 0, 0), (0, 3, 4, 0)),
                  voicing="seventh", comp="montuno", bass="tumbao", density=1.25,
                  instruments={"acoustic_guitar": 4, "piano": 4, "brass": 4, "drums": 4, "bass": 4},
                  moods={"happy": 3, "calm": 1}, eras={"1970s": 2, "1950s": 2}),
}

# GM programs for each instrument tag, per genre where the timbre depends on it.
PROGRAMS = {
    "bass": {"jazz": (32,), "electronic": (38, 39), "hiphop": (38, 33), "classical": (43,),
             "_": (33, 34)},
    "piano": {"electronic": (4, 5), "_": (0, 1)},
    "organ": {"classical": (19,), "_": (16, 17)},
    "electric_guitar": {"rock": (29, 30), "metal": (30,), "jazz": (26,), "_": (27, 26)},
    "acoustic_guitar": {"latin": (24,), "_": (25, 24)},
    "strings": {"_": (48, 49, 40, 42)},
    "brass": {"_": (56, 57, 61)},
    "saxophone": {"_": (65, 66)},
    "synth": {"_": (80, 81, 88, 89, 90)},
}

# Era production: lowpass cutoff range (Hz), tape drive, noise level (dB re. peak),
# reverb mix and decay (s), compression amount (0..1, 1 = brickwall loudness).
ERA_STYLE = {
    "1950s": dict(cutoff=(2500, 3800), highpass=180, drive=1.2, noise_db=-32, reverb=0.35, decay=1.4, compress=0.0),
    "1970s": dict(cutoff=(4500, 6000), highpass=60, drive=2.2, noise_db=-42, reverb=0.22, decay=1.0, compress=0.3),
    "1990s": dict(cutoff=(7000, 7900), highpass=35, drive=1.0, noise_db=-70, reverb=0.12, decay=0.7, compress=0.55),
    "2010s": dict(cutoff=(7900, 7999), highpass=25, drive=1.0, noise_db=-90, reverb=0.04, decay=0.4, compress=0.95),
}

# General MIDI drum keys.
KICK, SNARE, RIM, CLAP, HAT, PEDAL_HAT, OPEN_HAT, RIDE, CRASH = 36, 38, 37, 39, 42, 44, 46, 51, 49
CONGA_HI, CONGA_LO, CLAVE, COWBELL = 62, 64, 75, 56


@dataclasses.dataclass(frozen=True)
class TrackSpec:
  """Tags and generative factors of one track; everything `render_track` needs."""
  seed: int
  duration: float
  genre: str
  mood: str
  instruments: tuple[str, ...]
  era: str
  tempo: float
  key: int  # tonic pitch class, 0 = C
  mode: str
  swing: float
  velocity: int
  octave: int
  gate: float
  density: float
  progression: tuple[int, ...]
  programs: tuple[int, ...]  # GM program per instrument (-1 for drums)
  cutoff: float
  drive: float
  noise_db: float
  reverb: float
  compress: float

  def factors(self) -> dict[str, float]:
    """Numeric generative factors, stored next to the tags."""
    return dict(tempo=self.tempo, key=self.key, mode=list(MODES).index(self.mode),
                swing=self.swing, velocity=self.velocity, octave=self.octave,
                gate=self.gate, density=self.density, cutoff=self.cutoff,
                drive=self.drive, noise_db=self.noise_db, reverb=self.reverb,
                compress=self.compress)


FACTOR_NAMES = tuple(f.name for f in dataclasses.fields(TrackSpec)
                     if f.name in ("tempo", "key", "mode", "swing", "velocity", "octave", "gate",
                                   "density", "cutoff", "drive", "noise_db", "reverb", "compress"))


def pick(rng: np.random.Generator, options: Sequence[str], prefs: dict[str, float],
         preference: float = PREFERENCE) -> str:
  """A tag from the preferences with probability `preference`, else uniformly."""
  if prefs and rng.random() < preference:
    names = list(prefs)
    weights = np.array([prefs[n] for n in names], float)
    return names[rng.choice(len(names), p=weights / weights.sum())]
  return options[rng.integers(len(options))]


def instrument_weights(genre: str, preference: float = PREFERENCE) -> np.ndarray:
  """[len(INSTRUMENTS)] probabilities of each instrument in a track of the genre."""
  prefs = GENRE_STYLE[genre]["instruments"]
  weights = np.array([prefs.get(i, 0.0) for i in INSTRUMENTS], float)
  return preference * weights / weights.sum() + (1 - preference) / len(INSTRUMENTS)


def pick_instruments(rng: np.random.Generator, genre: str, preference: float = PREFERENCE) -> tuple[str, ...]:
  """2-4 distinct instruments, at least one of them melodic, genre-weighted."""
  weights = instrument_weights(genre, preference)
  n = int(rng.integers(2, 5))
  while True:
    chosen = rng.choice(len(INSTRUMENTS), size=n, replace=False, p=weights)
    names = tuple(INSTRUMENTS[i] for i in sorted(chosen))
    if any(i not in ("drums", "bass") for i in names):
      return names


def sample_track_spec(seed: int, duration: float = 9.0, *, genre: str | None = None,
                      mood: str | None = None, instruments: Sequence[str] | None = None,
                      era: str | None = None, preference: float = PREFERENCE) -> TrackSpec:
  """Draws a track's tags and factors from its seed; any tag may be fixed by the caller.
  `preference`: how strongly mood, instruments and era follow the genre (0: independent)."""
  rng = np.random.default_rng(seed)
  genre = genre or pick(rng, GENRES, {g: 1.0 for g in GENRES}, preference)
  g = GENRE_STYLE[genre]
  mood = mood or pick(rng, MOODS, g["moods"], preference)
  instruments = (tuple(sorted(instruments, key=INSTRUMENTS.index)) if instruments
                 else pick_instruments(rng, genre, preference))
  era = era or pick(rng, ERAS, g["eras"], preference)
  m, e = MOOD_STYLE[mood], ERA_STYLE[era]
  tempo = float(rng.uniform(*g["tempo"]) * m["tempo"])
  programs = []
  for inst in instruments:
    if inst == "drums":
      programs.append(-1)
    else:
      table = PROGRAMS[inst]
      options = table.get(genre, table["_"])
      programs.append(int(options[rng.integers(len(options))]))
  progs = g["progs"]
  return TrackSpec(
      seed=seed, duration=duration, genre=genre, mood=mood, instruments=instruments, era=era,
      tempo=tempo, key=int(rng.integers(12)), mode=m["modes"][rng.integers(len(m["modes"]))],
      swing=g["swing"], velocity=int(np.clip(m["vel"] + rng.integers(-8, 9), 20, 127)),
      octave=m["octave"], gate=m["gate"], density=g["density"] * m["density"],
      progression=tuple(progs[rng.integers(len(progs))]), programs=tuple(programs),
      cutoff=float(rng.uniform(*e["cutoff"])), drive=e["drive"],
      noise_db=e["noise_db"] + float(rng.uniform(-3, 3)), reverb=e["reverb"],
      compress=e["compress"])


# ----------------------------------------------------------------------------------
# Composition: a list of note events (onset s, duration s, channel, key, velocity).

Note = tuple[float, float, int, int, int]
DRUM_CHANNEL = 9


def _chord(spec: TrackSpec, degree: int, voicing: str) -> list[int]:
  """Pitch classes (relative semitones) of the diatonic chord on a scale degree."""
  scale = MODES[spec.mode]
  steps = {"power": (0, 4, 7), "triad": (0, 2, 4), "seventh": (0, 2, 4, 6)}[voicing]
  out = []
  for s in steps:
    if voicing == "power" and s:
      out.append(scale[degree % 7] + (7 if s == 4 else 12))
    else:
      idx = degree + s
      out.append(scale[idx % 7] + 12 * (idx // 7))
  return out


def _drum_pattern(genre: str, rng: np.random.Generator) -> dict[int, Sequence[int]]:
  """16th-note steps of one bar for each drum key."""
  if genre == "rock":
    return {KICK: (0, 8, 10) if rng.random() < 0.5 else (0, 6, 8), SNARE: (4, 12), HAT: range(0, 16, 2), CRASH: (0,)}
  if genre == "metal":
    return {KICK: range(16), SNARE: (4, 12), CRASH: (0, 8), RIDE: range(0, 16, 4)}
  if genre == "jazz":
    return {RIDE: (0, 4, 6, 8, 12, 14), PEDAL_HAT: (4, 12), SNARE: tuple(rng.choice(16, 2)), KICK: (0,)}
  if genre == "electronic":
    return {KICK: (0, 4, 8, 12), CLAP: (4, 12), OPEN_HAT: (2, 6, 10, 14), HAT: range(16)}
  if genre == "hiphop":
    return {KICK: (0, 7, 10), SNARE: (4, 12), HAT: range(0, 16, 2), OPEN_HAT: (14,)}
  if genre == "country":
    return {KICK: (0, 8), RIM: (4, 12), SNARE: range(1, 16, 2), HAT: range(0, 16, 2)}
  if genre == "latin":
    return {CLAVE: (0, 3, 6, 10, 12), CONGA_HI: (2, 6, 10, 14), CONGA_LO: (7, 15), KICK: (0, 3, 8, 11), COWBELL: (0, 4, 8, 12)}
  return {KICK: (0,), CRASH: (0,)}  # classical: a sparse timpani-like accent


def _bass_line(style: str, root: int, next_root: int, chord: list[int], rng) -> list[tuple[int, int, int]]:
  """(step, length in 16ths, pitch offset) for one bar."""
  if style == "eighths":
    return [(s, 2, root) for s in range(0, 16, 2)]
  if style == "sixteenths":
    return [(s, 1, root) for s in range(16)]
  if style == "walking":
    tones = [root, root + chord[1] - chord[0], root + chord[2] - chord[0], next_root - 1]
    return [(4 * i, 4, t) for i, t in enumerate(tones)]
  if style == "offbeat":
    return [(s, 2, root) for s in (2, 6, 10, 14)]
  if style == "syncopated":
    return [(0, 3, root), (3, 3, root), (10, 2, root + 7), (12, 4, root)]
  if style == "root_fifth":
    return [(0, 4, root), (4, 4, root + 7), (8, 4, root), (12, 4, root + 7)]
  if style == "tumbao":
    return [(3, 3, root + 7), (6, 6, root), (12, 4, root + 7)]
  return [(0, 16, root)]  # sustained


def _comp_hits(style: str, rng) -> list[tuple[int, int]]:
  """(step, length in 16ths) of harmony hits in one bar."""
  return {
      "eighths": [(s, 2) for s in range(0, 16, 2)],
      "sixteenths": [(s, 1) for s in range(0, 16, 2)],
      "stabs": sorted({(int(s), 2) for s in rng.choice(16, 3, replace=False)}),
      "pad": [(0, 16)],
      "arpeggio": [(s, 2) for s in range(0, 16, 2)],
      "strum": [(0, 3), (4, 2), (6, 2), (10, 2), (12, 4)],
      "montuno": [(s, 1) for s in (0, 3, 5, 8, 10, 13)],
  }[style]


def compose(spec: TrackSpec) -> list[Note]:
  """The note events of a track, groove + bass + harmony + melody."""
  rng = np.random.default_rng(spec.seed + 7919)
  g = GENRE_STYLE[spec.genre]
  beat = 60.0 / spec.tempo
  sixteenth = beat / 4
  n_bars = int(np.ceil(spec.duration / (16 * sixteenth))) + 1
  tonic = 48 + spec.key  # C3 + key

  def time(bar: int, step: float) -> float:
    swung = step + (spec.swing * 2 if int(step) % 4 == 2 else 0.0) if spec.swing else step
    return (bar * 16 + swung) * sixteenth

  def vel(scale: float = 1.0) -> int:
    return int(np.clip(spec.velocity * scale + rng.normal(0, 6), 1, 127))

  notes: list[Note] = []
  melodic = [(c, inst) for c, inst in enumerate(spec.instruments) if inst not in ("drums", "bass")]
  channel = {inst: c for c, inst in enumerate(spec.instruments)}
  lead_ch, harm_ch = melodic[0][0], melodic[min(1, len(melodic) - 1)][0]
  extra = melodic[2:]
  if "drums" in spec.instruments:
    pattern = _drum_pattern(spec.genre, rng)
  scale = MODES[spec.mode]
  melody_pitch = tonic + 12 + 12 * spec.octave + scale[rng.integers(7)]
  for bar in range(n_bars):
    degree = spec.progression[bar % len(spec.progression)]
    next_degree = spec.progression[(bar + 1) % len(spec.progression)]
    chord = _chord(spec, degree, g["voicing"])
    root = tonic + scale[degree % 7]
    if "drums" in spec.instruments:
      for key, steps in pattern.items():
        for s in steps:
          accent = 1.1 if s % 4 == 0 else 0.85
          notes.append((time(bar, s), sixteenth, DRUM_CHANNEL, key, vel(accent)))
    if "bass" in spec.instruments:
      for s, length, pitch in _bass_line(g["bass"], root - 24, tonic - 24 + scale[next_degree % 7], chord, rng):
        notes.append((time(bar, s), length * sixteenth * spec.gate, channel["bass"], int(pitch), vel()))
    elif g["bass"] != "sustained":  # the harmony instrument's left hand plays the roots
      notes.append((time(bar, 0), 8 * sixteenth, harm_ch, root - 12, vel(0.9)))
    chord_pitches = [tonic + c + (12 if spec.octave > 0 else 0) for c in chord]
    for i, (s, length) in enumerate(_comp_hits(g["comp"], rng)):
      pitches = [chord_pitches[i % len(chord_pitches)]] if g["comp"] == "arpeggio" else chord_pitches
      for p in pitches:
        notes.append((time(bar, s), length * sixteenth * max(spec.gate, 0.4), harm_ch, p, vel(0.8)))
    for ch, _ in extra:  # a sustained pad or counter-line an octave up
      for p in chord_pitches[:3]:
        notes.append((time(bar, 0), 16 * sixteenth * 0.95, ch, p + 12, vel(0.6)))
    # Melody: a random walk on the scale, chord tones on the beat, density from genre x mood.
    step = 0.0
    while step < 16:
      length = float(rng.choice([1, 2, 2, 4, 4, 8]) / max(spec.density, 0.3))
      length = float(np.clip(np.round(length), 1, 8))
      if rng.random() < 0.15:  # a rest
        step += length
        continue
      if step % 4 == 0:
        target = root + 12 + 12 * spec.octave + chord[rng.integers(len(chord))] - chord[0]
        melody_pitch = int(target + 12 * np.round((melody_pitch - target) / 12))
      else:
        degree_now = int(np.argmin([abs((melody_pitch - tonic - s) % 12) for s in scale]))
        move = int(rng.choice([-2, -1, -1, 1, 1, 2]))
        idx = degree_now + move
        melody_pitch = tonic + 12 + 12 * spec.octave + scale[idx % 7] + 12 * (idx // 7)
      melody_pitch = int(np.clip(melody_pitch, 55, 96))
      notes.append((time(bar, step), length * sixteenth * spec.gate, lead_ch, melody_pitch, vel(1.05)))
      step += length
  return [n for n in notes if n[0] < spec.duration]


# ----------------------------------------------------------------------------------
# Rendering.

DEFAULT_SOUNDFONT = "TimGM6mb.sf2 (shipped by pretty_midi)"


def default_soundfont() -> str:
  import pretty_midi  # pylint: disable=import-outside-toplevel
  return os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")


@functools.lru_cache(maxsize=8)  # a build may alternate several soundfonts
def _parsed(soundfont: str):
  """The soundfont parsed once per process: a 148 MB General MIDI soundfont takes about
  a second to parse, far longer than a track takes to render."""
  try:
    from tinysoundfont import _tinysoundfont  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("synth_music renders with tinysoundfont: `pip install --no-deps tinysoundfont` "
                      "(its pyaudio requirement is for live playback only)") from e
  try:
    return _tinysoundfont.SoundFont(soundfont)
  except Exception as e:
    raise errors.DatasetError(f"{soundfont} is not a readable SF2/SF3 soundfont ({e})") from e


def _synth(soundfont: str, sample_rate: int):
  """A synthesizer in its initial state (no voices, default channels) that shares the
  parsed soundfont: TinySoundFont's copy constructor, made for independent playbacks.
  A track's released voices never reach the next track, so rendering is deterministic
  per track whatever was rendered before in the process."""
  from tinysoundfont import _tinysoundfont  # pylint: disable=import-outside-toplevel
  synth = _tinysoundfont.SoundFont(_parsed(soundfont))
  synth.set_output(_tinysoundfont.OutputMode.StereoInterleaved, sample_rate, -6.0)
  synth.set_max_voices(256)
  return synth


def render_notes(notes: list[Note], programs: Sequence[int], duration: float,
                 sample_rate: int, soundfont: str) -> np.ndarray:
  """Mono float32 audio of the note events, rendered with tinysoundfont."""
  synth = _synth(soundfont, sample_rate)
  for ch, program in enumerate(programs):
    if program >= 0:
      synth.channel_set_bank(ch, 0)
      synth.channel_set_preset_number(ch, program, False)
  synth.channel_set_bank(DRUM_CHANNEL, 128)
  synth.channel_set_preset_number(DRUM_CHANNEL, 0, True)
  events = []
  for onset, length, ch, key, velocity in notes:
    events.append((int(onset * sample_rate), 1, ch, key, velocity))
    events.append((int((onset + max(length, 0.03)) * sample_rate), 0, ch, key, 0))
  events.sort()
  total = int(duration * sample_rate)
  out = np.zeros((total, 2), np.float32)
  pos = 0
  for sample, is_on, ch, key, velocity in events:
    sample = min(sample, total)
    if sample > pos:
      synth.render(memoryview(out[pos:sample]).cast("B"))
      pos = sample
    if is_on:
      synth.channel_note_on(ch, key, velocity / 127.0)
    else:
      synth.channel_note_off(ch, key)
  if pos < total:
    synth.render(memoryview(out[pos:]).cast("B"))
  return out.mean(axis=1)


def produce(audio: np.ndarray, spec: TrackSpec, sample_rate: int) -> np.ndarray:
  """The era's production chain: band limits, tape drive, reverb, noise, loudness."""
  rng = np.random.default_rng(spec.seed + 104729)
  e = ERA_STYLE[spec.era]
  x = audio / (np.max(np.abs(audio)) + 1e-9)
  nyquist = sample_rate / 2
  sos = signal.butter(4, [e["highpass"] / nyquist, min(spec.cutoff / nyquist, 0.999)], "bandpass", output="sos")
  x = signal.sosfilt(sos, x)
  if spec.drive > 1.0:
    x = np.tanh(spec.drive * x) / np.tanh(spec.drive)
  if spec.reverb > 0:
    n = int(e["decay"] * sample_rate)
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / e["decay"])
    wet = signal.fftconvolve(x, ir)[: len(x)]
    x = (1 - spec.reverb) * x + spec.reverb * wet / (np.max(np.abs(wet)) + 1e-9)
  x = x / (np.max(np.abs(x)) + 1e-9)
  if spec.compress > 0:  # static compression towards a loud, flat envelope
    env = np.sqrt(signal.sosfilt(signal.butter(1, 10 / nyquist, output="sos"), x**2)) + 1e-4
    gain = (env / env.max()) ** (-0.6 * spec.compress)
    x = np.tanh(2.0 * spec.compress * x * gain / np.max(np.abs(x * gain)) + (1 - spec.compress) * x)
  # Hiss through the same band limits: the medium's noise does not extend its bandwidth.
  x = x + 10 ** (spec.noise_db / 20) * signal.sosfilt(sos, rng.standard_normal(len(x)))
  peak = {"1950s": 0.5, "1970s": 0.6, "1990s": 0.8, "2010s": 0.95}[spec.era]
  return (peak * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def render_track(spec: TrackSpec, sample_rate: int = 16000, soundfont: str | None = None) -> np.ndarray:
  """Mono int16 audio of a track spec (deterministic in the spec)."""
  soundfont = soundfont or default_soundfont()
  dry = render_notes(compose(spec), spec.programs, spec.duration, sample_rate, soundfont)
  if not np.any(np.abs(dry) > 1e-5):
    raise errors.DatasetError(f"soundfont {soundfont} rendered silence for programs {spec.programs}")
  wet = produce(dry, spec, sample_rate)
  return np.round(np.clip(wet, -1.0, 1.0) * 32767).astype(np.int16)
