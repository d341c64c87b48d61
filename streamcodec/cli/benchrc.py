"""``streamcodec bench-rc``: rate-control accuracy on real clips (ABR error, CBR VBV underflows at 1 s and 3-frame
buffers, 1-s windows, convergence after a cold start and a scene cut, PSNR stability vs CQP, probe time)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..codec.masked import MaskedEVC
from ..codec.registry import load_model, resolve_device
from ..ratecontrol.benchmark import bench_clip, clip_paths, load_clip, pick_cut_partner, plot_clip
from .common import add_model_options, configure_threads, parse_size, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-rc", help="benchmark rate control (ABR/CBR accuracy, VBV, convergence)",
                       description=__doc__)
    add_model_options(p)
    p.add_argument("--clips", default="../shared/data/video", help="folder of clips, or one clip")
    p.add_argument("--select", help="comma-separated substrings: only clips whose name contains one")
    p.add_argument("--scale", type=parse_size, default=(320, 176), help="resize frames to WxH (default 320x176)")
    p.add_argument("--native", action="store_true", help="keep the clips' own size (overrides --scale)")
    p.add_argument("--frames", type=int, default=300, help="frames per clip (default 300)")
    p.add_argument("--min-frames", type=int,
                   help="extend shorter clips ping-pong to this many frames (default: --frames; 0: never)")
    p.add_argument("--targets", default="q32",
                   help="comma-separated targets: qNN (the rate CQP at q=NN gives on the clip) or bitrates "
                        "such as 300k (default q32)")
    p.add_argument("--cut-frames", type=int, default=30,
                   help="frames of each clip in the scene-cut sequence (the clip, then the other clip whose rates "
                        "overlap most; 0: no cut test)")
    p.add_argument("--json", action="store_true", help="print the full results as JSON")
    p.add_argument("--plot", type=Path, help="folder for per-clip plots (bits vs budget, q, buffer fullness)")
    p.set_defaults(run=run)


def _fmt(v: object, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def _print_table(results: list[dict]) -> None:
    head = ("clip", "frames", "kb/s", "reach kb/s", "ABR err", "2-pass err", "CBR1s u/o", "CBR1s win", "CBR3f u/o",
            "CBR3f win", "conv cold a/1s/3f", "conv cut a/1s/3f/m", "PSNR std A/2p/C", "probe ms", "probes")
    rows = []
    for r in results:
        c1, c3, a, a2 = r["cbr_1s"], r["cbr_3f"], r["abr"], r["abr_2pass"]
        cut = r.get("scene_cut", {})
        cc = "/".join(_fmt(cut.get(k, {}).get("convergence_cut")) for k in ("abr", "cbr_1s", "cbr_3f",
                                                                              "abr_model_only"))
        rows.append((
            r["clip"][:28] + ("*" if r["looped"] else ""),
            str(r["frames"]),
            f"{r['target_bps'] / 1e3:.1f}",
            "{:.0f}..{:.0f}".format(*(v / 1e3 for v in r["reachable_bps"])),
            f"{100 * a['error']:+.2f}%",
            f"{100 * a2['error']:+.2f}%",
            f"{c1['underflows']}({c1['underflows_at_qmin']})/{c1['overflows']}",
            "{:+.1f}..{:+.1f}%".format(*(100 * (w - 1) for w in c1["window_1s"])),
            f"{c3['underflows']}({c3['underflows_at_qmin']})/{c3['overflows']}",
            "{:+.1f}..{:+.1f}%".format(*(100 * (w - 1) for w in c3["window_1s"])),
            "/".join(_fmt(x.get("convergence_cold")) for x in (a, c1, c3)),
            cc if cut else "-",
            f"{_fmt(a.get('psnr_std_ratio_vs_cqp'), '.2f')}/{_fmt(a2.get('psnr_std_ratio_vs_cqp'), '.2f')}",
            f"{a['probe_ms_per_frame']:.0f}",
            f"{a['probes_per_frame']:.2f}",
        ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    print("reach: max rate at the lowest q .. min rate at the highest over the frames (a constant per-frame budget "
          "fits every frame only inside it); u(qmin)/o: VBV underflows (of them at the lowest q, i.e. not avoidable "
          "by q)/overflows; win: range "
          "of sliding 1-s windows vs target; conv: frames until 5 in a row within ±10% of budget (a=ABR, 1s/3f=CBR, "
          "m=ABR without probes); PSNR std A/2p/C: one-pass and two-pass ABR ÷ CQP at the same rate;"
          " probe ms: rate-probe time per frame (ABR); * = clip extended ping-pong")


def run(args: argparse.Namespace) -> int:
    configure_threads(args.threads)
    device = resolve_device(args.device)
    model = load_model(args.model, device, args.weights, args.precision)
    if isinstance(model, MaskedEVC):  # its probes and coding would need the per-frame mask search too
        raise ValueError(f"bench-rc measures rate control with a plain model, not the block-masked {model.name!r}")
    paths = clip_paths(args.clips)
    if args.select:
        keys = [k.strip() for k in args.select.split(",") if k.strip()]
        paths = [p for p in paths if any(k in p.name for k in keys)]
        if not paths:
            raise ValueError(f"no clip in {args.clips} matches --select {args.select}")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    scale = None if args.native else args.scale
    min_frames = args.frames if args.min_frames is None else args.min_frames

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    clips = []
    for path in paths:
        say(f"loading {path.name}")
        clips.append(load_clip(path, model, scale, args.frames, min_frames))
    if args.plot:
        args.plot.mkdir(parents=True, exist_ok=True)
    results = []
    for clip in clips:
        nxt = pick_cut_partner(model, clip, clips, args.cut_frames) if args.cut_frames > 0 else None
        for target in targets:
            summary, passes = bench_clip(model, clip, target, nxt, args.cut_frames, progress=say)
            results.append(summary)
            if args.plot:
                safe = target.replace("/", "_")
                plot_clip(summary, passes, args.plot / f"rc_{clip.name}_{safe}.png")
    out = {
        "model": model.name,
        "device": str(device),
        "scale": None if scale is None else f"{scale[0]}x{scale[1]}",
        "seconds": time.perf_counter() - start,
        "results": results,
    }
    if args.json:
        print_json(out)
    else:
        _print_table(results)
        errs = [abs(r["abr"]["error"]) for r in results if r["frames"] >= 300]
        if errs:
            print(f"ABR |error| over clips of >= 300 frames: mean {100 * sum(errs) / len(errs):.2f}%, "
                  f"worst {100 * max(errs):.2f}%")
    return 0


__all__ = ["add_parser", "run"]
