"""RDONet block masks: variance masks, masked frames (bit-exact, mixed with plain ones in one stream), damaged
mask bits, RDO passes, training phases, and the CLI's --rdo / --mask-figure."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import streamcodec
from streamcodec.bench import run_benchmark, synthetic_frame
from streamcodec.bitstream import PacketType, StreamReader, StreamWriter
from streamcodec.cli import main
from streamcodec.codec import registry
from streamcodec.codec.evc import EVC, EncodedFrame
from streamcodec.codec.masked import MaskedEVC, MaskedFrame
from streamcodec.codec.masks import calibrate_thresholds, decode_mask, encode_mask
from streamcodec.codec.quality import rd_lambda
from streamcodec.codec.rdo import search_mask
from streamcodec.codec.stream import FrameDecoder, FrameEncoder, to_tensor
from streamcodec.errors import CorruptStreamError, StreamError
from streamcodec.evaluate.maskfig import LEVEL_COLOURS, draw_mask
from streamcodec.io import open_sink
from streamcodec.train import TrainConfig, Trainer, save_weights

THRESHOLDS = (1e-3, 5e-3)


def blocks_image(levels: list[list[int]], seed: int = 0) -> np.ndarray:
    """An image whose 64x64 blocks are near-flat (2), mildly textured (1) or strongly textured (0)."""
    rng = np.random.default_rng(seed)
    sigma = {2: 2.0, 1: 14.0, 0: 60.0}  # pixel std: variance ~6e-5, ~3e-3, ~5e-2 of RGB in [0, 1]
    rows = []
    for row in levels:
        rows.append(np.concatenate([120 + rng.normal(0, sigma[v], (64, 64, 3)) for v in row], axis=1))
    return np.clip(np.concatenate(rows, axis=0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> MaskedEVC:
    """evc-s-rdo with the shipped evc-ss weights in its shared parts and fresh (seeded) level networks."""
    torch.manual_seed(0)
    fresh = registry.create_model("evc-s-rdo")
    state, _ = streamcodec.train.load_weights([registry.weights_path("evc-ss")])
    missing = fresh.load_state_dict(state, strict=False).missing_keys
    assert missing and all(k.startswith("levels.") or k == "mask_thresholds" for k in missing)
    fresh.mask_thresholds.copy_(torch.tensor(THRESHOLDS))
    path = tmp_path_factory.mktemp("rdo") / "evc-ss-rdo.safetensors"
    save_weights(fresh.state_dict(), path, {"model": "evc-ss-rdo"}, torch.float32)
    return streamcodec.load_model("evc-s-rdo", weights=path)


def test_half_precision_weights_keep_the_exact_thresholds(masked: MaskedEVC, tmp_path: Path) -> None:
    thresholds = torch.tensor([1.2345678901e-3, 4.56789012345e-3], dtype=torch.float64)
    state = {**masked.state_dict(), "mask_thresholds": thresholds}
    save_weights(state, tmp_path / "half.safetensors", {"model": "evc-ss-rdo"})  # fp16 weights
    loaded = streamcodec.load_model("evc-s-rdo", weights=tmp_path / "half.safetensors")
    assert torch.equal(loaded.mask_thresholds, thresholds)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_variance_mask_of_a_hand_made_image(masked: MaskedEVC) -> None:
    levels = [[2, 1, 0], [0, 2, 1]]
    x = to_tensor(blocks_image(levels), "cpu")
    assert masked.variance_mask(x)[0].tolist() == levels
    # A frame that is not a multiple of 64 is padded: its partial blocks get levels too.
    assert masked.variance_mask(x[..., :100, :150])[0].shape == (2, 3)


def test_calibration_gives_the_target_shares() -> None:
    images = [blocks_image([[0, 1, 2, 2], [1, 2, 2, 2]], seed=s) for s in range(3)]
    coarse, fine = calibrate_thresholds(images, (0.25, 0.25, 0.5))
    model = MaskedEVC()
    model.mask_thresholds.copy_(torch.tensor([coarse, fine]))
    mask = torch.cat([model.variance_mask(to_tensor(im, "cpu")) for im in images]).flatten()
    assert [float((mask == level).float().mean()) for level in range(3)] == [0.25, 0.25, 0.5]
    with pytest.raises(ValueError, match="shares"):
        calibrate_thresholds(images, (0.5, 0.6, 0.1))


def test_masked_round_trip_is_bit_exact(masked: MaskedEVC) -> None:
    image = synthetic_frame(150, 100, seed=3)
    mask = torch.tensor([[2, 1, 0], [0, 2, 1]])
    frame, x_hat = masked.compress(to_tensor(image, "cpu"), 30, mask=mask, reconstruct=True)
    assert isinstance(frame, MaskedFrame) and frame.mask.tolist() == mask.tolist()
    decoded = masked.decompress_masked(frame.payload, 100, 150, frame.q_index)
    assert decoded.shape == (1, 3, 100, 150) and torch.equal(decoded, x_hat)
    # Loose: this model's fresh coarse priors put symbols in the tables' tails, where the estimate counts up to
    # 30 bits and the 20-bit tables fewer.
    assert abs(8 * len(frame.payload) - frame.estimated_bits) < 0.15 * frame.estimated_bits
    # Coarser levels carry the same blocks in fewer symbols.
    fine, _ = masked.compress(to_tensor(image, "cpu"), 30, mask=torch.zeros_like(mask))
    coarse, _ = masked.compress(to_tensor(image, "cpu"), 30, mask=torch.full_like(mask, 2))
    assert len(coarse.payload) < len(fine.payload)


def test_a_mask_that_is_finest_everywhere_codes_as_plain_evc(masked: MaskedEVC, model: EVC) -> None:
    x = to_tensor(synthetic_frame(128, 64, seed=4), "cpu")
    frame, _ = masked.compress(x, 40, mask=torch.zeros(1, 2, dtype=torch.long))
    plain, _ = model.compress(x, 40)
    assert type(frame) is EncodedFrame and frame.payload == plain.payload


def test_bench_decodes_the_plain_frames_of_a_masked_model(masked: MaskedEVC) -> None:
    """Strong texture everywhere: the variance mask is finest everywhere, so the frames are plain KEY packets."""
    result = run_benchmark(masked, blocks_image([[0, 0]]), frames=1, warmup=0)
    assert result["rdo"] == 0 and "synthesis" in result["decode"]["stages"]


def test_a_stream_mixing_masked_and_plain_frames_decodes(masked: MaskedEVC) -> None:
    flat = blocks_image([[2, 1], [1, 2]], seed=5)
    busy = blocks_image([[0, 0], [0, 0]], seed=6)
    encoder = FrameEncoder(masked, 128, 128, 36)
    sink = io.BytesIO()
    recons = []
    with StreamWriter(sink, encoder.header) as writer:
        for pts, image in enumerate([flat, busy, flat]):
            packet, _, x_hat = encoder.encode(image, pts, reconstruct=True)
            writer.write(packet)
            recons.append(x_hat)
    sink.seek(0)
    reader = StreamReader(sink)
    decoder = FrameDecoder(masked, reader.header)
    packets = list(reader)
    assert [p.type for p in packets] == [PacketType.KEY_MASKED, PacketType.KEY, PacketType.KEY_MASKED]
    for i, (packet, x_hat) in enumerate(zip(packets, recons)):
        assert torch.equal(decoder.decode_tensor(packet, i), x_hat)


def test_damaged_mask_bits_are_stream_errors(masked: MaskedEVC, model: EVC) -> None:
    image = blocks_image([[2, 1, 0], [0, 2, 1]], seed=7)
    frame, _ = masked.compress(to_tensor(image, "cpu"), 30)
    payload = frame.payload
    mask_at = 13  # after the masked head (version u8, three u32 lengths)
    counts = bytearray(payload)
    counts[mask_at] ^= 1  # the level counts no longer add up to the block count
    with pytest.raises(CorruptStreamError, match="mask"):
        masked.decompress_masked(bytes(counts), 128, 192, frame.q_index)
    flipped = bytearray(payload)
    flipped[mask_at + 6] ^= 0x5A  # inside the mask's ANS words
    with pytest.raises(StreamError, match="mask"):
        masked.decompress_masked(bytes(flipped), 128, 192, frame.q_index)
    with pytest.raises(CorruptStreamError):
        masked.decompress_masked(payload[:20], 128, 192, frame.q_index)
    with pytest.raises(CorruptStreamError, match="block mask"):
        decode_mask(encode_mask(np.array([0, 1, 2, 2])), 5)
    # A KEY_MASKED packet reaching a model without masks is refused by name, never decoded as plain EVC.
    header = dataclasses.replace(FrameEncoder(masked, 192, 128, 30).header, weights_hash=model.weights_hash)
    packet = streamcodec.Packet(PacketType.KEY_MASKED, 0, frame.q_index, payload)
    with pytest.raises(CorruptStreamError, match="no block masks"):
        FrameDecoder(model, header).decode(packet, 0)


def test_rdo_passes_never_raise_the_estimated_cost(masked: MaskedEVC) -> None:
    image = blocks_image([[2, 1], [1, 0]], seed=8)
    x = to_tensor(image, "cpu")
    start = masked.variance_mask(x)[0]
    mask, info = search_mask(masked, x, 30.0, start, passes=2)
    costs = info["costs"]
    assert costs == sorted(costs, reverse=True) and info["runs"] >= 8
    features = masked.analyse(x)
    final = float(masked.block_costs(x, features, 30.0, mask[None], rd_lambda(30.0)).sum())
    assert final == pytest.approx(costs[-1])
    # The fresh coarse levels of this model are poor, so the search must move blocks to finer levels.
    assert costs[1] < costs[0] and (mask <= start).all() and (mask < start).any()
    with pytest.raises(ValueError, match="masked"):
        FrameEncoder(registry.create_model("evc-ss"), 64, 64, 30, rdo=1)


def test_mask_picture_colours_blocks_by_level() -> None:
    image = np.full((100, 130, 3), 128, dtype=np.uint8)
    mask = np.array([[0, 1, 2], [2, 1, 0]])
    picture = draw_mask(image, mask)
    assert picture.shape[1] == 130 and picture.shape[0] > 100
    assert tuple(picture[0, 0]) == LEVEL_COLOURS[0] and tuple(picture[64, 0]) == LEVEL_COLOURS[2]
    assert tuple(picture[64, 64]) == LEVEL_COLOURS[1] and tuple(picture[99, 129]) == LEVEL_COLOURS[0]
    with pytest.raises(ValueError, match="blocks"):
        draw_mask(image, mask[:1])


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        with open_sink(str(folder / f"im{i}.png"), 128, 64, None) as sink:
            sink.write(synthetic_frame(128, 64, seed=i))
    return folder


def test_masked_training_phases_lower_the_loss(images: Path, tmp_path: Path, monkeypatch) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(model="evc-s-rdo", data=str(images), crop=64, batch=2, lr=5e-4, log_every=1000,
                      random_mask_steps=2)
    trainer = Trainer(cfg, tmp_path / "ck.pt", torch.device("cpu"))
    assert trainer.metadata()["mask_thresholds"] != list(registry.create_model("evc-s-rdo").mask_thresholds)
    phases = []
    real = trainer.model.training_mask
    monkeypatch.setattr(trainer.model, "training_mask", lambda x, random: phases.append(random) or real(x, random))
    x = trainer.sampler.batch(10_000, 2).float() / 255
    q = torch.tensor([10.0, 50.0])

    def fixed_loss() -> float:
        trainer.model.eval()
        torch.manual_seed(1)
        with torch.no_grad(), monkeypatch.context() as m:
            m.setattr(trainer.model, "training_mask", lambda x, random: torch.tensor([[[1]], [[2]]]))
            return trainer.loss(x, q)[0].item()

    before = fixed_loss()
    for _ in range(7):
        trainer.train_step()
    assert fixed_loss() < 0.5 * before
    assert phases == [True] * 2 + [False] * 5


def test_masked_model_starts_from_plain_weights(images: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(model="evc-s-rdo", data=str(images), crop=64, batch=2)
    plain = registry.weights_path("evc-ss")
    trainer = Trainer.from_weights(cfg, tmp_path / "ck.pt", torch.device("cpu"), [plain])
    state, meta = streamcodec.train.load_weights([plain])
    assert trainer.step == 0 and trainer.metadata()["initialised_from"] == {"model": "evc-ss", "step": meta["step"]}
    assert torch.equal(trainer.model.state_dict()["q_basic"], state["q_basic"])


def test_cli_encode_eval_and_bench_with_rdo(masked: MaskedEVC, tmp_path: Path, capsys) -> None:
    weights = tmp_path / "w.safetensors"
    save_weights(masked.state_dict(), weights, {"model": "evc-ss-rdo"}, torch.float32)
    folder = tmp_path / "kodak"
    folder.mkdir()
    with open_sink(str(folder / "a.png"), 128, 64, None) as sink:
        sink.write(blocks_image([[2, 0]], seed=9))
    common = ["--model", "evc-s-rdo", "--weights", str(weights), "--device", "cpu"]
    assert main(["encode", str(folder / "a.png"), str(tmp_path / "a.scv"), *common, "--rdo", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rdo"] == 1 and summary["frames"] == 1
    assert main(["decode", str(tmp_path / "a.scv"), str(tmp_path / "out.png"), "--weights", str(weights)]) == 0
    decoded = streamcodec.io.open_source(str(tmp_path / "out.png"), frames=1)
    with decoded:
        assert next(iter(decoded)).image.shape == (64, 128, 3)
    capsys.readouterr()
    argv = ["eval", "--dataset", str(folder), *common, "--rdo", "0,1", "--qps", "20,50", "--baselines", "none",
            "--anchor", "evc-ss-rdo/rdo0", "--cache", "", "--mask-figure", str(tmp_path / "mask.png"), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["curves"]) == {"evc-ss-rdo/rdo0", "evc-ss-rdo/rdo1"}
    assert "evc-ss-rdo/rdo1" in result["bd_rate_vs_evc-ss-rdo/rdo0"]
    assert (tmp_path / "mask.png").stat().st_size > 0 and sum(result["mask_figure"]["level_shares"]) == 1
    argv = ["bench", *common, "--size", "128x64", "--input", str(folder / "a.png"), "--frames", "1", "--coder-threads",
            "1", "--json"]
    assert main(argv) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["rdo"] == 0 and "mask" in bench["encode"]["stages"]
