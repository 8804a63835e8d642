"""The one reader of config files (training, sweep, gate): UTF-8, YAML or TOML, errors in one line."""

from __future__ import annotations

import sys

import pytest

from forgetscope.textfile import read_config


class Refused(ValueError):
    pass


def test_reads_toml_and_yaml_by_suffix(tmp_path):
    (tmp_path / "a.toml").write_text('name = "x"\n[model]\nhidden = 8\n', encoding="utf-8")
    (tmp_path / "a.yaml").write_text("name: x\nmodel: {hidden: 8}\n", encoding="utf-8")
    expected = {"name": "x", "model": {"hidden": 8}}
    assert read_config(tmp_path / "a.toml", Refused) == expected == read_config(tmp_path / "a.yaml", Refused)


@pytest.mark.parametrize("name, text, match", [
    ("bad.toml", "a = [1,\n", r"bad.toml: not valid TOML \(.*\); fix the file"),
    ("bad.yaml", "a: [1,\nb: 2\n", r"bad.yaml line \d+: not valid YAML \(.* at column \d+\); fix the file"),
    ("latin1.yaml", None, r"latin1.yaml: not UTF-8 text: byte 0xe9 at byte offset 9 \(line 1\)"),
])
def test_errors_are_one_line_naming_the_file(tmp_path, name, text, match):
    path = tmp_path / name
    if text is None:
        path.write_bytes(b"name: caf\xe9\n")
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(Refused, match=match) as exc:
        read_config(path, Refused)
    assert "\n" not in str(exc.value)


def test_gate_and_train_configs_share_the_reader(tmp_path):
    """A YAML error in a gate config names the line, as in every other config (it used to be PyYAML's text)."""
    from forgetscope.gate import GateConfigError, load_config
    from forgetscope.train.config import read_mapping
    from forgetscope.train.fields import ConfigError

    path = tmp_path / "gate.yaml"
    path.write_text("max_forgetting: [0.1,\nalpha: 0.05\n", encoding="utf-8")
    with pytest.raises(GateConfigError, match=r"gate.yaml line \d+: not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"gate.yaml line \d+: not valid YAML"):
        read_mapping(path)
    toml = tmp_path / "run.toml"
    toml.write_text("name = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"run.toml: not valid TOML"):
        read_mapping(toml)
    with pytest.raises(GateConfigError, match=r"run.toml: not valid TOML"):
        load_config(toml)


def test_python_3_10_reads_toml_with_tomli(tmp_path, monkeypatch):
    """Without the standard library's tomllib (Python 3.10) the same parser comes from the tomli package."""
    pytest.importorskip("tomli")
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` now fails as on 3.10
    (tmp_path / "a.toml").write_text("x = 1\n", encoding="utf-8")
    assert read_config(tmp_path / "a.toml", Refused) == {"x": 1}
