"""Rate–distortion sweeps: every codec at every setting on every image, cached on disk."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..train.data import read_rgb
from .baselines import Codec, Setting
from .bdrate import bd_rate
from .metrics import bpp, ms_ssim, psnr

# Part of every cache key: bump it when RDPoint's fields or the metrics' definitions change.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class RDPoint:
    """One codec at one setting on one image."""

    codec: str
    setting: Setting
    image: str
    nbytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    seconds: float  # encode + decode wall time when it was measured (kept from the cache on reruns)


@dataclass(frozen=True)
class RDCurve:
    """A codec's average curve: per setting, the mean over images of bpp, PSNR and MS-SSIM; sorted by bpp."""

    codec: str
    settings: list[Setting]
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float]


@dataclass
class RDResults:
    """All points of a sweep, with the per-codec average curves derived from them."""

    points: list[RDPoint]

    def codecs(self) -> list[str]:
        """Codec names in the order they were evaluated."""
        return list(dict.fromkeys(p.codec for p in self.points))

    def curve(self, codec: str) -> RDCurve:
        """Mean bpp / PSNR / MS-SSIM over images for each setting of ``codec`` (as Kodak results are reported)."""
        by_setting: dict[Setting, list[RDPoint]] = {}
        for p in self.points:
            if p.codec == codec:
                by_setting.setdefault(p.setting, []).append(p)
        if not by_setting:
            raise ValueError(f"no results for codec {codec!r}; have {', '.join(self.codecs())}")
        rows = sorted(
            (
                float(np.mean([p.bpp for p in pts])),
                float(np.mean([p.psnr for p in pts])),
                float(np.mean([p.ms_ssim for p in pts])),
                setting,
            )
            for setting, pts in by_setting.items()
        )
        return RDCurve(
            codec=codec,
            settings=[r[3] for r in rows],
            bpp=[r[0] for r in rows],
            psnr=[r[1] for r in rows],
            ms_ssim=[r[2] for r in rows],
        )

    def curves(self) -> dict[str, RDCurve]:
        """:meth:`curve` of every codec."""
        return {name: self.curve(name) for name in self.codecs()}

    def bd_rates(self, anchor: str = "x265") -> dict[str, float]:
        """BD-rate (%, PSNR, average curves) of every other codec relative to ``anchor``.

        A codec whose curve does not overlap the anchor's in PSNR (or is otherwise unusable) gets NaN.
        """
        ref = self.curve(anchor)
        out: dict[str, float] = {}
        for name, c in self.curves().items():
            if name == anchor:
                continue
            try:
                out[name] = bd_rate(ref.bpp, ref.psnr, c.bpp, c.psnr)
            except ValueError:
                out[name] = math.nan
        return out

    def to_json(self) -> str:
        """JSON with every point and the average curves (:meth:`from_json` reads it back)."""
        return json.dumps(
            {
                "points": [asdict(p) for p in self.points],
                "curves": {name: asdict(c) for name, c in self.curves().items()},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> RDResults:
        """Results saved by :meth:`to_json`."""
        return cls([RDPoint(**p) for p in json.loads(text)["points"]])


def _cache_file(cache_dir: Path, key: list) -> Path:
    return cache_dir / f"{hashlib.sha1(json.dumps(key).encode()).hexdigest()}.json"


def _read_cached(file: Path, key: list, image: str) -> RDPoint | None:
    if not file.exists():
        return None
    entry = json.loads(file.read_text())
    return RDPoint(**{**entry["point"], "image": image}) if entry["key"] == key else None


def _write_cached(file: Path, key: list, point: RDPoint) -> None:
    # Write then rename, so an interrupted run never leaves a truncated entry behind.
    tmp = file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "point": asdict(point)}))
    os.replace(tmp, file)


def _measure(codec: Codec, setting: Setting, img: np.ndarray, image: str) -> RDPoint:
    t0 = time.perf_counter()
    nbytes, rec = codec.code(img, setting)
    seconds = time.perf_counter() - t0
    if rec.shape != img.shape or rec.dtype != np.uint8:
        raise ValueError(f"{codec.name} returned a {rec.dtype} {rec.shape} reconstruction for a {img.shape} image")
    return RDPoint(
        codec=codec.name,
        setting=setting,
        image=image,
        nbytes=int(nbytes),
        bpp=bpp(nbytes, img.shape[0], img.shape[1]),
        psnr=psnr(img, rec),
        ms_ssim=ms_ssim(img, rec),
        seconds=seconds,
    )


def evaluate(
    codecs: Sequence[Codec], images: Sequence[Path], cache_dir: Path | None = None, progress: bool = True
) -> RDResults:
    """Run every codec at every one of its settings on every image.

    With ``cache_dir``, each (codec name, codec version, setting, image content SHA-1) result is stored as
    one JSON file there (named by the key's hash, :data:`CACHE_FORMAT` included) and reused on later runs,
    so only new codecs, settings or images cost time.
    """
    names = [c.name for c in codecs]
    if len(set(names)) != len(names):
        raise ValueError(f"codec names must be unique, got {names}")
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    points: list[RDPoint] = []
    total = len(images) * sum(len(c.settings) for c in codecs)
    with tqdm(total=total, disable=not progress, unit="code") as bar:
        for path in map(Path, images):
            sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
            img: np.ndarray | None = None  # decoded only when some result is not cached
            for codec in codecs:
                bar.set_description(f"{codec.name} {path.name}")
                for setting in codec.settings:
                    key = [CACHE_FORMAT, codec.name, codec.version, setting, sha1]
                    file = _cache_file(cache_dir, key) if cache_dir is not None else None
                    point = _read_cached(file, key, path.name) if file is not None else None
                    if point is None:
                        if img is None:
                            img = read_rgb(path)
                        point = _measure(codec, setting, img, path.name)
                        if file is not None:
                            _write_cached(file, key, point)
                    points.append(point)
                    bar.update()
    return RDResults(points)
