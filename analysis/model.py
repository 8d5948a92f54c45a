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

from .errors import ModelLoadError, TensorReadError, UnsafeModelError
from .tensors import external_data_path, tensor_shape, tensor_to_array

__all__ = ["ModelGraph", "load_model", "parse_model_bytes", "node_attr", "int_attr"]

#: Largest model file accepted (the protobuf itself; external data is separate).
MAX_PROTO_BYTES = 2**31 - 1
#: Most constant tensors (initializers + Constant nodes) a model may hold: every one costs a
#: fixed amount of work, so a 4 MB file of 200,000 one-element tensors would take minutes.
#: ``QUANTLENS_MAX_TENSORS`` overrides it.
MAX_TENSORS = 100_000


def max_tensors() -> int:
    """The tensor-count limit in force (``QUANTLENS_MAX_TENSORS`` or :data:`MAX_TENSORS`)."""
    try:
        n = int(os.environ.get("QUANTLENS_MAX_TENSORS", "0"))
    except ValueError:
        n = 0
    return n if n > 0 else MAX_TENSORS


def node_attr(node: NodeProto, name: str, default=None):
    """Value of attribute ``name`` of ``node`` (``default`` when absent)."""
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def int_attr(node: NodeProto, name: str, default: int | None = None, *, required: bool = False,
             lo: int | None = None) -> int | None:
    """Integer attribute ``name`` of ``node``, checked.

    Raises
    ------
    TensorReadError
        The attribute is missing while ``required``, is not an integer, or is below ``lo``.
    """
    for a in node.attribute:
        if a.name == name:
            if a.type != onnx.AttributeProto.INT:
                kind = onnx.AttributeProto.AttributeType.Name(a.type).lower()
                raise TensorReadError(f"attribute '{name}' should be an integer, not {kind}")
            if lo is not None and a.i < lo:
                raise TensorReadError(f"attribute {name}={a.i} is out of range (at least {lo})")
            return int(a.i)
    if required:
        raise TensorReadError(f"required attribute '{name}' is missing")
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
    #: external files already checked for this model (see tensors.external_data_path)
    ext_memo: dict = field(default_factory=dict, repr=False)

    def node_name(self, i: int) -> str:
        """Name of node ``i`` (``<op>_<i>`` when the model leaves it empty)."""
        n = self.nodes[i]
        return n.name or f"{n.op_type}_{i}"

    def is_const(self, name: str) -> bool:
        """True when ``name`` is an initializer or a Constant output."""
        return bool(name) and name in self.constants

    def _const(self, name: str) -> TensorProto:
        t = self.constants.get(name)
        if t is None:  # e.g. a scale computed at run time, or a name no node produces
            raise TensorReadError(f"'{name}' is not a constant of the model")
        return t

    def array(self, name: str) -> np.ndarray:
        """Decode constant ``name`` (see :func:`analysis.tensors.tensor_to_array`)."""
        return tensor_to_array(self._const(name), self.base_dir, self.ext_memo)

    def dtype(self, name: str) -> int:
        """ONNX element type of constant ``name``."""
        return self._const(name).data_type

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of constant ``name``."""
        return tuple(int(d) for d in self._const(name).dims)


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


def _iter_tensors(msg):
    """Every ``TensorProto`` anywhere in ``msg`` (initializers, sparse tensors, node
    attributes, subgraphs at any depth, functions, training info)."""
    stack = [msg]
    while stack:
        m = stack.pop()
        if isinstance(m, TensorProto):
            yield m
            continue
        for fd, value in m.ListFields():
            if fd.message_type is None:
                continue
            if hasattr(value, "ListFields"):
                stack.append(value)
            else:  # a repeated message field
                stack.extend(value)


def _subgraph_weights(g: onnx.GraphProto) -> int:
    """Initializers and Constant nodes inside the If/Loop/Scan bodies of ``g`` (any depth)."""
    n, stack = 0, [g]
    while stack:
        for node in stack.pop().node:
            for a in node.attribute:
                subs = [a.g] if a.HasField("g") else []
                for sg in [*subs, *a.graphs]:
                    n += len(sg.initializer) + len(sg.sparse_initializer)
                    n += sum(1 for x in sg.node if x.op_type == "Constant")
                    stack.append(sg)
    return n


def _version_warnings(model: onnx.ModelProto) -> list[str]:
    out = []
    known_ir, known_opset = onnx.IR_VERSION, onnx.defs.onnx_opset_version()
    if model.ir_version > known_ir:
        out.append(f"IR version {model.ir_version} is newer than the installed onnx knows ({known_ir}): "
                   "the model was read as far as this onnx understands it")
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and o.version > known_opset:
            out.append(f"opset {o.version} is newer than the installed onnx knows ({known_opset}): "
                       f"operators are read with the rules of opset {known_opset}; check the results")
    return out


def _not_text(what: str, raw: bytes) -> ModelLoadError:
    # protobuf hands back bytes for a string field that is not valid UTF-8
    return ModelLoadError(f"{what} is not a valid ONNX model: a node or tensor name is not UTF-8 text "
                          f"({raw[:60]!r})")


def _index(model: onnx.ModelProto, path: Path | None, base_dir: Path | None,
           what: str = "the model") -> ModelGraph:
    g = model.graph
    mg = ModelGraph(path=path, base_dir=base_dir, proto=model)
    mg.opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    mg.warnings.extend(_version_warnings(model))
    for t in g.initializer:
        if type(t.name) is bytes:
            raise _not_text(what, t.name)
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
        for text in (n.name, n.op_type, n.domain):
            if type(text) is bytes:
                raise _not_text(what, text)
        for slot, name in enumerate(n.input):
            if name:
                if type(name) is bytes:
                    raise _not_text(what, name)
                mg.consumers.setdefault(name, []).append((i, slot))
        for name in n.output:
            if name:
                if type(name) is bytes:
                    raise _not_text(what, name)
                mg.producer[name] = i
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output:
            t = _constant_tensor(n)
            if t is not None and n.output[0] not in mg.constants:
                t.name = n.output[0]
                mg.constants[n.output[0]] = t
                mg.constant_storage[n.output[0]] = "constant_node"
    for name, t in list(mg.constants.items()):
        try:
            tensor_shape(t)  # impossible dims would break every size computed later
        except TensorReadError as e:
            del mg.constants[name], mg.constant_storage[name]
            mg.warnings.append(f"{e}; it was ignored")
    n_sub = _subgraph_weights(g)
    if n_sub:
        mg.warnings.append(f"{n_sub} weight(s) inside If/Loop/Scan subgraphs are not analysed "
                           "(only the main graph is)")
    return mg


def _check(model: onnx.ModelProto, what: str) -> None:
    if not model.ir_version:
        raise ModelLoadError(f"{what} is not an ONNX model (no IR version; empty or not a model file)")
    if not model.HasField("graph") or (not len(model.graph.node) and not len(model.graph.initializer)):
        raise ModelLoadError(f"{what} holds an ONNX model with no nodes and no weights: nothing to analyse")
    g, limit = model.graph, max_tensors()
    n = len(g.initializer) + sum(1 for x in g.node if x.op_type == "Constant")
    if n > limit:
        raise ModelLoadError(f"{what} holds {n} constant tensors, more than QuantLens analyses ({limit}; "
                             "set QUANTLENS_MAX_TENSORS to raise the limit)")


def parse_model_bytes(data: bytes, label: str = "upload") -> ModelGraph:
    """Parse a model from bytes (uploads): external data is refused, not followed.

    Raises
    ------
    ModelLoadError
        Not protobuf, empty, or a model whose weights live in side files.
    """
    if len(data) > MAX_PROTO_BYTES:
        raise ModelLoadError(f"{label} is {len(data)} bytes, over the 2 GiB protobuf limit")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{label} is not an ONNX model (protobuf decode failed: {e})") from None
    _check(model, label)
    if any(t.data_location == TensorProto.EXTERNAL for t in _iter_tensors(model)):
        raise ModelLoadError(
            f"{label} keeps its weights in external data files; uploads must be self-contained: "
            "place the model and its data files in the server's model folder instead")
    return _index(model, None, None, label)


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
    UnsafeModelError
        External data that leaves the model folder (links, ``..``, absolute
        paths, special files, unknown keys); nothing is read from it.
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
    mg = _index(model, p, p.parent, f"'{p.name}'")
    for t in mg.constants.values():
        if t.data_location == TensorProto.EXTERNAL:
            # Refuse a model whose external data escapes its folder before anything is read;
            # a missing or short file is reported per tensor when it is read.
            try:
                external_data_path(t, mg.base_dir, memo=mg.ext_memo)  # each file checked once
            except UnsafeModelError as e:
                raise UnsafeModelError(f"'{p.name}' refused: {e}") from None
            except TensorReadError:
                pass
    return mg

