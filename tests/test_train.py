"""Training: the loss falls, resume is exact, weights files round-trip, and eval runs end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from streamcodec.bench import synthetic_frame
from streamcodec.cli import main
from streamcodec.io import open_sink
from streamcodec.train import TrainConfig, Trainer, load_weights, save_weights
from streamcodec.train.card import build_card, data_manifest_hash
from streamcodec.train.data import CropSampler, detail


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        with open_sink(str(folder / f"im{i}.png"), 80, 72, None) as sink:
            sink.write(synthetic_frame(80, 72, seed=i))
    return folder


def config(images: Path, **kw: object) -> TrainConfig:
    return TrainConfig(data=str(images), crop=64, batch=2, lr=5e-4, log_every=1000, **kw)


def test_a_few_steps_lower_the_loss(images: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainer = Trainer(config(images), tmp_path / "ck.pt", torch.device("cpu"))
    x = trainer.sampler.batch(10_000, 2).float() / 255
    q = torch.tensor([10.0, 50.0])

    def fixed_loss() -> float:
        trainer.model.eval()
        torch.manual_seed(1)
        with torch.no_grad():
            return trainer.loss(x, q)[0].item()

    before = fixed_loss()
    for _ in range(12):
        trainer.train_step()
    assert fixed_loss() < 0.7 * before


def test_resume_gives_the_same_next_step(images: Path, tmp_path: Path) -> None:
    # with a warm-up longer than the first run: the resumed run continues the ramp instead of restarting it
    torch.manual_seed(0)
    straight = Trainer(config(images, warmup=4), tmp_path / "a.pt", torch.device("cpu"))
    losses = [straight.train_step()["loss"] for _ in range(5)]

    torch.manual_seed(0)
    first = Trainer(config(images, warmup=4), tmp_path / "b.pt", torch.device("cpu"))
    first.run(steps=2, log=lambda _: None)
    resumed = Trainer.resume_or_start(config(images), tmp_path / "b.pt", torch.device("cpu"))
    assert resumed.step == 2 and resumed.lr_factor() == 3 / 4
    assert [resumed.train_step()["loss"] for _ in range(3)] == losses[2:]
    assert resumed.segments and resumed.segments[0]["to_step"] == 2
    # weights with a fresh optimiser warm up again from their step
    save_weights(resumed.model.state_dict(), tmp_path / "w.safetensors", resumed.metadata())
    again = Trainer.from_weights(config(images, warmup=4), tmp_path / "c.pt", torch.device("cpu"),
                                 [tmp_path / "w.safetensors"])
    assert again.step == 5 and again.lr_factor() == 1 / 4


@pytest.mark.parametrize("poison", ["loss", "gradient"])
def test_a_non_finite_step_raises_before_the_weights_change(images: Path, tmp_path: Path, poison: str) -> None:
    torch.manual_seed(0)
    trainer = Trainer(config(images), tmp_path / "n.pt", torch.device("cpu"))
    trainer.run(steps=2, log=lambda _: None)
    good = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    clean_loss = trainer.loss
    param = next(trainer.model.parameters())

    def poisoned(x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss, stats = clean_loss(x, q)
        if poison == "loss":
            return loss * float("nan"), {**stats, "loss": float("nan")}
        return loss + 0 * torch.sqrt(param.sum() - param.sum()), stats  # finite loss, NaN gradient

    trainer.loss = poisoned  # type: ignore[method-assign]
    with pytest.raises(FloatingPointError, match=poison):
        trainer.run(steps=3, log=lambda _: None)
    saved = torch.load(tmp_path / "n.pt", weights_only=False)
    assert saved["step"] == 2
    assert all(torch.equal(saved["model"][k], v) for k, v in good.items())


def test_bf16_autocast_trains_the_transforms_in_bf16_on_the_cpu(images: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainer = Trainer(config(images), tmp_path / "f.pt", torch.device("cpu"), bf16=True)
    dtypes = []
    trainer.model.analysis.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    trainer.model.hyper_encoder.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    trainer.run(steps=2, log=lambda _: None)
    assert dtypes == [torch.bfloat16, torch.float32] * 2  # the entropy model stays fp32
    assert trainer.segments[-1]["precision"] == "bf16" and math.isfinite(trainer.train_step()["loss"])
    assert Trainer(config(images), tmp_path / "g.pt", torch.device("cpu")).bf16 is False  # CPU default: fp32


def test_crop_candidates_pick_the_most_detailed_crop(tmp_path: Path) -> None:
    folder = tmp_path / "flat_and_noise"
    folder.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "flat.png"), np.full((96, 96, 3), 128, np.uint8))
    cv2.imwrite(str(folder / "noise.png"), noise)

    def flat_patches(candidates: int) -> int:
        sampler = CropSampler(folder, 32, seed=3, candidates=candidates)
        patches = torch.cat([sampler.batch(step, 8) for step in range(8)])
        return int((patches.flatten(1).float().std(1) == 0).sum())

    plain, best_of_4 = flat_patches(1), flat_patches(4)
    assert 16 <= plain <= 48  # half of 64 patches, give or take
    assert best_of_4 < plain / 4  # flat only when all 4 candidates came from the flat image (1 in 16)
    assert detail(noise) > 100 and detail(np.full((8, 8, 3), 7, np.uint8)) == 0
    # a run's crop candidates are part of its config and may change when it resumes
    trainer = Trainer(config(folder, crop_candidates=4), tmp_path / "d.pt", torch.device("cpu"))
    trainer.run(steps=1, log=lambda _: None)
    assert trainer.sampler.candidates == 4 and trainer.segments[-1]["crop_candidates"] == 4
    resumed = Trainer.resume_or_start(config(folder), tmp_path / "d.pt", torch.device("cpu"), {"crop_candidates": 2})
    assert resumed.sampler.candidates == 2
    with pytest.raises(ValueError, match="candidates"):
        CropSampler(folder, 32, candidates=0)


def test_time_limit_stops_and_saves(images: Path, tmp_path: Path) -> None:
    trainer = Trainer(config(images), tmp_path / "c.pt", torch.device("cpu"))
    trainer.run(time_limit=0.0, log=lambda _: None)
    assert (tmp_path / "c.pt").exists() and trainer.step == 0


def test_weights_files_round_trip(tmp_path: Path, images: Path) -> None:
    trainer = Trainer(config(images), tmp_path / "d.pt", torch.device("cpu"))
    state = trainer.model.state_dict()
    shards = save_weights(state, tmp_path / "w.safetensors", trainer.metadata(), torch.float32, shard_bytes=8 << 20)
    assert len(shards) > 1 and all(p.stat().st_size <= (8 << 20) + (1 << 20) for p in shards)
    loaded, meta = load_weights(shards)
    assert meta["model"] == "evc-ss" and all(torch.equal(loaded[k], v) for k, v in state.items())
    resumed = Trainer.from_weights(config(images), tmp_path / "e.pt", torch.device("cpu"), shards)
    assert resumed.step == trainer.step
    card = build_card(meta, images, {"bd_rate_vs_x265": 1.0})
    assert card["data"]["manifest_sha256"] == data_manifest_hash(images) and card["kodak"]


def test_eval_runs_end_to_end(images: Path, tmp_path: Path, capsys) -> None:
    argv = ["eval", "--dataset", images, "--limit", "2", "--qps", "0,63", "--baselines", "jpeg",
            "--anchor", "jpeg", "--cache", tmp_path / "cache", "--plot", tmp_path / "rd.png", "--json"]
    assert main([str(a) for a in argv]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 2 and set(summary["curves"]) == {"evc-ss", "jpeg"}
    assert len(summary["curves"]["evc-ss"]["bpp"]) == 2 and (tmp_path / "rd.png").stat().st_size > 0
    assert "evc-ss" in summary["bd_rate_vs_jpeg"]


def test_train_export_and_pack_crops_report_json(images: Path, tmp_path: Path, capsys) -> None:
    ck = tmp_path / "run" / "checkpoint.pt"
    argv = ["train", "--checkpoint", ck, "--data", images, "--crop", "64", "--batch", "1", "--steps", "2",
            "--log-every", "1", "--export", tmp_path / "w.safetensors", "--json"]
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr()
    run = json.loads(out.out)  # stdout holds the summary alone; the progress went to stderr
    assert (run["from_step"], run["to_step"]) == (0, 2) and run["exported"] == [str(tmp_path / "w.safetensors")]
    assert run["last"]["step"] == 2 and math.isfinite(run["last"]["loss"]) and "step 2" in out.err
    assert main(["export", str(ck), "--out", str(tmp_path / "x.safetensors"), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["step"] == 2 and exported["bytes"] == (tmp_path / "x.safetensors").stat().st_size
    argv = ["pack-crops", images, tmp_path / "crops", "--size", "32", "--per-image", "2", "--json"]
    assert main([str(a) for a in argv]) == 0
    packed = json.loads(capsys.readouterr().out)
    assert packed["crops"] == 6 == len(list((tmp_path / "crops").glob("*.jpg")))
    assert packed["bytes"] == sum(p.stat().st_size for p in (tmp_path / "crops").glob("*.jpg"))


def test_export_average_writes_the_mean_of_the_saves(tmp_path: Path, capsys) -> None:
    saves = []
    for step, value in ((10, 1.0), (20, 2.0), (30, 6.0)):
        path = tmp_path / f"w{step}.safetensors"
        save_weights({"conv.weight": torch.full((2, 3), value), "bias": torch.tensor([value, -value])},
                     path, {"model": "evc-ss", "step": step}, torch.float32)
        saves.append(str(path))
    out = tmp_path / "mean.safetensors"
    assert main(["export", "--average", *saves, "--out", str(out), "--dtype", "fp32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["averaged_steps"] == [10, 20, 30]
    state, meta = load_weights([out])
    assert torch.equal(state["conv.weight"], torch.full((2, 3), 3.0))
    assert torch.equal(state["bias"], torch.tensor([3.0, -3.0]))
    assert meta["step"] == 30 and build_card(meta, None, None)["training"]["averaged_steps"] == [10, 20, 30]
    other = tmp_path / "other.safetensors"
    save_weights({"conv.weight": torch.zeros(4, 3), "bias": torch.zeros(2)}, other, {"step": 40}, torch.float32)
    assert main(["export", "--average", saves[0], str(other), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "cannot average weights of different models" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_keep_saves_leaves_each_save_for_export_average(images: Path, tmp_path: Path, capsys) -> None:
    ck, kept = tmp_path / "run" / "checkpoint.pt", tmp_path / "saves"
    argv = ["train", "--checkpoint", ck, "--data", images, "--crop", "64", "--batch", "1", "--steps", "3",
            "--save-every", "0", "--keep-saves", kept]
    assert main([str(a) for a in argv]) == 0
    saves = sorted(kept.glob("*.safetensors"))
    assert [p.name for p in saves] == [f"step-000000{i}.safetensors" for i in (1, 2, 3)]
    last, meta = load_weights([saves[-1]])
    model = torch.load(ck, map_location="cpu", weights_only=False)["model"]
    assert meta["step"] == 3 and all(torch.equal(last[k], model[k]) for k in model)
    first, _ = load_weights([saves[0]])
    assert any(not torch.equal(first[k], last[k]) for k in last)  # the saves are of different steps
    out = tmp_path / "mean.safetensors"
    capsys.readouterr()
    assert main(["export", "--average", *map(str, saves), "--out", str(out), "--dtype", "fp32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["averaged_steps"] == [1, 2, 3]
