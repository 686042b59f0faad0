"""llama.cpp (llama-cpp-python's low-level bindings) running a qwen35 GGUF of export/to_gguf.py.

`GgufBackend` is the runtime's backend="gguf": wake steps in llama.cpp, sleep passes on the
ONNX sleep graph. It is built on `LlamaSession`, one llama.cpp context whose recurrent state
the fast weights S go into and come out of. S lives outside llama.cpp, as in the ONNX backend:
`inject` writes it (and optionally the conv state) into llama.cpp's recurrent cache through the
sequence-state API and clears the attention cache; `read_state` reads it back.

    with LlamaSession("model.gguf", n_threads=1) as s:
        s.inject({1: S1, 3: S3})          # S per GDN layer: (H, dv, dk) float32
        logits = s.decode(token, pos=0)   # (vocab,) float32
        S = s.read_state()

The sequence-state blob (llama_state_seq_get_data_ext / set_data_ext with PARTIAL_ONLY, seq 0),
as the llama.cpp in llama-cpp-python 0.3.36 writes it for a hybrid model (the recurrent
memory's part only); little-endian, packed:

    u32 magic = 0xaf143cd8, i32 seq_id
    u32 cell_count                                    (1 for a live sequence, 0 when empty)
    cell_count x {i32 pos, u32 n_seq_id = 0}
    u32 s_trans = 0, u32 n_layer                      (n_layer counts every layer, attention too)
    per GDN layer, in layer order: {i32 type = 0 (f32), u64 row_bytes, cell_count rows}
        conv row: ggml {K-1, C} = numpy (C, K-1), the raw pre-conv [q|k|v] of the last K-1
        tokens, oldest first
    per GDN layer, in layer order: {i32 type = 0 (f32), u64 row_bytes, cell_count rows}
        S row: ggml {dk, dv, H} = numpy (H, dv, dk): element h*dk*dv + j*dk + i is S[h, j, i]
        with j the value index and i the key index (its GDN kernel computes
        delta[j] = sum_i S[i][j] k[i] and stores S[i][j] at j*dk + i), i.e. our S (H, dv, dk)
        row-major, no transpose

`_Layout.parse` checks every field against the model and raises StateLayoutError when the
blob is not exactly this; a probe at load time checks it once, before any state is trusted.
"""
from __future__ import annotations

import ctypes
import os
import struct
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesleep.backends import feed_by_steps
from edgesleep.backends.onnx import OnnxSleep
from edgesleep.config import Config
from edgesleep.state import FastWeights, Window

MAGIC = 0xAF143CD8
TYPE_F32 = 0  # ggml_type GGML_TYPE_F32
PARTIAL_ONLY = 1  # LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
SEQ = 0
LAYOUT_OF = "0.3.36"  # the llama-cpp-python whose blob layout the docstring describes

_lib = None
_log_tail: deque[str] = deque(maxlen=20)
_log_cb = None


class StateLayoutError(RuntimeError):
    """llama.cpp's sequence-state blob is not laid out as this module expects: llama.cpp changed
    its format, and the layout above must follow it before any state is trusted."""

    def __init__(self, message: str):
        installed = getattr(_lib, "__version__", "unknown")
        super().__init__(f"{message} (this backend reads the layout of llama-cpp-python {LAYOUT_OF}; "
                         f"installed: {installed})")


def _llama():
    """Import llama_cpp once, route its log through us (quiet unless EDGESLEEP_LLAMA_LOG is
    set; the last lines are kept for error messages), init the backend."""
    global _lib, _log_cb
    if _lib is None:
        try:
            import llama_cpp
        except ImportError:
            raise ImportError("the gguf backend needs llama-cpp-python (pip install llama-cpp-python)") from None
        verbose = bool(os.environ.get("EDGESLEEP_LLAMA_LOG"))

        @llama_cpp.llama_log_callback
        def cb(level, text, user_data):
            line = text.decode("utf-8", "replace") if text else ""
            if level in (2, 3):  # warn, error
                _log_tail.append(line.rstrip())
            if verbose:
                print(line, end="", file=sys.stderr, flush=True)

        _log_cb = cb  # keep a reference: llama.cpp holds the bare pointer
        llama_cpp.llama_log_set(_log_cb, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _lib = llama_cpp
    return _lib


def _last_log() -> str:
    lines = [line for line in _log_tail if line]
    return f" (llama.cpp: {lines[-1]})" if lines else ""


@dataclass(frozen=True)
class _Layout:
    """The recurrent part of the blob for one model."""

    n_layer: int
    gdn_layers: tuple[int, ...]
    heads: int
    dk: int
    channels: int  # C = 2*Hk*dk + Hv*dv
    kernel: int  # K

    @property
    def conv_row(self) -> int:
        return 4 * self.channels * (self.kernel - 1)

    @property
    def s_row(self) -> int:
        return 4 * self.heads * self.dk * self.dk

    def write(self, S: dict[int, np.ndarray], conv: dict[int, np.ndarray], pos: int) -> bytes:
        parts = [struct.pack("<IiIiI", MAGIC, SEQ, 1, pos, 0), struct.pack("<II", 0, self.n_layer)]
        for rows, size in ((conv, self.conv_row), (S, self.s_row)):
            for i in self.gdn_layers:
                parts += [struct.pack("<iQ", TYPE_F32, size), rows[i].tobytes()]
        return b"".join(parts)

    def parse(self, blob: bytes) -> tuple[int | None, dict[int, np.ndarray], dict[int, np.ndarray]]:
        """-> (pos or None when empty, conv per GDN layer, S per GDN layer)."""
        off = 0

        def take(fmt: str):
            nonlocal off
            n = struct.calcsize(fmt)
            if off + n > len(blob):
                raise StateLayoutError(f"state blob ends early at byte {off} of {len(blob)}")
            v = struct.unpack_from(fmt, blob, off)
            off += n
            return v

        def expect(what: str, got, want):
            if got != want:
                raise StateLayoutError(f"state blob: {what} is {got}, expected {want}; the llama.cpp "
                                       "sequence-state layout differs from the one this backend was written for")

        magic, _seq, cells = take("<IiI")
        expect("magic", hex(magic), hex(MAGIC))
        if cells not in (0, 1):
            raise StateLayoutError(f"state blob: {cells} recurrent cells for one sequence, expected 0 or 1")
        pos = None
        if cells:
            pos, n_seq_id = take("<iI")
            expect("n_seq_id", n_seq_id, 0)
        s_trans, n_layer = take("<II")
        expect("s_trans", s_trans, 0)
        expect("n_layer", n_layer, self.n_layer)
        out: list[dict[int, np.ndarray]] = [{}, {}]
        shapes = ((self.channels, self.kernel - 1), (self.heads, self.dk, self.dk))
        for part, (size, shape) in enumerate(zip((self.conv_row, self.s_row), shapes)):
            for i in self.gdn_layers:
                typ, row = take("<iQ")
                expect(f"type of layer {i}", typ, TYPE_F32)
                expect(f"row bytes of layer {i}", row, size)
                n = row * cells
                if off + n > len(blob):
                    raise StateLayoutError(f"state blob ends early in layer {i}")
                if cells:
                    out[part][i] = np.frombuffer(blob, np.float32, row // 4, off).reshape(shape).copy()
                off += n
        expect("blob length", len(blob), off)
        return pos, out[0], out[1]


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf_kv(path: str | Path) -> dict:
    """The key/value header of a GGUF file (v2/v3): scalars, strings and arrays of them."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        def unpack(fmt: str):
            n = struct.calcsize(fmt)
            b = f.read(n)
            if len(b) != n:
                raise ValueError(f"{path} is not a GGUF file (truncated header)")
            return struct.unpack(fmt, b)[0]

        def string() -> str:
            n = unpack("<Q")
            if n > size - f.tell():
                raise ValueError(f"{path} is not a GGUF file (truncated header)")
            return f.read(n).decode("utf-8", "replace")

        def value(t: int):
            if t == 8:
                return string()
            if t == 9:
                et, n = unpack("<I"), unpack("<Q")
                return [value(et) for _ in range(n)]
            if t not in _GGUF_SCALARS:
                raise ValueError(f"{path}: unknown GGUF value type {t}")
            return unpack(_GGUF_SCALARS[t])

        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        if unpack("<I") not in (2, 3):
            raise ValueError(f"{path}: unsupported GGUF version")
        unpack("<Q")  # tensor count
        return {string(): value(unpack("<I")) for _ in range(unpack("<Q"))}


class LlamaSession:
    """One llama.cpp context over a qwen35 GGUF: one sequence, f32 attention cache."""

    def __init__(self, path: str | Path, n_threads: int | None = None, n_ctx: int = 256,
                 flash_attn: bool = False):
        L = _llama()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
        self._L = L
        self.path = path
        self._model = self._ctx = self._batch = None
        arch = read_gguf_kv(path).get("general.architecture")
        if arch != "qwen35":
            raise ValueError(f"{path}: architecture {arch!r}, expected 'qwen35'")
        self.layout = self._layout()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        self._model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not self._model:
            raise ValueError(f"{path} is not a GGUF model llama.cpp can load{_last_log()}")
        n_threads = int(n_threads or max(1, (os.cpu_count() or 2) // 2))
        cp = L.llama_context_default_params()
        cp.n_ctx = cp.n_batch = cp.n_ubatch = int(n_ctx)
        cp.n_seq_max = 1
        cp.n_rs_seq = 0
        cp.n_threads = cp.n_threads_batch = n_threads
        cp.type_k = cp.type_v = L.GGML_TYPE_F32
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.embeddings = False
        cp.no_perf = True
        self._ctx = L.llama_init_from_model(self._model, cp)
        if not self._ctx:
            self.close()
            raise RuntimeError(f"llama.cpp could not create a context for {path}{_last_log()}")
        self.n_ctx = L.llama_n_ctx(self._ctx)
        self.vocab_size = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self._model))
        self._mem = L.llama_get_memory(self._ctx)
        self.batch_size = int(n_ctx)  # llama.cpp may round n_ctx up; the batch holds exactly this many
        self._batch = L.llama_batch_init(self.batch_size, 0, 1)
        self.n_threads = n_threads
        self._probe()

    # -- model facts ------------------------------------------------------------------------
    def _layout(self) -> _Layout:
        """The recurrent layout from the GGUF header (llama.cpp's meta API omits arrays, and
        which layers are GDN is an array: qwen35.attention.recurrent_layers)."""
        kv = read_gguf_kv(self.path)

        def num(key: str) -> int:
            if "qwen35." + key not in kv:
                raise ValueError(f"{self.path} lacks qwen35.{key}")
            return int(kv["qwen35." + key])

        n_layer = num("block_count")
        flags = kv.get("qwen35.attention.recurrent_layers")
        if flags is None:  # llama.cpp's default rule for qwen35
            every = int(kv.get("qwen35.full_attention_interval", 4))
            flags = [(i + 1) % every != 0 for i in range(n_layer)]
        dk, hk, hv = num("ssm.state_size"), num("ssm.group_count"), num("ssm.time_step_rank")
        if hk != hv or num("ssm.inner_size") != hv * dk:
            raise ValueError(f"unsupported GDN heads: group_count {hk}, time_step_rank {hv}, inner_size "
                             f"{num('ssm.inner_size')} (this backend needs Hk = Hv and inner = Hv*dk)")
        return _Layout(n_layer, tuple(i for i, f in enumerate(flags) if f), hv, dk, 2 * hk * dk + hv * dk,
                       num("ssm.conv_kernel"))

    @property
    def gdn_layers(self) -> tuple[int, ...]:
        return self.layout.gdn_layers

    def _probe(self) -> None:
        """The layout check: an empty sequence's blob must parse, then a written zero state
        must read back exactly."""
        self.layout.parse(self._get_blob())
        zero = {i: np.zeros((self.layout.heads, self.layout.dk, self.layout.dk), np.float32)
                for i in self.gdn_layers}
        self.inject(zero)
        if self._get_blob() != self.layout.write(zero, self._zero_conv(), -1):
            raise StateLayoutError("llama.cpp's state blob does not round-trip; its layout differs from "
                                   "the one this backend was written for")
        self.reset()

    def _zero_conv(self) -> dict[int, np.ndarray]:
        a = self.layout
        return {i: np.zeros((a.channels, a.kernel - 1), np.float32) for i in a.gdn_layers}

    # -- state --------------------------------------------------------------------------------
    def _get_blob(self) -> bytes:
        L = self._L
        n = L.llama_state_seq_get_size_ext(self._ctx, SEQ, PARTIAL_ONLY)
        buf = (ctypes.c_uint8 * n)()
        got = L.llama_state_seq_get_data_ext(self._ctx, buf, n, SEQ, PARTIAL_ONLY)
        if got != n:
            raise RuntimeError(f"llama_state_seq_get_data_ext wrote {got} of {n} bytes{_last_log()}")
        return bytes(buf)

    def reset(self) -> None:
        """Empty attention cache and zero recurrent state."""
        self._L.llama_memory_clear(self._mem, True)

    def inject(self, S: dict[int, np.ndarray], conv: dict[int, np.ndarray] | None = None, pos: int = -1) -> None:
        """Clear the attention cache and set the recurrent state: S per GDN layer (H, dv, dk),
        conv per GDN layer (C, K-1) raw rows oldest first (zero when None). `pos` is the
        position of the last token the state has seen; decode continues at pos + 1 (default:
        a fresh window at position 0)."""
        a = self.layout
        if set(S) != set(a.gdn_layers):
            raise ValueError(f"S has layers {sorted(S)}, the model's GDN layers are {list(a.gdn_layers)}")
        conv = self._zero_conv() if conv is None else conv
        if set(conv) != set(a.gdn_layers):
            raise ValueError(f"conv has layers {sorted(conv)}, the model's GDN layers are {list(a.gdn_layers)}")
        checked = []
        for rows, shape, name in ((S, (a.heads, a.dk, a.dk), "S"), (conv, (a.channels, a.kernel - 1), "conv")):
            out = {}
            for i, x in rows.items():
                x = np.ascontiguousarray(x, np.float32)
                if x.shape != shape:
                    raise ValueError(f"{name}[{i}] has shape {x.shape}, expected {shape}")
                out[i] = x
            checked.append(out)
        blob = a.write(checked[0], checked[1], pos)
        L = self._L
        if not L.llama_memory_seq_rm(self._mem, SEQ, -1, -1):  # the attention KV (and the old state)
            raise RuntimeError(f"llama_memory_seq_rm failed{_last_log()}")
        buf = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
        got = L.llama_state_seq_set_data_ext(self._ctx, buf, len(blob), SEQ, PARTIAL_ONLY)
        if got != len(blob):
            raise StateLayoutError(f"llama.cpp read {got} of {len(blob)} state bytes{_last_log()}")

    def read_recurrent(self) -> tuple[int | None, dict[int, np.ndarray], dict[int, np.ndarray]]:
        """(position of the last token seen or None, conv per GDN layer, S per GDN layer)."""
        return self.layout.parse(self._get_blob())

    def read_state(self) -> dict[int, np.ndarray]:
        """S per GDN layer, (H, dv, dk) float32 (zeros when the sequence is empty)."""
        pos, _, S = self.read_recurrent()
        if pos is None:
            a = self.layout
            return {i: np.zeros((a.heads, a.dk, a.dk), np.float32) for i in a.gdn_layers}
        return S

    # -- decode -------------------------------------------------------------------------------
    def decode(self, token: int, pos: int) -> np.ndarray:
        """Run one token at position `pos`; returns its logits (vocab,) float32."""
        return self.decode_many([token], pos)

    def decode_many(self, tokens: list[int], pos: int) -> np.ndarray:
        """Run tokens at positions pos, pos+1, ... in one batch; returns the last one's logits."""
        n = len(tokens)
        if not 0 < n <= self.batch_size:
            raise ValueError(f"between 1 and {self.batch_size} tokens per call, got {n}")
        b = self._batch
        for j, t in enumerate(tokens):
            if not 0 <= int(t) < self.vocab_size:
                raise ValueError(f"token {t} is outside the vocabulary (0..{self.vocab_size - 1})")
            b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = int(t), pos + j, 1, 0
            b.seq_id[j][0] = SEQ
        b.logits[n - 1] = 1
        b.n_tokens = n
        rc = self._L.llama_decode(self._ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with {rc}{_last_log()}")
        ptr = self._L.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.vocab_size,)).copy()

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        L = getattr(self, "_L", None)
        if L is None:
            return
        if self._batch is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            L.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            L.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> "LlamaSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class GgufBackend:
    """backend="gguf": wake steps in llama.cpp, sleep passes on the ONNX sleep graph.

    A window starts with an empty attention cache and the fast weights injected with a zero
    conv state; after every token S is read back from llama.cpp, so a light sleep (N = 1) is
    free, as with ONNX. The attention cache and conv state stay inside llama.cpp (the window's
    kv and conv are unused); when a window that llama.cpp no longer holds comes back (`answer`
    restores the one before the question), its cache is rebuilt from `window.start` and its
    tokens. Deep sleep runs every pass, the first included, on the sleep graph, as under ONNX.
    """

    def __init__(self, model_dir: Path, config: Config, threads: int | None = None, quant: str = "f32"):
        file = "model.gguf" if quant == "f32" else f"model.{quant}.gguf"
        if not (model_dir / file).is_file():
            how = "" if quant == "f32" else f" --quant {quant}"
            raise FileNotFoundError(f"{model_dir} has no {file} for the gguf backend; make it with "
                                    f"`python -m export.to_gguf {model_dir}{how}` (needs the train and gguf extras)")
        self.args = config.args
        self._sleep = OnnxSleep(model_dir, config, threads)
        self.name = "gguf" if quant == "f32" else f"gguf:{quant}"
        a = config.args
        self.session = LlamaSession(model_dir / file, n_threads=threads or 1, n_ctx=a.window)
        lay = self.session.layout
        if (self.session.vocab_size, lay.gdn_layers, lay.heads, lay.dk) != \
                (a.vocab_size, tuple(a.gdn_layers), a.gdn_heads, a.gdn_head_dim):
            self.session.close()
            raise ValueError(f"{model_dir / file} does not match {model_dir / 'config.json'}; re-export it")
        self._live: tuple[Window, int, dict[int, np.ndarray]] | None = None  # what llama.cpp holds

    def close(self) -> None:
        self.session.close()

    def embed(self, tokens: list[int]) -> np.ndarray:
        return self._sleep.embed(tokens)

    def feed(self, tokens: list[int], window: Window, fast: FastWeights) -> np.ndarray:
        return feed_by_steps(self, tokens, window, fast)  # S is read back after every token

    def sleep_pass(self, features: np.ndarray, mask: np.ndarray, fast: FastWeights) -> tuple[np.ndarray, FastWeights]:
        return self._sleep.sleep_pass(features, mask, fast)

    def step(self, token: int, window: Window, fast: FastWeights) -> np.ndarray:
        """One wake step, as OnnxBackend.step: appends `token` to `window`, updates `fast` in
        place, returns the logits."""
        s = self.session
        if not window.pos:
            window.start = fast.copy()
            s.inject(fast.S)
        elif not self._holds(window, fast):
            s.inject(window.start.S)
            s.decode_many(window.tokens, 0)
        logits = s.decode(token, window.pos)
        fast.S.update(s.read_state())
        window.tokens.append(token)
        self._live = (window, window.pos, dict(fast.S))
        return logits

    def _holds(self, window: Window, fast: FastWeights) -> bool:
        """Whether llama.cpp's state is `window` with `fast` as the last step left them. By
        identity: a restored window or fast weights are copies."""
        if self._live is None:
            return False
        live, pos, S = self._live
        return live is window and pos == window.pos and all(fast.S[i] is x for i, x in S.items())
