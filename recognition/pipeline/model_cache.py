"""Models converted by RollCall from files pip installed, cached outside the repository.

A converted model is a state dict (``NAME.pt``) with a checksum record (``NAME.json``) and an ONNX
export (``NAME.onnx`` stamped by ``NAME.onnx.src``) in ``$ROLLCALL_CACHE/models``. Processes that
start together (web, workers) convert once under a file lock; every file is written atomically,
so none is ever read half-written. A checksum mismatch or a changed source reconverts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("ROLLCALL_CACHE", Path.home() / ".cache" / "rollcall")) / "models"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Held while ``name``'s files are checked and filled."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """``write(partial)`` then rename over ``target``; a failed write leaves no file behind."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def converted_checkpoint(name: str, source: Path, convert: Callable[[Path], dict], *, refresh: bool = False) -> Path:
    """Path of ``name``'s state dict converted from ``source`` by ``convert``, cached with a checksum."""
    import torch

    with cache_lock(name):
        target = cache_dir() / f"{name}.pt"
        meta_path = target.with_suffix(".json")
        stat = source.stat()
        source_key = f"{stat.st_size}:{int(stat.st_mtime)}"
        if not refresh and target.is_file() and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("source") == source_key and meta.get("sha256") == sha256(target):
                return target
        state = convert(source)
        write_atomically(target, lambda path: torch.save(state, path))
        meta = json.dumps({"source": source_key, "from": str(source), "sha256": sha256(target)})
        write_atomically(meta_path, lambda path: path.write_text(meta))
        return target


def exported_onnx(name: str, checkpoint: Path, build: Callable[[], object], example_shape: tuple[int, ...],
                  *, refresh: bool = False) -> Path:
    """``name``'s state dict loaded into ``build()`` and exported to ONNX with a dynamic batch axis."""
    import torch

    with cache_lock(name):
        target = cache_dir() / f"{name}.onnx"
        stamp = target.with_suffix(".onnx.src")
        source_sha = json.loads(checkpoint.with_suffix(".json").read_text())["sha256"]
        if not refresh and target.is_file() and stamp.is_file() and stamp.read_text() == source_sha:
            return target
        model = build().eval()
        model.load_state_dict(torch.load(str(checkpoint), map_location="cpu", weights_only=True))

        def export(path: Path) -> None:
            with warnings.catch_warnings():
                # Shapes that only depend on the fixed input size are traced as constants, as meant.
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.onnx.export(
                    model, (torch.zeros(*example_shape),), str(path), input_names=["input"],
                    output_names=["embeddings"], dynamic_axes={"input": {0: "batch"}, "embeddings": {0: "batch"}},
                    opset_version=17, dynamo=False,
                )

        write_atomically(target, export)
        write_atomically(stamp, lambda path: path.write_text(source_sha))
        return target
