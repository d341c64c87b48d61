"""Model cards: the JSON beside shipped weights saying how they were made and how they score."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .data import image_files


def data_manifest_hash(folder: Path) -> str:
    """SHA-256 over the sorted (name, SHA-256 of content) of every training image in ``folder``."""
    digest = hashlib.sha256()
    for path in image_files(folder):
        digest.update(f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def kodak_summary(evaluation: dict[str, Any], model: str) -> dict[str, Any]:
    """The part of a ``streamcodec eval --json`` result that concerns ``model``: its curve and BD-rates."""
    out: dict[str, Any] = {
        "dataset": evaluation["dataset"],
        "images": evaluation["images"],
        "curve": evaluation["curves"][model],
    }
    for key, values in evaluation.items():
        if key.startswith("bd_rate_vs_") and model in values:
            out[key] = values[model]
    return out


def build_card(metadata: dict[str, Any], data_folder: Path | None, kodak: dict[str, Any] | None) -> dict[str, Any]:
    """A model card from a weights file's training metadata, the data it came from and its Kodak results."""
    segments = metadata.get("segments", [])
    card: dict[str, Any] = {
        "model": metadata.get("model"),
        "steps": metadata.get("step"),
        "training": {
            "command": "streamcodec train (see segments; GPU bursts: scripts/gpu_round.sh)",
            "config": metadata.get("config"),
            "segments": segments,
            "hardware": sorted({s["hardware"] for s in segments}),
            "seconds": round(sum(s["seconds"] for s in segments), 1),
        },
        "exported": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    if "averaged_steps" in metadata:  # `streamcodec export --average`: the mean of these saves' weights
        card["training"]["averaged_steps"] = metadata["averaged_steps"]
    if "mask_thresholds" in metadata:  # block-masked models: variance thresholds (coarse, fine) of RGB in [0, 1]
        card["mask_thresholds"] = metadata["mask_thresholds"]
    if data_folder is not None:
        card["data"] = {"folder": str(data_folder), "manifest_sha256": data_manifest_hash(data_folder)}
    if kodak is not None:
        card["kodak"] = kodak
    return card
