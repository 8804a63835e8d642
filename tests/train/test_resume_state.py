"""Resume state holds no pickle: exact round trip, and a planted pickle is never loaded."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from forgetscope.cli import app  # noqa: E402
from forgetscope.train.checkpoints import load_state, save_state  # noqa: E402
from forgetscope.train.config import parse_run_config  # noqa: E402
from forgetscope.train.runner import RunError, train_run  # noqa: E402
from forgetscope.train.trainer import make_optimizer  # noqa: E402

from .test_runner import tiny_config  # noqa: E402


class Payload:
    """Unpickling this creates a directory: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": 8, "optimizer": Payload(marker)}, path)


def test_state_round_trip_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    optimizer = make_optimizer(model, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    state = {"step": 3, "hash": "abc", "optimizer": optimizer.state_dict(), "losses": [1.5, float("nan"), 0.1 + 0.2],
             "rng": [torch.get_rng_state(), torch.get_rng_state()], "world": 2, "nested": {"$tensor": "not a tensor"}}
    save_state(state, tmp_path / "s.safetensors")
    back = load_state(tmp_path / "s.safetensors")
    assert back["step"] == 3 and back["hash"] == "abc" and back["world"] == 2
    assert back["nested"] == {"$tensor": "not a tensor"}  # a dict that looks like a tag stays a dict
    assert back["losses"][0] == 1.5 and math.isnan(back["losses"][1]) and back["losses"][2] == 0.1 + 0.2
    assert all(torch.equal(a, b) and a.dtype == torch.uint8 for a, b in zip(back["rng"], state["rng"]))
    want, got = state["optimizer"], back["optimizer"]
    assert got["param_groups"] == want["param_groups"]
    assert isinstance(got["param_groups"][0]["betas"], tuple)
    assert set(got["state"]) == set(want["state"]) and all(isinstance(k, int) for k in got["state"])
    for key, slots in want["state"].items():
        for name, tensor in slots.items():
            assert torch.equal(got["state"][key][name], tensor) and got["state"][key][name].dtype == tensor.dtype
    # the restored state drives the optimizer to the same next step
    clone = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    clone.load_state_dict(model.state_dict())
    other = make_optimizer(clone, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    other.load_state_dict(got)
    batch = torch.randn(5, 4)
    for m, opt in ((model, optimizer), (clone, other)):
        m(batch).pow(2).sum().backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), clone.parameters()))


@pytest.fixture()
def stopped_run(tiny_tokenizer_dir: Path, tmp_path: Path):
    """A run stopped after its first checkpoint (step 8 of the first stage): it resumes from state."""
    config = parse_run_config(tiny_config(tiny_tokenizer_dir))
    run = tmp_path / "run"
    result = train_run(config, run, device="cpu", log=None, max_steps=9)
    assert not result.finished
    state = run / "state" / "pretrain-step000008.safetensors"
    assert state.exists()
    return config, run, state


def test_planted_pickle_state_is_not_loaded(stopped_run, tmp_path: Path) -> None:
    config, run, state = stopped_run
    marker = tmp_path / "PWNED"
    state.unlink()
    _plant(state.with_suffix(".pt"), marker)  # where forgetscope used to keep (and unpickle) the state
    with pytest.raises(RunError, match=r"pretrain-step000008\.pt: resume state in the pickle format.*delete it"):
        train_run(config, run, device="cpu", log=None, max_steps=1)
    assert not marker.exists()
    _plant(state, marker)  # a pickle under the new name: not a safetensors file, refused, not run
    state.with_suffix(".pt").unlink()
    with pytest.raises(RunError, match=r"pretrain-step000008\.safetensors: not a readable resume state"):
        train_run(config, run, device="cpu", log=None, max_steps=1)
    assert not marker.exists()


def test_train_command_refuses_a_planted_pickle_in_one_line(stopped_run, tiny_tokenizer_dir: Path,
                                                            tmp_path: Path) -> None:
    _, run, state = stopped_run
    marker = tmp_path / "PWNED"
    state.unlink()
    _plant(state.with_suffix(".pt"), marker)
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config(tiny_tokenizer_dir)))
    result = CliRunner().invoke(app, ["train", str(config_file), "--output", str(run), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert not marker.exists()
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "pickle format" in lines[-1] and "Traceback" not in result.output
    # deleting the old file, as the message says, retrains the stage from its start
    state.with_suffix(".pt").unlink()
    resumed = train_run(parse_run_config(tiny_config(tiny_tokenizer_dir)), run, device="cpu", log=None, max_steps=2)
    assert resumed.trained == ["pretrain"] and resumed.steps_run == 2
