"""Hub checkpoints by revision (`org/name@REV`, `--revision`, `--revisions`), on a local HF cache built here.

The cache has the hub's layout: `models--org--tiny/snapshots/<commit>/` holds a tiny model's
files and `refs/<name>` the commit a revision name points at. With the hub offline, a
revision resolves only through that cache: nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from forgetscope.backends.base import BackendError
from forgetscope.backends.hub import split_revision
from forgetscope.cli import app
from forgetscope.engine.evaluate import Checkpoint, evaluate
from forgetscope.engine.fingerprint import FingerprintError, model_fingerprint
from forgetscope.records.store import load_records
from tests.engine.conftest import COMMIT_A, COMMIT_B
from tests.helpers import item_scores, mc_task, write_quiz

runner = CliRunner()


@pytest.fixture()
def quiz(tmp_path):
    return write_quiz(tmp_path / "quiz.jsonl", 8)


def test_split_revision_prefers_an_existing_local_path(tmp_path):
    assert split_revision("EleutherAI/pythia-160m@step3000") == ("EleutherAI/pythia-160m", "step3000")
    assert split_revision("allenai/OLMo-1B-hf@step20000-tokens84B") == ("allenai/OLMo-1B-hf", "step20000-tokens84B")
    assert split_revision("org/name") == ("org/name", None)
    local = tmp_path / "runs@v2"
    local.mkdir()
    assert split_revision(str(local)) == (str(local), None)
    with pytest.raises(BackendError, match="MODEL@REVISION"):
        split_revision("org/name@")


def test_revisions_load_their_own_weights_and_fingerprint_by_commit(hub, tmp_path, tiny_llama_dir):
    task = mc_task(8)
    main = evaluate(Checkpoint("org/tiny@main"), [task], tmp_path / "res")
    step2 = evaluate(Checkpoint("org/tiny@step2"), [task], tmp_path / "res")
    local = evaluate(Checkpoint(str(tiny_llama_dir)), [task], tmp_path / "res-local")
    # the revisions hold different weights: different scores, and main's are the seed-0 model's
    assert item_scores(main) != item_scores(step2)
    assert item_scores(main) == item_scores(local)
    assert set(main.checkpoint) == {"org/tiny@main"} and set(step2.checkpoint) == {"org/tiny@step2"}
    fp_main, fp_step1, fp_step2 = (model_fingerprint("org/tiny", revision=r) for r in ("main", "step1", "step2"))
    assert fp_main != fp_step2
    assert fp_main == fp_step1 == model_fingerprint("org/tiny", revision=COMMIT_A)  # two refs, one commit
    assert set(main.model_fingerprint) == {fp_main}
    # the commit enters the fingerprint: the same files as a local directory are another identity
    assert fp_main != model_fingerprint(str(tiny_llama_dir))
    # a ref that moves is a new model: main, pushed to commit B, is step2's model
    (hub / "refs" / "main").write_text(COMMIT_B)
    assert model_fingerprint("org/tiny", revision="main") == fp_step2
    meta = [json.loads(p.read_text()) for p in (tmp_path / "res").rglob("meta.json")]
    assert {(m.get("revision"), m.get("commit")) for m in meta} == {("main", COMMIT_A), ("step2", COMMIT_B)}


def test_an_unknown_revision_is_one_line_naming_model_and_revision(hub, tmp_path, quiz):
    with pytest.raises(FingerprintError, match="'org/tiny' has no revision 'step9'"):
        Checkpoint("org/tiny@step9").resolve_fingerprint()
    result = runner.invoke(app, ["eval", "org/tiny@step9", "-t", str(quiz), "-o", str(tmp_path / "res")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ["error: model 'org/tiny' has no revision 'step9' in the local Hugging Face cache "
                     "(cached: main, step1, step2); check the name (MODEL@REVISION)"]


def test_a_local_path_with_an_at_sign_is_a_path(hub, tmp_path, tiny_llama_dir):
    local = tmp_path / "ckpt@step2"
    shutil.copytree(tiny_llama_dir, local)
    ckpt = Checkpoint(str(local))
    assert ckpt.revision is None and ckpt.model == str(local)
    assert ckpt.resolve_fingerprint() == model_fingerprint(str(tiny_llama_dir))  # content, not the name
    records = evaluate(ckpt, [mc_task(4)], tmp_path / "res")
    assert len(records) == 4


def test_eval_revision_option_model_args_revision_and_conflicts(hub, tmp_path, quiz):
    out = tmp_path / "res"
    result = runner.invoke(app, ["eval", "org/tiny", "--revision", "step2", "-t", str(quiz), "-o", str(out)])
    assert result.exit_code == 0, result.output
    by_option = load_records([out])
    assert set(by_option.checkpoint) == {"org/tiny@step2"}
    assert set(by_option.model_fingerprint) == {model_fingerprint("org/tiny", revision=COMMIT_B)}
    # lm-eval's spelling: --model_args revision=...; same commit, same rows (a cache hit: nothing rescored)
    result = runner.invoke(app, ["eval", "org/tiny", "--model_args", "revision=step2", "--name", "by-args",
                                 "-t", str(quiz), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = load_records([out])
    assert set(rows[rows.checkpoint == "by-args"].model_fingerprint) == set(by_option.model_fingerprint)
    result = runner.invoke(app, ["eval", "org/tiny@step1", "--revision", "step2", "-t", str(quiz), "-o", str(out)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: org/tiny: two revisions given ('step2' and 'step1'); give one"
    result = runner.invoke(app, ["eval", str(quiz.parent), "--revision", "step2", "-t", str(quiz), "-o", str(out)])
    assert result.exit_code == 2 and "revisions (@REV, --revision) apply to hub ids only" in result.output


def test_compare_and_sequence_follow_revisions(hub, tmp_path, quiz):
    out = tmp_path / "res"
    result = runner.invoke(app, ["compare", "org/tiny@step1", "org/tiny@step2", "-t", str(quiz), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "A = tiny@step1   B = tiny@step2" in result.output
    result = runner.invoke(app, ["sequence", "org/tiny", "--revisions", "step2,main", "-t", str(quiz), "-o", str(out),
                                 "--json", str(tmp_path / "seq.json")])
    assert result.exit_code == 0, result.output
    seq = json.loads((tmp_path / "seq.json").read_text())
    assert seq["checkpoints"] == ["step2", "main"]  # labels = revision names, in the given order
    result = runner.invoke(app, ["sequence", "org/tiny", "--revisions", "main", "-t", str(quiz), "-o", str(out)])
    assert result.exit_code == 2 and "two or more different revision names" in result.output


def test_a_hub_checkpoint_is_resolved_once_for_its_fingerprint_and_its_load_path(hub, monkeypatch):
    from forgetscope.engine import fingerprint

    calls = []
    real = fingerprint.resolve_snapshot
    monkeypatch.setattr(fingerprint, "resolve_snapshot", lambda *a: calls.append(a) or real(*a))
    ckpt = Checkpoint("org/tiny@step2")
    fp = ckpt.resolve_fingerprint()
    assert ckpt.load_path() == str(hub / "snapshots" / COMMIT_B)
    assert calls == [("org/tiny", "step2")]  # one hub lookup, by the revision given
    assert fp == model_fingerprint("org/tiny", revision=COMMIT_B)
