"""Reader for dlib's serialised DNN files (``*.dat`` written by ``dlib::serialize(net)``).

No dlib at run time: this parses the byte stream directly. dlib's format is *type directed*:
the file holds no description of the network, only what each C++ object writes, in the order
its ``serialize`` writes it, so the caller passes the network's layer chain (its C++ type,
spelled as a list) and the reader checks every layer name against it.

Encoding (``dlib/serialize.h``, ``dlib/float_details.h``, ``dlib/dnn/tensor.h``):

* integers: a control byte (bit 7 = negative, low 4 bits = byte count) then the absolute value
  in that many little-endian bytes;
* bool: the ASCII byte ``'1'`` or ``'0'``;
* float/double: integer mantissa then integer exponent, value = mantissa * 2**exponent
  (exponents 32000/32001/32002 encode +inf/-inf/nan);
* string: integer length then the raw bytes;
* tensor: int version (2), four ints n, k, nr, nc, then n*k*nr*nc little-endian float32;
* alias_tensor (a shape into a layer's params): int version (1) and n, k, nr, nc.

Network layout (``dlib/dnn/core.h``): ``add_loss_layer`` writes version, loss details, subnet;
``add_layer`` writes version, *subnet*, details, then state (flags, cached tensors);
``add_tag_layer``/``add_skip_layer`` write version (1) and subnet. So the file descends through
the chain of versions to the input layer, then unwinds bottom-up through the layer details.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import AssetError

_INF, _NINF, _NAN = 32000, 32001, 32002


class _Stream:
    """A cursor over the file's bytes with dlib's primitive decoders."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = memoryview(data), 0, path

    def fail(self, what: str) -> AssetError:
        return AssetError(f"{self.path}: not a dlib network of the expected type: {what} "
                          f"(at byte {self.pos})")

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.fail("unexpected end of file")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size > 8 or ctrl & 0x70:
            raise self.fail(f"bad integer control byte 0x{ctrl:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def bool(self) -> bool:
        ch = bytes(self._take(1))
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {ch!r}")
        return ch == b"1"

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent < _INF:
            return math.ldexp(float(mantissa), exponent)
        return {_INF: math.inf, _NINF: -math.inf}.get(exponent, math.nan)

    def string(self) -> str:
        return bytes(self._take(self.int())).decode("latin-1")

    def expect(self, value: int, what: str) -> None:
        got = self.int()
        if got != value:
            raise self.fail(f"{what}: expected {value}, got {got}")

    def tensor(self) -> np.ndarray:
        self.expect(2, "tensor version")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        self.expect(1, "alias_tensor version")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


@dataclass
class DlibLayer:
    """One computational layer (or a tag/skip marker) of the chain, bottom-up order."""

    kind: str  # con, affine, relu, add_prev, avg_pool, max_pool, fc, tag, skip
    tag: int | None = None  # for tag / skip / add_prev
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibNet:
    input_kind: str
    input_meta: dict[str, Any]
    layers: list[DlibLayer]  # bottom (next to the input) to top (next to the loss)
    loss_kind: str
    loss_meta: dict[str, Any]


def _split(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Cut a layer's flat parameter tensor into the alias shapes it is viewed through."""
    flat, out, at = params.reshape(-1), [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[at:at + n].reshape(shape).copy())
        at += n
    return out


def _con(s: _Stream, name: str) -> DlibLayer:
    if name != "con_4":
        raise s.fail(f"unsupported convolution serialisation {name!r} (this reader knows con_4)")
    params = s.tensor()
    nf, nr, nc, sy, sx, py, px = (s.int() for _ in range(7))
    filt, bias = s.alias(), s.alias()
    for _ in range(4):  # learning-rate / weight-decay multipliers: training only
        s.float()
    w, b = _split(params, filt, bias)
    meta = dict(num_filters=nf, kernel=(nr, nc), stride=(sy, sx), padding=(py, px))
    return DlibLayer("con", arrays={"weight": w, "bias": b.reshape(-1)}, meta=meta)


def _affine(s: _Stream, name: str) -> DlibLayer:
    if name != "affine_":
        raise s.fail(f"unsupported affine serialisation {name!r} (this reader knows affine_)")
    params = s.tensor()
    g_shape, b_shape = s.alias(), s.alias()
    mode = s.int()  # 0 = CONV_MODE (per channel), 1 = FC_MODE (per element)
    gamma, beta = _split(params, g_shape, b_shape)
    return DlibLayer("affine", arrays={"gamma": gamma, "beta": beta}, meta={"mode": mode})


def _pool(s: _Stream, name: str) -> DlibLayer:
    if name not in ("avg_pool_2", "max_pool_2"):
        raise s.fail(f"unsupported pooling serialisation {name!r}")
    nr, nc, sy, sx, py, px = (s.int() for _ in range(6))
    # nr == nc == 0 means "the whole input" (avg_pool_everything / max_pool_everything).
    meta = dict(window=(nr, nc), stride=(sy, sx), padding=(py, px))
    return DlibLayer(name[:-2], meta=meta)


def _fc(s: _Stream, name: str) -> DlibLayer:
    if name != "fc_2":
        raise s.fail(f"unsupported fc serialisation {name!r} (this reader knows fc_2)")
    n_out, n_in = s.int(), s.int()
    params = s.tensor()
    w_shape, b_shape = s.alias(), s.alias()
    s.int()  # bias mode; the parameter count below is what decides
    for _ in range(4):
        s.float()
    has_bias = params.size == (n_in + 1) * n_out
    if not has_bias and params.size != n_in * n_out:
        raise s.fail(f"fc params hold {params.size} values for {n_in}->{n_out}")
    shapes = (w_shape, b_shape) if has_bias else (w_shape,)
    arrays = dict(zip(("weight", "bias"), _split(params, *shapes)))  # weight is (n_in, n_out)
    arrays["weight"] = arrays["weight"].reshape(n_in, n_out)
    if has_bias:
        arrays["bias"] = arrays["bias"].reshape(-1)
    return DlibLayer("fc", arrays=arrays, meta=dict(num_inputs=n_in, num_outputs=n_out))


def _plain(kind: str):
    def read(s: _Stream, name: str) -> DlibLayer:
        return DlibLayer(kind)
    return read


_DETAILS = {"con": _con, "affine": _affine, "relu": _plain("relu"), "add_prev": _plain("add_prev"),
            "avg_pool": _pool, "max_pool": _pool, "fc": _fc}


def _details(s: _Stream, spec: str) -> DlibLayer:
    kind, tag = _parse_spec(spec)
    name = s.string()
    if name.rstrip("0123456789").rstrip("_") != kind:
        raise s.fail(f"expected a {kind} layer, found {name!r}")
    layer = _DETAILS[kind](s, name)
    layer.tag = tag
    return layer


def _parse_spec(spec: str) -> tuple[str, int | None]:
    """``"add_prev2"`` -> ("add_prev", 2); ``"tag1"`` -> ("tag", 1); ``"con"`` -> ("con", None)."""
    base = spec.rstrip("0123456789")
    return base, (int(spec[len(base):]) if base != spec else None)


def _state(s: _Stream, version: int, bottom: bool) -> None:
    """Skip an add_layer's saved run-time state (flags and cached tensors; empty in releases)."""
    for _ in range(3):
        s.bool()
    for _ in range(3 if bottom or version >= 2 else 2):
        s.tensor()
    if bottom and version >= 3:
        s.int()  # sample expansion factor


def _input(s: _Stream) -> tuple[str, dict[str, Any]]:
    name = s.string()
    if name != "input_rgb_image_sized":
        raise s.fail(f"unsupported input layer {name!r} (this reader knows input_rgb_image_sized)")
    avg = (s.float(), s.float(), s.float())
    size = (s.int(), s.int())
    return name, {"avg_rgb": avg, "size": size}


def _loss(s: _Stream) -> tuple[str, dict[str, Any]]:
    name = s.string()
    if name != "loss_metric_2":
        raise s.fail(f"unsupported loss layer {name!r} (this reader knows loss_metric_2)")
    return "loss_metric", {"margin": s.float(), "distance_threshold": s.float()}


def read_dlib_net(path: str | Path, chain: Sequence[str]) -> DlibNet:
    """Parse a dlib network file whose C++ type is ``loss<chain[0]<chain[1]<...<input>>>>``.

    ``chain`` lists the layers top (under the loss) to bottom (on the input), e.g.
    ``["fc", "avg_pool", "relu", "add_prev2", "avg_pool", "skip1", "tag2", ..., "con"]``;
    ``tagN``/``skipN``/``add_prevN`` carry dlib's tag ids. Returns the layers bottom-up.
    """
    path = Path(path)
    if not chain or _parse_spec(chain[-1])[0] in ("tag", "skip"):
        raise ValueError("the chain must end in a computational layer sitting on the input")
    s = _Stream(path.read_bytes(), path)
    s.expect(1, "add_loss_layer version")
    loss_kind, loss_meta = _loss(s)
    versions = []
    for spec in chain:  # descend: every wrapper writes its version before its subnet
        v = s.int()
        is_marker = _parse_spec(spec)[0] in ("tag", "skip")
        if (is_marker and v != 1) or (not is_marker and v not in (1, 2, 3)):
            raise s.fail(f"layer {spec!r}: unexpected version {v}")
        versions.append(v)
    input_kind, input_meta = _input(s)
    layers: list[DlibLayer] = []
    for i in range(len(chain) - 1, -1, -1):  # unwind bottom-up
        kind, tag = _parse_spec(chain[i])
        if kind in ("tag", "skip"):
            layers.append(DlibLayer(kind, tag=tag))
            continue
        layers.append(_details(s, chain[i]))
        _state(s, versions[i], bottom=i == len(chain) - 1)
    if s.pos != len(s.data):
        raise s.fail(f"{len(s.data) - s.pos} bytes left after the network")
    return DlibNet(input_kind, input_meta, layers, loss_kind, loss_meta)
