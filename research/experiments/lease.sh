# Shared by the GPU sweeps (source it): the lease's setup and what comes back from it.
# Needs PY (the python to run) set before it is sourced.

start_lease() {  # say which GPU and torch the runs get (stop if torch is missing), then start MPS
  nvidia-smi -L 2>/dev/null
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())" || exit 1
  # MPS lets many small processes' kernels share the GPU instead of time-slicing it
  if nvidia-cuda-mps-control -d 2>/dev/null; then
    timeout 60 $PY -c "import torch; torch.ones(1).cuda(); print('mps ok')" || { echo quit | nvidia-cuda-mps-control; echo 'mps off'; }
  fi
}

slim_checkpoints() {  # slim_checkpoints DIR: keep model weights only (3 MB per run, no optimizer state)
  $PY - "$1" <<'PY'
import pathlib, sys
from safetensors import safe_open
from safetensors.torch import save_file
for ck in pathlib.Path(sys.argv[1]).glob("*/ckpt.safetensors"):
    with safe_open(str(ck), "pt") as f:
        meta, t = f.metadata(), {k: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
    save_file(t, str(ck), metadata=meta)
PY
}
