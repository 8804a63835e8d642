"""Every relative link in README.md and docs/*.md points to a file that exists, and every
`#anchor` to a heading of that file (GitHub's heading slugs), so the docs never send a
reader to nothing."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a code block is not a heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation removed, spaces → '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose_lines(page.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(page: Path) -> list[str]:
    found = []
    for line in _prose_lines(page.read_text(encoding="utf-8")):
        found.extend(_LINK.findall(_INLINE_CODE.sub("", line)))
    return found


def test_slug_follows_github():
    assert slug("vLLM backend (GPU)") == "vllm-backend-gpu"
    assert slug("Sequences, heatmaps and the HTML report") == "sequences-heatmaps-and-the-html-report"
    assert slug("`--task` forms") == "--task-forms"
    assert slug("Exit codes: 0, 1, 2") == "exit-codes-0-1-2"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files_and_headings(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with anchor #{anchor} in {destination.name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_docs_exist():
    assert len(PAGES) > 1, "docs/*.md pages are missing"


# ---------------------------------------------------------------------------- commands and imports in the docs

#: flags of other tools that the docs quote (lm-evaluation-harness, lighteval, torchrun, pip, ray start)
EXTERNAL_FLAGS = {"--log_samples", "--output_path", "--save-details", "--nproc_per_node", "--model_args",
                  "--include_path", "--tasks", "--device", "--batch_size", "--model", "--output-dir",
                  "--custom-tasks", "--no-deps", "--upgrade", "--apply_chat_template", "--system_instruction",
                  "--fewshot_as_multiturn", "--head", "--port", "--address"}
_FENCE_OPEN = re.compile(r"^\s*(```|~~~)\s*(\w*)")


def _code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    blocks, language, body = [], None, []
    for line in text.splitlines():
        match = _FENCE_OPEN.match(line)
        if match and language is None:
            language, body = match.group(2), []
        elif match:
            blocks.append((language, "\n".join(body)))
            language = None
        elif language is not None:
            body.append(line)
    return blocks


def _cli():
    import typer.main

    from forgetscope.cli import app, main  # noqa: F401 - importing main registers every command

    return typer.main.get_command(app)


def _options(command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")}


def forgetscope_commands(text: str) -> list[list[str]]:
    """Every `forgetscope ...` command line of the shell blocks, as tokens (continuations joined,
    comments and the `[...]`/`|` of optional parts dropped)."""
    import shlex

    commands = []
    for language, body in _code_blocks(text):
        if language not in ("bash", "sh", "shell", ""):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                continue
            starts = [i for i, t in enumerate(tokens) if t in ("forgetscope", "$(which", ".venv/bin/forgetscope")]
            if not starts:
                continue
            start = starts[0] + (2 if tokens[starts[0]] == "$(which" else 1)
            words = [t.strip("[]") for t in tokens[start:] if t not in ("|", "[", "]")]
            commands.append([w for w in words if w])
    return commands


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_commands_use_real_commands_and_options(page: Path):
    cli = _cli()
    wrong = []
    for words in forgetscope_commands(page.read_text(encoding="utf-8")):
        if not words or words[0].startswith("-"):
            continue
        command = cli.commands.get(words[0])
        rest = words[1:]
        if command is None:
            wrong.append(f"forgetscope {words[0]}: no such command")
            continue
        if hasattr(command, "commands") and rest and not rest[0].startswith("-"):  # a group: import lm-eval
            sub = command.commands.get(rest[0])
            if sub is None:
                wrong.append(f"forgetscope {words[0]} {rest[0]}: no such command")
                continue
            command, rest = sub, rest[1:]
        known = _options(command)
        for word in rest:
            option = word.split("=", 1)[0]
            if option.startswith("-") and not re.match(r"^-\d", option) and option not in known:
                wrong.append(f"forgetscope {words[0]}: no option {option}")
    assert not wrong, f"{page.relative_to(ROOT)}: " + "; ".join(wrong)


@functools.lru_cache(maxsize=1)
def _all_known_flags() -> frozenset[str]:
    from forgetscope.cli.options import LM_EVAL_SPELLINGS  # accepted spellings, rewritten before parsing

    cli = _cli()
    flags = set(EXTERNAL_FLAGS) | {"--help"} | set(LM_EVAL_SPELLINGS)
    for command in cli.commands.values():
        flags |= _options(command)
        for sub in getattr(command, "commands", {}).values():
            flags |= _options(sub)
    for script in (ROOT / "benchmarks").glob("*.py"):  # the benchmarks' own argparse flags
        flags |= set(re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", script.read_text(encoding="utf-8")))
    return frozenset(flags)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_named_in_the_docs_exists(page: Path):
    """An option quoted anywhere (prose or code) is one forgetscope, a benchmark script, or a named
    external tool has: a renamed or removed option cannot linger in the docs."""
    text = page.read_text(encoding="utf-8")
    spans = _INLINE_CODE.findall(text) + [body for _, body in _code_blocks(text)]
    quoted = set()
    for span in spans:
        quoted |= set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*[a-z0-9])", span))
    unknown = sorted(quoted - _all_known_flags())
    assert not unknown, f"{page.relative_to(ROOT)}: options that nothing defines: {', '.join(unknown)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_import(page: Path):
    """Every `from forgetscope... import ...` line of the Python blocks imports as written."""
    import importlib

    failures = []
    for language, body in _code_blocks(page.read_text(encoding="utf-8")):
        if language != "python":
            continue
        for module, names in re.findall(r"^from (forgetscope[\w.]*) import ([\w, ]+)$", body, re.M):
            try:
                imported = importlib.import_module(module)
            except ImportError as exc:
                failures.append(f"{module}: {exc}")
                continue
            failures += [f"{module}.{n.strip()}" for n in names.split(",") if not hasattr(imported, n.strip())]
    assert not failures, f"{page.relative_to(ROOT)}: cannot import " + "; ".join(failures)
