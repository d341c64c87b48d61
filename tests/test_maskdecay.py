"""Mask decay: the sparsity loss, the decay, exact pruning, resumable training; and the MS-SSIM training option."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from streamcodec.bench import synthetic_frame
from streamcodec.cli import main
from streamcodec.codec.evc import EVC
from streamcodec.codec.registry import create_model, load_model
from streamcodec.io import open_sink
from streamcodec.train import TrainConfig, Trainer, save_weights
from streamcodec.train.loop import DEFAULT_MS_SSIM_LAMBDAS
from streamcodec.train.maskdecay import MaskDecayConfig, attach_masks, prune, pruned_state, sparsity_loss

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i in range(3):
        with open_sink(str(folder / f"im{i}.png"), 80, 72, None) as sink:
            sink.write(synthetic_frame(80, 72, seed=i))
    return folder


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained) evc-mm teacher as a weights file with its training metadata."""
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    save_weights(create_model("evc-mm").state_dict(), path, {"model": "evc-mm", "step": 0}, torch.float32)
    return path


def test_sparsity_loss_values_and_gradients() -> None:
    x = torch.tensor([0.0, 0.5, 1.0, 2.0], requires_grad=True)
    loss = sparsity_loss(x)
    # -x^2/2 + x on [0, 1], x^2/2 - x + 1 above; gradient |x - 1|.
    assert loss.tolist() == [0.0, 0.375, 0.5, 1.0]
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert grad.tolist() == [1.0, 0.5, 0.0, 1.0]


def test_masks_cover_the_narrowed_channels_and_decay_to_zero() -> None:
    model = EVC("m", "m", n=16)
    masks = attach_masks(model, "evc-ss")
    # M -> S narrows c2 and c4 from 128 to 64 and c8 from 192 to 128 (and 4x that in the feed-forward layers).
    kept = {k: (int(m.keep.sum()), len(m.keep)) for k, m in masks.spaces.items()}
    assert kept["analysis_stream0"] == (64, 128) and kept["synthesis_stream2"] == (128, 192)
    assert kept["analysis_1_hidden"] == (256, 512) and kept["synthesis_1_mid"] == (128, 192)
    with pytest.raises(ValueError, match="as wide as the teacher"):
        attach_masks(EVC("s", "s", n=16), "evc-ss")

    with torch.no_grad():
        for m in masks.spaces.values():
            m.mask.fill_(0.9)  # the task loss has moved them off 1, where dL/dx = 0
    rate, gap = 0.2, 0.1
    for _ in range(30):
        masks.decay(rate)
        gap *= 1 + rate  # x - rate * (1 - x): the distance to 1 grows by 1 + rate per step
        removed = masks.removed_values()
        assert torch.allclose(removed, torch.full_like(removed, max(0.0, 1 - gap)), atol=1e-5)
    assert removed.max() == 0.0
    assert all(bool(m.effective(masks.finished)[m.keep].eq(1).all()) for m in masks.spaces.values())


def test_pruned_student_computes_what_the_masked_model_computes() -> None:
    torch.manual_seed(0)
    model = EVC("l", "m", n=16).eval()
    masks = attach_masks(model, "evc-sm")  # narrows the encoder only
    assert all(k.startswith("analysis") for k in masks.spaces)
    x, q = torch.rand(2, 3, 64, 64), torch.tensor([10.0, 50.0])
    with torch.no_grad():
        full = model(x, q, noise=False)["x_hat"]
        masks.finish()
        masked = model(x, q, noise=False)
        student = prune(model).eval()
        pruned = student(x, q, noise=False)
    assert not torch.allclose(full, masked["x_hat"], atol=1e-3)  # the masks do cut channels
    assert torch.allclose(masked["x_hat"], pruned["x_hat"], atol=1e-5)
    assert torch.allclose(masked["bits_y"], pruned["bits_y"], rtol=1e-5)
    assert student.analysis[0].conv1.out_channels == 64 and student.synthesis[1].conv.out_channels == 192

    # At full size the pruned weights load into the registry's evc-ss, strictly.
    big = create_model("evc-mm")
    attach_masks(big, "evc-ss")
    create_model("evc-ss").load_state_dict(pruned_state(big.state_dict(), "evc-mm", "evc-ss"))


def decay_config(images: Path, teacher: Path, **kw: object) -> TrainConfig:
    decay = MaskDecayConfig(str(teacher), "evc-mm", decay_steps=2, decay_rate=0.5)
    return TrainConfig(model="evc-ss", data=str(images), crop=64, batch=2, lr=1e-3, log_every=1000,
                       mask_decay=dataclasses.asdict(decay), **kw)


def test_mask_decay_training_lowers_the_loss_and_resumes_exactly(images: Path, teacher: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    straight = Trainer(decay_config(images, teacher), tmp_path / "a.pt", CPU)
    x, q = straight.sampler.batch(10_000, 2).float() / 255, torch.tensor([10.0, 50.0])

    def fixed_loss() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return straight.loss(x, q)[0].item()

    before = fixed_loss()
    steps = [straight.train_step() for _ in range(4)]
    assert fixed_loss() < 0.8 * before
    assert steps[0]["mask"] == 1.0 != steps[1]["mask"]  # trained and decayed ...
    assert steps[2]["mask_max"] == steps[3]["mask_max"] == 0.0  # ... then cut at step 2
    assert bool(straight.mask_decay.masks.finished)

    torch.manual_seed(0)
    first = Trainer(decay_config(images, teacher), tmp_path / "b.pt", CPU)
    first.run(steps=1, log=lambda _: None)
    resumed = Trainer.resume_or_start(decay_config(images, teacher), tmp_path / "b.pt", CPU)
    assert resumed.step == 1 and resumed.cfg.mask_decay["teacher_model"] == "evc-mm"
    assert [resumed.train_step()["loss"] for _ in range(3)] == [s["loss"] for s in steps[1:]]
    pruned = resumed.weights()
    create_model("evc-ss").load_state_dict(pruned)
    assert all(torch.equal(pruned[k], v) for k, v in straight.weights().items())
    # the same teacher name with other weights behind it is refused on resume
    other = tmp_path / "teacher.safetensors"
    save_weights(create_model("evc-mm").state_dict(), other, {"model": "evc-mm"}, torch.float32)
    Trainer(decay_config(images, other), tmp_path / "c.pt", CPU).run(steps=1, log=lambda _: None)
    save_weights(create_model("evc-mm").state_dict(), other, {"model": "evc-mm"}, torch.float32)  # new seed
    with pytest.raises(ValueError, match="other weights"):
        Trainer.resume_or_start(decay_config(images, other), tmp_path / "c.pt", CPU)


def test_ms_ssim_option_lowers_its_loss(images: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(data=str(images), crop=64, batch=2, lr=1e-3, log_every=1000, distortion="ms-ssim",
                      lambdas=DEFAULT_MS_SSIM_LAMBDAS)
    trainer = Trainer(cfg, tmp_path / "m.pt", CPU)
    x, q = trainer.sampler.batch(10_000, 2).float() / 255, torch.tensor([10.0, 50.0])

    def fixed() -> dict[str, float]:
        torch.manual_seed(1)
        with torch.no_grad():
            return trainer.loss(x, q)[1]

    before = fixed()
    for _ in range(5):
        trainer.train_step()
    after = fixed()
    assert after["loss"] < 0.8 * before["loss"] and after["ms_ssim"] > before["ms_ssim"]
    with pytest.raises(ValueError, match="unknown distortion"):
        Trainer(TrainConfig(data=str(images), crop=64, distortion="ssim"), tmp_path / "x.pt", CPU)


def test_cli_mask_decay_exports_a_student(images: Path, teacher: Path, tmp_path: Path, capsys) -> None:
    ck, out = tmp_path / "md.pt", tmp_path / "student.safetensors"
    argv = ["train", "--checkpoint", ck, "--data", images, "--crop", "64", "--batch", "1", "--steps", "1",
            "--mask-decay", "--teacher", teacher, "--student-widths", "s", "--decay-steps", "1",
            "--export", out, "--export-dtype", "fp32"]
    assert main([str(a) for a in argv]) == 0
    student = load_model("evc-ss", weights=out)
    assert student.analysis[0].conv1.out_channels == 64
    assert main(["export", str(ck), "--out", str(tmp_path / "again.safetensors"), "--dtype", "fp32"]) == 0
    again = load_model("evc-ss", weights=tmp_path / "again.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), again.state_dict().values()))

    capsys.readouterr()
    bad = ["train", "--checkpoint", str(tmp_path / "bad.pt"), "--data", str(images), "--mask-decay",
           "--teacher", str(tmp_path / "missing.safetensors")]
    assert main(bad) == 2 and "no teacher weights" in capsys.readouterr().err
    assert main(bad[:-1] + [str(teacher), "--student-widths", "x"]) == 2
