"""Weight-only INT8: the INT8 Q/DQ model with its activation QuantizeLinear → DequantizeLinear pairs removed, so
only the weights stay INT8 (per-channel, through DequantizeLinear) and the GEMMs see float activations — how
TensorRT-RTX lists its INT8 GEMMs (weight-only). Neither ONNX Runtime's quantizer nor onnx offers this form (ORT's
weight-only path writes MatMulNBits, a contrib op TensorRT does not parse; NVIDIA ModelOpt needs PyTorch), so the
pairs are bypassed here with plain ``onnx`` edits.
"""

from __future__ import annotations

from pathlib import Path


def weight_only(qdq_model: str | Path, out: str | Path) -> Path:
    """Writes ``out``: ``qdq_model`` without its activation Q/DQ pairs (weights keep their DequantizeLinear)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(qdq_model))
    g = model.graph
    inits = {i.name for i in g.initializer}
    quant = {n.output[0]: n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    bypass: dict[str, str] = {}  # DequantizeLinear output -> the float tensor its QuantizeLinear read
    dropped: set[int] = set()
    for i, n in enumerate(g.node):
        if n.op_type == "DequantizeLinear" and n.input[0] in quant:
            bypass[n.output[0]] = quant[n.input[0]].input[0]
            dropped.add(i)
    used = {x for i, n in enumerate(g.node) if i not in dropped for x in n.input}
    kept = []
    for i, n in enumerate(g.node):
        if i in dropped or (n.op_type == "QuantizeLinear" and n.output[0] in quant and n.output[0] not in used):
            continue
        for k, x in enumerate(n.input):
            if x in bypass:
                n.input[k] = bypass[x]
        kept.append(n)
    for o in g.output:  # a graph output written by a bypassed DequantizeLinear keeps its name
        if o.name in bypass:
            kept.append(helper.make_node("Identity", [bypass[o.name]], [o.name], name=f"{o.name}/weight_only"))
    del g.node[:]
    g.node.extend(kept)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out
