"""cond_patch checkpoints: float16 safetensors with the generator config in the metadata, and a
JSON card beside them (config, surrogates, data, seed, wall time, loss history); the format is
:mod:`.._learned.io`'s, shared with ``patch_universal``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ...errors import InputError
from .._learned import io
from .generator import GeneratorConfig, PatchGenerator


def save_generator(path: Path, model: PatchGenerator, card: dict) -> None:
    io.save(path, model.state_dict(), {"config": json.dumps(model.cfg.to_dict()), "attack": "cond_patch"}, card)


def read_config(path: str | Path) -> GeneratorConfig:
    """The generator config of a checkpoint, from its metadata alone (no weights are read)."""
    st = Path(path).stat() if Path(path).is_file() else None
    return _config(str(path), st and (st.st_size, st.st_mtime))


@functools.lru_cache(maxsize=64)
def _config(path: str, version) -> GeneratorConfig:  # ``version``: a rewritten file is read again
    meta = io.metadata(path, "cond_patch")
    if "config" not in meta:
        raise InputError(f"{path} is not a cond_patch checkpoint (no config in its metadata)")
    return GeneratorConfig.from_dict(json.loads(meta["config"]))


def load_generator(path: str | Path, device: str = "cpu") -> PatchGenerator:
    from safetensors.torch import load_file

    model = PatchGenerator(read_config(path))
    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval().requires_grad_(False)
