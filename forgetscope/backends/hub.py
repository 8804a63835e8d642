"""Hub checkpoints by revision: `org/name@REVISION`, resolved to one commit of the HF cache (or the hub).

Intermediate checkpoints of Pythia or OLMo are revisions of one repository
(`EleutherAI/pythia-160m@step3000`, `allenai/OLMo-1B-hf@step20000-tokens84B`).
A revision name (a branch, a tag) can move; its commit cannot. So a checkpoint
is resolved once to its commit's snapshot folder, that folder is what gets
fingerprinted and loaded, and the commit enters the fingerprint: `main` today
and `main` after a push are two models, `main` and its commit hash are one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import BackendError


def split_revision(model: str) -> tuple[str, str | None]:
    """`org/name@REV` -> (`org/name`, `REV`); anything else, or an existing local path (even one
    with an `@` in its name), unchanged with no revision. Repository ids cannot hold `@`, so the
    first `@` separates (a revision name may hold one)."""
    if "@" not in model or Path(model).expanduser().exists():
        return model, None
    base, _, revision = model.partition("@")
    if not base or not revision:
        raise BackendError(f"{model!r}: give a checkpoint as MODEL@REVISION (e.g. EleutherAI/pythia-160m@step3000)")
    return base, revision


@dataclass(frozen=True)
class HubSnapshot:
    """One commit of a hub repository, present on local disk."""

    repo_id: str
    #: what was asked for (a branch, a tag, a commit; None: the default branch)
    revision: str | None
    commit: str
    folder: Path


def is_hub_id(model: str) -> bool:
    """True for `org/name` or `name` that is not a local path."""
    return not Path(model).expanduser().exists() and not model.startswith((".", "/", "~")) and model.count("/") <= 1


def from_snapshot(model: str, revision: str | None) -> bool:
    """Whether `model` at `revision` loads from a hub snapshot: any revision given, or a hub id (not a .gguf)."""
    return revision is not None or (is_hub_id(model) and not model.endswith(".gguf"))


def resolve_snapshot(repo_id: str, revision: str | None = None) -> HubSnapshot:
    """The snapshot folder and commit of `repo_id` at `revision` (downloaded when online and missing).

    A BackendError names the model and the revision when either is unknown.
    """
    if not is_hub_id(repo_id):
        where = "is a local path" if Path(repo_id).expanduser().exists() else "does not exist"
        raise BackendError(f"model path {repo_id!r} {where}"
                           + ("; revisions (@REV, --revision) apply to hub ids only" if revision else
                              "; check the path"))
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    try:
        folder = Path(snapshot_download(repo_id, revision=revision))
    except RevisionNotFoundError:
        raise BackendError(_unknown_revision(repo_id, revision, "on the hub")) from None
    except RepositoryNotFoundError:
        raise BackendError(f"model {repo_id!r} is neither a local directory nor a repository on the Hugging Face "
                           "hub (or it is private: log in with `hf auth login`)") from None
    except LocalEntryNotFoundError:  # offline, or no connection
        if revision is not None and _cache_folder(repo_id).is_dir():
            raise BackendError(_unknown_revision(repo_id, revision, "in the local Hugging Face cache")) from None
        raise BackendError(f"model {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
                           + " is neither a local directory nor in the local Hugging Face cache, and the hub "
                             "cannot be reached; download it once (online) or pass a local directory") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:  # auth, network, a bad revision string
        raise BackendError(f"model {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
                           + f": cannot get it from the Hugging Face hub ({' '.join(str(exc).split())[:200]})"
                           ) from None
    return HubSnapshot(repo_id, revision, folder.name, folder)


def _cache_folder(repo_id: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))


def cached_revisions(repo_id: str) -> list[str]:
    """Revision names (refs) of `repo_id` in the local cache."""
    refs = _cache_folder(repo_id) / "refs"
    if not refs.is_dir():
        return []
    return sorted(str(p.relative_to(refs)) for p in refs.rglob("*") if p.is_file())


def _unknown_revision(repo_id: str, revision: str | None, where: str) -> str:
    known = cached_revisions(repo_id)
    listing = f" (cached: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''})" if known else ""
    return f"model {repo_id!r} has no revision {revision!r} {where}{listing}; check the name (MODEL@REVISION)"
