"""The float constants of a model (the FP32 reference's weights), with their roles."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import ModelGraph
from .roles import role_of
from .tensors import FLOAT_TYPES

__all__ = ["FloatWeight", "float_weights"]


@dataclass
class FloatWeight:
    """One float constant read by at least one node.

    Attributes
    ----------
    name : str
    shape : tuple
    role : str
        From the first consumer and slot (see :func:`analysis.roles.role_of`).
    consumers, consumer_ops : list of str
    slots : list of (str, int)
        ``(node name, input slot)`` for every read.
    order : int
        Index of the first consumer node (graph order).
    storage : str
    dtype : int
        ONNX element type.
    """

    name: str
    shape: tuple
    role: str
    consumers: list = field(default_factory=list)
    consumer_ops: list = field(default_factory=list)
    slots: list = field(default_factory=list)
    order: int = 0
    storage: str = "initializer"
    dtype: int = 1

    @property
    def numel(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n


def float_weights(mg: ModelGraph) -> dict[str, FloatWeight]:
    """Every float constant of ``mg`` that some node reads, in graph order.

    Constants read only as a quantization scale (input 1 of Q/DQ) are skipped:
    they are parameters, not weights.
    """
    out: dict[str, FloatWeight] = {}
    for name, t in mg.constants.items():
        if t.data_type not in FLOAT_TYPES:
            continue
        reads = [(i, s) for i, s in mg.consumers.get(name, [])
                 if not (mg.nodes[i].op_type in ("QuantizeLinear", "DequantizeLinear") and s > 0)]
        if not reads:
            continue
        i0, s0 = min(reads)
        n0 = mg.nodes[i0]
        other = None
        if n0.op_type == "Add" and len(n0.input) == 2:
            pi = mg.producer.get(n0.input[1 - s0])
            other = mg.nodes[pi].op_type if pi is not None else None
        fw = FloatWeight(name=name, shape=mg.shape(name), role=role_of(n0.op_type, s0, other),
                         order=i0, storage=mg.constant_storage.get(name, "initializer"),
                         dtype=t.data_type)
        for i, s in reads:
            nm = mg.node_name(i)
            fw.slots.append((nm, s))
            if nm not in fw.consumers:
                fw.consumers.append(nm)
                fw.consumer_ops.append(mg.nodes[i].op_type)
        out[name] = fw
    return dict(sorted(out.items(), key=lambda kv: kv[1].order))
