"""Data parallel training: 2 processes under torchrun (gloo, CPU) give the losses of 1 process at the same global batch.

The global batch (stage `batch_size`) is split in two; each rank's summed loss
is normalised by the global token count and DDP averages gradients, so the
only differences from one process are float summation orders: measured, the
losses agree to 8e-8 relative and the weights to 6e-8 absolute after 6 steps
(asserted with 1e-4 and 1e-5 margins).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

from forgetscope.train.config import parse_run_config  # noqa: E402
from forgetscope.train.runner import train_run  # noqa: E402


def _script() -> str | None:
    """The `forgetscope` console script (torchrun needs a file to run)."""
    candidate = Path(sys.executable).parent / "forgetscope"
    return str(candidate) if candidate.exists() else shutil.which("forgetscope")


@pytest.mark.slow
@pytest.mark.skipif(_script() is None, reason="the forgetscope console script is not installed")
def test_two_processes_match_one_at_the_same_global_batch(tiny_tokenizer_dir: Path, tmp_path: Path) -> None:
    data = {
        "name": "ddp", "seed": 3, "seq_len": 32, "val_sequences": 4,
        "model": {"hidden": 32, "layers": 2, "heads": 2, "context": 64},
        "tokenizer": {"path": str(tiny_tokenizer_dir)},
        "sources": {"general": {"type": "synthetic", "docs": 200}, "facts": {"type": "synthetic", "docs": 200}},
        "stages": [{"name": "pretrain", "kind": "pretrain", "mixture": {"general": 1, "facts": 1}, "steps": 6,
                    "batch_size": 8, "lr": 3e-3, "warmup": 1, "checkpoint_every": 3}],
    }
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(data))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", _script(),
               "train", str(tmp_path / "ddp.yaml"), "--output", str(tmp_path / "two"), "--device", "cpu",
               "--threads", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    single = train_run(parse_run_config(data), tmp_path / "one", device="cpu", log=None)
    assert single.finished
    two = json.loads((tmp_path / "two" / "stage-pretrain.json").read_text())
    one = json.loads((tmp_path / "one" / "stage-pretrain.json").read_text())
    assert len(two["losses"]) == len(one["losses"]) == 6
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert two["losses"][-1] < two["losses"][0]  # it trained
    # rank 0 alone wrote the checkpoints and the manifest, with the same accounting
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["checkpoints"]] == ["pretrain/step-3", "pretrain/step-6"]
    assert [c["tokens_seen"] for c in manifest["checkpoints"]] == \
        [c["tokens_seen"] for c in json.loads((tmp_path / "one" / "manifest.json").read_text())["checkpoints"]]
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "two/checkpoints/pretrain-step000006/model.safetensors"))
    b = load_file(str(tmp_path / "one/checkpoints/pretrain-step000006/model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=0) for k in a)
