"""``streamcodec eval``: rate-distortion of EVC models and classical codecs on an image set, with BD-rates."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

from .common import add_precision_option, configure_threads, positive_int, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="RD evaluation against JPEG, WebP, x264, x265, SVT-AV1", description=__doc__)
    p.add_argument("--dataset", type=Path, default=Path("../shared/data/kodak"), help="folder of PNG images")
    p.add_argument("--model", nargs="*", default=["evc-s"], help="EVC models to evaluate (none: baselines only)")
    p.add_argument("--weights", type=Path, nargs="+", help="weights instead of the shipped ones, one per --model")
    p.add_argument("--rdo", default="0",
                   help="block-masked models (evc-s-rdo): comma-separated RDO passes to evaluate (0: zero-pass)")
    p.add_argument("--mask-figure", type=Path,
                   help="draw the first image's block mask (first masked model, most RDO passes, middle qp) here")
    p.add_argument("--qps", default="0,8,16,24,32,40,48,56,63", help="comma-separated qps of the EVC sweep")
    p.add_argument("--baselines", default="jpeg,webp,x264,x265,svtav1", help="comma-separated, or 'none'")
    p.add_argument("--anchor", default="x265", help="BD-rate anchor codec")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument(
        "--cache",
        type=lambda s: Path(s) if s else None,
        default=Path(".cache/eval"),
        help="result cache folder ('' disables)",
    )
    p.add_argument("--plot", type=Path, help="write an RD plot here (png/pdf/svg)")
    p.add_argument("--device", default="auto")
    add_precision_option(p)
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch")
    p.add_argument("--per-image", action="store_true", help="also list every (codec, setting, image) point")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..codec.masked import MaskedEVC
    from ..codec.registry import load_model, resolve_device
    from ..evaluate import EVC_PAPER_KODAK, bd_rate, evaluate, get_baseline, plot_rd
    from ..evaluate.neural import NeuralCodec

    configure_threads(args.threads)
    if args.weights and len(args.weights) != len(args.model):
        raise ValueError("--weights needs one file per --model")
    images = sorted(p for p in args.dataset.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not images:
        raise FileNotFoundError(f"no images in {args.dataset}")
    images = images[: args.limit]
    qps = [float(q) for q in args.qps.split(",")]
    device = resolve_device(args.device)
    passes = sorted({int(r) for r in args.rdo.split(",")})
    if not set(passes) <= {0, 1, 2}:
        raise ValueError(f"--rdo takes passes 0, 1 and 2, not {args.rdo!r}")
    weights = args.weights or [None] * len(args.model)
    models = [load_model(m, device, w, args.precision) for m, w in zip(args.model, weights)]
    codecs: list[Any] = [
        NeuralCodec(model, qps, rdo) for model in models for rdo in (passes if isinstance(model, MaskedEVC) else [0])
    ]
    if args.baselines != "none":
        codecs += [get_baseline(name) for name in args.baselines.split(",")]
    results = evaluate(codecs, images, args.cache, progress=not args.json)

    curves = results.curves()
    summary: dict[str, Any] = {
        "dataset": str(args.dataset),
        "images": len(images),
        "curves": {
            name: {"settings": c.settings, "bpp": c.bpp, "psnr": c.psnr, "ms_ssim": c.ms_ssim}
            for name, c in curves.items()
        },
    }
    if args.anchor in curves:
        summary[f"bd_rate_vs_{args.anchor}"] = _clean(results.bd_rates(args.anchor))
    if "jpeg" in curves:
        summary["bd_rate_vs_jpeg"] = _clean(results.bd_rates("jpeg"))
    paper_rates, paper_psnr = EVC_PAPER_KODAK["EVC-SS (paper)"]
    summary["bd_rate_vs_paper_evc_ss"] = _clean(
        {name: _safe_bd(paper_rates, paper_psnr, c.bpp, c.psnr, bd_rate) for name, c in curves.items()}
    )
    if args.mask_figure:
        masked = [m for m in models if isinstance(m, MaskedEVC)]
        if not masked:
            raise ValueError("--mask-figure needs a block-masked model (e.g. evc-s-rdo)")
        q = qps[len(qps) // 2]
        summary["mask_figure"] = write_mask_figure(masked[0], images[0], q, passes[-1], args.mask_figure)
    if args.per_image:
        summary["points"] = [dataclasses.asdict(p) for p in results.points]
    if args.plot:
        plot_rd(results, args.plot, EVC_PAPER_KODAK, title=f"{args.dataset.name} ({len(images)} images)")
        summary["plot"] = str(args.plot)
    if args.json:
        print_json(summary)
        return 0
    for name, c in curves.items():
        points = "  ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(c.bpp, c.psnr))
        print(f"{name:>12}: {points}   (bpp/PSNR dB)")
    for key in ("bd_rate_vs_" + args.anchor, "bd_rate_vs_jpeg", "bd_rate_vs_paper_evc_ss"):
        if key in summary:
            print(key + ": " + ", ".join(f"{n} {v:+.1f}%" if v is not None else f"{n} n/a"
                                         for n, v in summary[key].items()))
    return 0


def write_mask_figure(model: Any, image: Path, q: float, rdo: int, out: Path) -> dict[str, Any]:
    """Draw the mask ``model`` chooses for ``image`` at quality ``q`` with ``rdo`` passes; describe it."""
    from ..codec.stream import to_tensor
    from ..evaluate.maskfig import save_mask_figure
    from ..train.data import read_rgb

    rgb = read_rgb(image)
    mask = model.choose_mask(to_tensor(rgb, model.q_basic.device), q, rdo).cpu().numpy()
    save_mask_figure(out, rgb, mask)
    shares = [round(float((mask == level).mean()), 4) for level in range(3)]
    return {"path": str(out), "image": image.name, "qp": q, "rdo": rdo, "level_shares": shares}


def _safe_bd(ra: list[float], pa: list[float], rb: list[float], pb: list[float], fn: Any) -> float:
    try:
        return fn(ra, pa, rb, pb)
    except ValueError:
        return math.nan


def _clean(values: dict[str, float]) -> dict[str, float | None]:
    """NaN (no PSNR overlap) as null, so the JSON stays standard."""
    return {k: (None if math.isnan(v) else round(v, 2)) for k, v in values.items()}
