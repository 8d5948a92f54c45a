"""Load an ONNX model without its external payload and index its graph.

The graph is parsed once; tensor payloads are decoded on demand (memory-mapped
for external data), so a multi-gigabyte model costs little more than its
protobuf skeleton.  Constant-node outputs are indexed beside initializers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import NodeProto, TensorProto

from .errors import ModelLoadError
from .tensors import tensor_to_array

__all__ = ["ModelGraph", "load_model", "parse_model_bytes", "node_attr"]

#: Largest model file accepted (the protobuf itself; external data is separate).
MAX_PROTO_BYTES = 2**31 - 1


def node_attr(node: NodeProto, name: str, default=None):
    """Value of attribute ``name`` of ``node`` (``default`` when absent)."""
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


@dataclass
class ModelGraph:
    """An indexed ONNX graph.

    Attributes
    ----------
    path : Path or None
        Model file (``None`` for models parsed from bytes).
    base_dir : Path or None
        Folder external data is resolved against (``None``: external data refused).
    nodes : list of NodeProto
        Main-graph nodes in graph order.
    constants : dict
        Tensor name -> ``TensorProto`` for initializers and ``Constant`` outputs.
    constant_storage : dict
        Tensor name -> ``"initializer"``, ``"external"`` or ``"constant_node"``.
    consumers : dict
        Tensor name -> list of ``(node_index, input_slot)``.
    producer : dict
        Tensor name -> index of the node that outputs it.
    opsets : dict
        Domain -> opset version.
    """

    path: Path | None
    base_dir: Path | None
    proto: onnx.ModelProto
    nodes: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    constant_storage: dict = field(default_factory=dict)
    consumers: dict = field(default_factory=dict)
    producer: dict = field(default_factory=dict)
    opsets: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def node_name(self, i: int) -> str:
        """Name of node ``i`` (``<op>_<i>`` when the model leaves it empty)."""
        n = self.nodes[i]
        return n.name or f"{n.op_type}_{i}"

    def is_const(self, name: str) -> bool:
        """True when ``name`` is an initializer or a Constant output."""
        return bool(name) and name in self.constants

    def array(self, name: str) -> np.ndarray:
        """Decode constant ``name`` (see :func:`analysis.tensors.tensor_to_array`)."""
        return tensor_to_array(self.constants[name], self.base_dir)

    def dtype(self, name: str) -> int:
        """ONNX element type of constant ``name``."""
        return self.constants[name].data_type

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of constant ``name``."""
        return tuple(int(d) for d in self.constants[name].dims)


def _constant_tensor(node: NodeProto) -> TensorProto | None:
    """The tensor a ``Constant`` node produces, from any of its value attributes."""
    for a in node.attribute:
        if a.name == "value":
            t = TensorProto()
            t.CopyFrom(a.t)
            return t
        if a.name in ("value_float", "value_floats", "value_int", "value_ints"):
            v = onnx.helper.get_attribute_value(a)
            dt = np.float32 if "float" in a.name else np.int64
            return onnx.numpy_helper.from_array(np.asarray(v, dt))
    return None


def _index(model: onnx.ModelProto, path: Path | None, base_dir: Path | None) -> ModelGraph:
    g = model.graph
    mg = ModelGraph(path=path, base_dir=base_dir, proto=model)
    mg.opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    for t in g.initializer:
        if not t.name:
            mg.warnings.append("an initializer without a name was ignored")
            continue
        if t.name in mg.constants:
            mg.warnings.append(f"initializer '{t.name}' is defined twice; the first is used")
            continue
        mg.constants[t.name] = t
        mg.constant_storage[t.name] = ("external" if t.data_location == TensorProto.EXTERNAL
                                       else "initializer")
    if len(g.sparse_initializer):
        mg.warnings.append(f"{len(g.sparse_initializer)} sparse initializer(s) are not analysed")
    for i, n in enumerate(g.node):
        mg.nodes.append(n)
        for slot, name in enumerate(n.input):
            if name:
                mg.consumers.setdefault(name, []).append((i, slot))
        for name in n.output:
            if name:
                mg.producer[name] = i
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output:
            t = _constant_tensor(n)
            if t is not None and n.output[0] not in mg.constants:
                t.name = n.output[0]
                mg.constants[n.output[0]] = t
                mg.constant_storage[n.output[0]] = "constant_node"
    return mg


def _check(model: onnx.ModelProto, what: str) -> None:
    if not model.ir_version:
        raise ModelLoadError(f"{what} is not an ONNX model (no IR version; empty or not a model file)")
    if not model.HasField("graph") or (not len(model.graph.node) and not len(model.graph.initializer)):
        raise ModelLoadError(f"{what} holds an ONNX model with no nodes and no weights: nothing to analyse")


def parse_model_bytes(data: bytes, label: str = "upload") -> ModelGraph:
    """Parse a model from bytes (uploads): external data is refused, not followed.

    Raises
    ------
    ModelLoadError
        Not protobuf, empty, or a model whose weights live in side files.
    """
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{label} is not an ONNX model (protobuf decode failed: {e})") from None
    _check(model, label)
    if any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ModelLoadError(
            f"{label} keeps its weights in external data files; uploads must be self-contained: "
            "place the model and its data files in the server's model folder instead")
    return _index(model, None, None)


def load_model(path: str | os.PathLike) -> ModelGraph:
    """Parse the model at ``path`` and index it; external data stays on disk.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.onnx`` file.  External data files must sit inside its folder.

    Returns
    -------
    ModelGraph

    Raises
    ------
    ModelLoadError
        Missing file, not an ONNX model, empty graph.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ModelLoadError(f"cannot open '{p.name}': {e.strerror}") from None
    if not p.is_file():
        raise ModelLoadError(f"'{p.name}' is not a file")
    if size > MAX_PROTO_BYTES:
        raise ModelLoadError(f"'{p.name}' is {size} bytes, over the 2 GiB protobuf limit "
                             "(large models must keep their weights in external data)")
    try:
        with open(p, "rb") as f:
            model = onnx.load_model_from_string(f.read())
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"'{p.name}' is not an ONNX model (protobuf decode failed: {e})") from None
    _check(model, f"'{p.name}'")
    return _index(model, p, p.parent)

