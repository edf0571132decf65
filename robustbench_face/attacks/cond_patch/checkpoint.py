"""cond_patch checkpoints: float16 safetensors with the generator config in the metadata, and a
JSON card beside them (config, surrogates, data, seed, wall time, loss history)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...errors import InputError
from .generator import GeneratorConfig, PatchGenerator


def save_generator(path: Path, model: PatchGenerator, card: dict) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(sd, str(path), metadata={"config": json.dumps(model.cfg.to_dict()), "attack": "cond_patch"})
    path.with_suffix(".json").write_text(json.dumps(card, indent=1, default=str) + "\n")


def load_generator(path: str | Path, device: str = "cpu") -> PatchGenerator:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"cond_patch checkpoint not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise InputError(f"{path} is not a cond_patch checkpoint (no config in its metadata)")
    model = PatchGenerator(GeneratorConfig.from_dict(json.loads(meta["config"])))
    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval().requires_grad_(False)
