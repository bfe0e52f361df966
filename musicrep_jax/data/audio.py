"""Decoding, checking and writing audio files.

Every format in `AUDIO_EXTENSIONS` is read: libsndfile (python-soundfile) decodes the
formats it knows, which it does faster than FFmpeg (`python scripts/bench_decode.py`
measures both on the same files: docs/PERFORMANCE.md), and PyAV, whose wheels bundle
FFmpeg, decodes the rest (AAC/M4A, Opus, WMA, WebM/Matroska) and whatever libsndfile
fails on. The dataset builders and `search` use this one list and this one decoder.
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf
import soxr

from musicrep_jax import errors
from musicrep_jax.data.features import SAMPLE_RATE

# Decoded by libsndfile first (faster; measured), then by FFmpeg if libsndfile fails.
SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
# Decoded by FFmpeg (PyAV).
FFMPEG_EXTENSIONS = (".opus", ".m4a", ".mp4", ".aac", ".wma", ".webm", ".mka")
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS + FFMPEG_EXTENSIONS


class BadAudio(errors.UserError):
  """A file that cannot be used; the message says why."""


def is_audio(path: str) -> bool:
  return path.lower().endswith(AUDIO_EXTENSIONS)


def unsupported_reason(path: str) -> str:
  ext = os.path.splitext(path)[1].lower() or "(no extension)"
  return f"not a supported audio format ({ext}; supported: {' '.join(AUDIO_EXTENSIONS)})"


def _read_soundfile(path: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
  """[frames, channels] float32 and the sample rate (the middle `max_seconds`)."""
  info = sf.info(path)
  if info.frames <= 0 or info.samplerate <= 0:
    raise BadAudio("empty file (no audio frames)")
  start, frames = 0, -1
  if max_seconds is not None and info.frames > max_seconds * info.samplerate:
    frames = int(max_seconds * info.samplerate)
    start = (info.frames - frames) // 2
  return sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)


def _read_ffmpeg(path: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
  """As _read_soundfile, through FFmpeg. Decodes from the start and counts samples (seeking
  is inexact in streams without an index, such as raw AAC), keeping only the middle."""
  import av  # pylint: disable=import-outside-toplevel
  with av.open(path) as container:
    if not container.streams.audio:
      raise BadAudio("not a readable audio file (it has no audio stream)")
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate or stream.rate
    total = container.duration / 1e6 if container.duration else None
    start = 0
    if max_seconds is not None and total is not None and total > max_seconds:
      start = int((total - max_seconds) / 2 * rate)
    keep = None if max_seconds is None else int(max_seconds * rate)
    to_float = av.AudioResampler(format="fltp")  # planar float, same layout and rate
    chunks, seen, kept = [], 0, 0
    for frame in container.decode(stream):
      for f in to_float.resample(frame):
        x = f.to_ndarray()
        lo = max(start - seen, 0)
        seen += x.shape[1]
        if lo < x.shape[1]:
          chunks.append(x[:, lo:])
          kept += x.shape[1] - lo
      if keep is not None and kept >= keep:
        break
    if not chunks:
      raise BadAudio("empty file (no audio frames)")
    x = np.concatenate(chunks, axis=1).T  # [frames, channels]
    return np.ascontiguousarray(x[:keep] if keep is not None else x, np.float32), rate


def decode(path: str, *, sample_rate: int = SAMPLE_RATE, min_seconds: float = 3.0,
           max_seconds: float | None = 30.0) -> np.ndarray:
  """Mono int16 audio of a file at `sample_rate`; raises BadAudio with the reason.

  Multi-channel audio is averaged, other sample rates are resampled (soxr), files longer
  than `max_seconds` keep their middle `max_seconds`.
  """
  if not is_audio(path):
    raise BadAudio(unsupported_reason(path))
  readers = ([_read_soundfile, _read_ffmpeg] if path.lower().endswith(SOUNDFILE_EXTENSIONS) else [_read_ffmpeg])
  error = None  # the last reader's (FFmpeg's, which tells more than libsndfile's)
  for read in readers:
    try:
      x, sr = read(path, max_seconds)
      break
    except BadAudio:
      raise
    except Exception as e:  # pylint: disable=broad-except  # decoders raise many types for a bad file
      error = e
  else:
    msg = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise BadAudio(f"not a readable audio file ({msg[:200]})") from error
  if x.shape[0] == 0:
    raise BadAudio("empty file (no audio frames)")
  if not np.all(np.isfinite(x)):
    raise BadAudio("samples contain NaN or infinity")
  x = x.mean(axis=1)
  if sr != sample_rate:
    x = soxr.resample(x, sr, sample_rate)
  if len(x) < min_seconds * sample_rate:
    raise BadAudio(f"too short ({len(x) / sample_rate:.2f} s; at least {min_seconds:g} s needed)")
  peak = float(np.max(np.abs(x)))
  if peak < 1e-4:
    raise BadAudio("silent (peak below -80 dBFS)")
  return np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def decode_all(paths: list[str], **kwargs) -> tuple[list[np.ndarray], list[int], dict[str, str]]:
  """decode() of each path: (the tracks that decode, their indices in `paths`, {path: why}
  of those that do not)."""
  tracks, kept, skipped = [], [], {}
  for i, path in enumerate(paths):
    try:
      tracks.append(decode(path, **kwargs))
      kept.append(i)
    except BadAudio as e:
      skipped[path] = str(e)
  return tracks, kept, skipped


# Writers for encode(): libsndfile's formats, and FFmpeg (container, codec) for the rest.
_FFMPEG_WRITERS = {".mp3": ("mp3", "libmp3lame"), ".opus": ("ogg", "libopus"), ".m4a": ("ipod", "aac"),
                   ".mp4": ("mp4", "aac"), ".aac": ("adts", "aac"), ".wma": ("asf", "wmav2"),
                   ".webm": ("webm", "libopus"), ".mka": ("matroska", "aac")}
_SOUNDFILE_WRITERS = {".oga": "OGG", ".aif": "AIFF"}


def encode(path: str, audio: np.ndarray, sample_rate: int) -> None:
  """Writes float audio in [-1, 1] ([frames] or [frames, channels]) in the format of the
  path's extension (tests, benchmarks and exports)."""
  x = np.asarray(audio, np.float32)
  x = x[:, None] if x.ndim == 1 else x
  ext = os.path.splitext(path)[1].lower()
  if ext not in _FFMPEG_WRITERS:
    # In blocks: libsndfile 1.2's Vorbis encoder crashes on one large write (seen with 60 s).
    with sf.SoundFile(path, "w", sample_rate, x.shape[1], format=_SOUNDFILE_WRITERS.get(ext)) as out:
      for start in range(0, len(x), 1 << 15):
        out.write(x[start: start + (1 << 15)])
    return
  import av  # pylint: disable=import-outside-toplevel
  fmt, codec = _FFMPEG_WRITERS[ext]
  layout = "mono" if x.shape[1] == 1 else "stereo"
  with av.open(path, "w", format=fmt) as container:
    rate = 48000 if codec == "libopus" else sample_rate
    stream = container.add_stream(codec, rate=rate, layout=layout)
    stream.bit_rate = 128000
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout=layout)
    frame.sample_rate = sample_rate
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate,
                                  frame_size=stream.codec_context.frame_size or None)
    for f in [*resampler.resample(frame), *resampler.resample(None)]:
      for packet in stream.encode(f):
        container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)
