"""Tests of streamcodec.evaluate: metrics, BD-rate, baseline codecs, cached sweeps, plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamcodec.evaluate import (
    BASELINES,
    EVC_PAPER_KODAK,
    Codec,
    JpegCodec,
    RDResults,
    WebpCodec,
    bd_psnr,
    bd_rate,
    bpp,
    evaluate,
    get_baseline,
    ms_ssim,
    plot_rd,
    psnr,
)
from streamcodec.evaluate.metrics import ms_scales


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A small photo-like RGB image: smooth gradients, an edge and mild texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([80 + 100 * x / w, 60 + 120 * y / h, 150 + 60 * np.sin(x / 5 + y / 7)], axis=-1)
    img[h // 3 :, w // 2 :] *= 0.5
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# --- BD-rate -------------------------------------------------------------------------------------


def test_bd_rate_constant_rate_ratio() -> None:
    psnr_a = [30.0, 33.0, 35.0, 38.0]
    rate_a = [0.2, 0.45, 0.7, 1.3]
    assert bd_rate(rate_a, psnr_a, [0.8 * r for r in rate_a], psnr_a) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(rate_a, psnr_a, rate_a, psnr_a) == pytest.approx(0.0, abs=1e-12)
    # Point order does not matter.
    assert bd_rate(rate_a[::-1], psnr_a[::-1], [0.8 * r for r in rate_a], psnr_a) == pytest.approx(-20.0)


def test_bd_shifted_curves_partial_overlap() -> None:
    # log10(rate) is linear in PSNR (rate doubles every 2 dB) and PCHIP reproduces lines exactly. B reaches
    # each rate with 1 dB more: over the shared PSNR range [31, 36] it needs 2**-0.5 of A's rate and, over
    # the shared log-rate range, has exactly 1 dB more.
    rates = [0.1, 0.2, 0.4, 0.8]
    psnr_a, psnr_b = [30.0, 32.0, 34.0, 36.0], [31.0, 33.0, 35.0, 37.0]
    assert bd_rate(rates, psnr_a, rates, psnr_b) == pytest.approx((2**-0.5 - 1) * 100, abs=1e-9)
    assert bd_psnr(rates, psnr_a, rates, psnr_b) == pytest.approx(1.0, abs=1e-9)
    assert bd_rate(rates, psnr_b, rates, psnr_a) == pytest.approx((2**0.5 - 1) * 100, abs=1e-9)


def test_bd_rate_known_integral() -> None:
    # Over [30, 40] dB, log10(rate_b / rate_a) grows linearly from 0 to log10(0.5): its mean is
    # log10(0.5) / 2, so BD-rate = (sqrt(0.5) - 1) * 100 %. A has 3 collinear points, B 2.
    rate_a, psnr_a = [0.1, 10**-0.5, 1.0], [30.0, 35.0, 40.0]
    rate_b, psnr_b = [0.1, 0.5], [30.0, 40.0]
    assert bd_rate(rate_a, psnr_a, rate_b, psnr_b) == pytest.approx((0.5**0.5 - 1) * 100, abs=1e-9)


@pytest.mark.parametrize(
    ("rate_a", "psnr_a", "rate_b", "psnr_b"),
    [
        ([0.5], [30.0], [0.4, 0.8], [30.0, 33.0]),  # one point
        ([0.1, 0.2], [20.0, 22.0], [0.4, 0.8], [30.0, 33.0]),  # no PSNR overlap
        ([0.1, 0.2], [30.0, 30.0], [0.4, 0.8], [30.0, 33.0]),  # repeated PSNR
        ([0.0, 0.2], [30.0, 32.0], [0.4, 0.8], [30.0, 33.0]),  # zero rate
    ],
)
def test_bd_rate_rejects_bad_curves(rate_a, psnr_a, rate_b, psnr_b) -> None:
    with pytest.raises(ValueError):
        bd_rate(rate_a, psnr_a, rate_b, psnr_b)


# --- metrics -------------------------------------------------------------------------------------


def test_psnr_known_values() -> None:
    a = _photo(48, 64)
    assert psnr(a, a) == math.inf
    b = np.clip(a.astype(np.int16) + 5, 0, 255).astype(np.uint8)
    err = b.astype(np.float64) - a
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / np.mean(err**2)))
    flat = np.full((4, 4, 3), 100, np.uint8)
    assert psnr(flat, flat + 5) == pytest.approx(10 * math.log10(255**2 / 25))
    with pytest.raises(ValueError):
        psnr(a, a[:, :-1])


def test_bpp() -> None:
    assert bpp(1000, 100, 80) == pytest.approx(1.0)
    assert bpp(49152, 512, 768) == pytest.approx(1.0)


def test_ms_scales() -> None:
    assert ms_scales(512, 768) == 5
    assert ms_scales(161, 161) == 5
    assert ms_scales(160, 400) == 4
    assert ms_scales(48, 64) == 3
    with pytest.raises(ValueError):
        ms_scales(10, 64)


@pytest.mark.parametrize("shape", [(48, 64), (47, 65), (176, 180)])
def test_ms_ssim_identity_and_noise(shape: tuple[int, int]) -> None:
    a = _photo(*shape)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(1)
    scores = [
        ms_ssim(a, np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)) for sigma in (2, 8, 30)
    ]
    assert 1.0 > scores[0] > scores[1] > scores[2] > 0.0
    # Floats in [0, 1] are accepted too and give the same value.
    assert ms_ssim(a / 255.0, a / 255.0) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_matches_pytorch_msssim() -> None:
    # Reference: pytorch_msssim 1.0.0, ms_ssim(data_range=1.0) on the same float64 images (5 scales, odd sides).
    a = _photo(170, 181)
    b = np.clip(a + np.random.default_rng(3).normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(a, b) == pytest.approx(0.9265158271179339, abs=1e-6)


# --- baseline codecs -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(48, 64), (47, 65)])
@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_codes_tiny_image(name: str, shape: tuple[int, int]) -> None:
    codec = get_baseline(name)
    assert isinstance(codec, Codec)
    img = _photo(*shape)
    low, high = codec.settings[1], codec.settings[-2]  # settings go from low to high quality
    n_low, rec_low = codec.code(img, low)
    n_high, rec_high = codec.code(img, high)
    for rec in (rec_low, rec_high):
        assert rec.shape == img.shape and rec.dtype == np.uint8
    assert 0 < n_low < n_high
    assert 15.0 < psnr(img, rec_low) < psnr(img, rec_high)
    assert psnr(img, rec_high) > 28.0


@pytest.mark.parametrize("name", ["x264", "x265", "svtav1"])
def test_video_baselines_pad_tiny_images(name: str) -> None:
    # libx265 refuses pictures under 16x16: the codec pads and crops back.
    img = _photo(9, 13)
    n, rec = get_baseline(name).code(img, 26)
    assert n > 0 and rec.shape == img.shape
    assert psnr(img, rec) > 20.0


def test_get_baseline_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match="x265"):
        get_baseline("bpg")


def test_baseline_versions_differ_by_parameters() -> None:
    assert get_baseline("x264").version != type(get_baseline("x264"))(preset="medium").version


# --- RD sweep, cache, plot -----------------------------------------------------------------------


@pytest.fixture
def two_images(tmp_path: Path) -> list[Path]:
    paths = []
    for i, shape in enumerate([(48, 64), (47, 65)]):
        path = tmp_path / f"img{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(_photo(*shape, seed=i), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def test_evaluate_end_to_end_with_cache(tmp_path: Path, two_images: list[Path], monkeypatch) -> None:
    codecs = [JpegCodec(settings=(20, 50, 90)), WebpCodec(settings=(20, 50, 90))]
    cache = tmp_path / "cache"
    results = evaluate(codecs, two_images, cache_dir=cache, progress=False)
    assert len(results.points) == 2 * 2 * 3
    assert len(list(cache.glob("*.json"))) == 12
    assert results.codecs() == ["jpeg", "webp"]

    curve = results.curve("jpeg")
    assert curve.settings == [20, 50, 90]  # sorted by mean bpp
    assert curve.bpp == sorted(curve.bpp)
    expected = np.mean([p.bpp for p in results.points if p.codec == "jpeg" and p.setting == 50])
    assert curve.bpp[1] == pytest.approx(expected)
    assert all(p.seconds >= 0 and 0 < p.ms_ssim <= 1 for p in results.points)
    assert set(results.bd_rates(anchor="jpeg")) == {"webp"}

    # JSON round trip.
    again = RDResults.from_json(results.to_json())
    assert again.points == results.points
    assert json.loads(results.to_json())["curves"]["webp"]["settings"] == [20, 50, 90]

    # Second run: everything comes from the cache, no codec runs.
    for cls in (JpegCodec, WebpCodec):
        monkeypatch.setattr(cls, "code", lambda self, img, setting: pytest.fail("cache miss"))
    cached = evaluate(codecs, two_images, cache_dir=cache, progress=False)
    assert cached.points == results.points

    # A new codec version is a cache miss.
    monkeypatch.setattr(JpegCodec, "version", property(lambda self: "other"))
    with pytest.raises(pytest.fail.Exception, match="cache miss"):
        evaluate(codecs[:1], two_images, cache_dir=cache, progress=False)


def test_evaluate_rejects_duplicate_names(two_images: list[Path]) -> None:
    with pytest.raises(ValueError, match="unique"):
        evaluate([JpegCodec(), JpegCodec()], two_images, cache_dir=None, progress=False)


def test_plot_rd_writes_png(tmp_path: Path, two_images: list[Path]) -> None:
    results = evaluate([JpegCodec(settings=(30, 70))], two_images, cache_dir=None, progress=False)
    out = tmp_path / "rd.png"
    plot_rd(results, out, reference_curves=EVC_PAPER_KODAK)
    assert out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
