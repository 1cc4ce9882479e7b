"""Where the workbench keeps its files.

One root folder (``WORKBENCH_HOME``, default ``~/.trt-workbench``) holds ``models/<digest>/`` and
``jobs/<job id>/``. Every path handed out is checked to stay below the root.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import WorkbenchError

ENV_HOME = "WORKBENCH_HOME"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def default(cls) -> Workspace:
        root = os.environ.get(ENV_HOME) or str(Path.home() / ".trt-workbench")
        return cls.at(root)

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> Workspace:
        path = Path(root).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        ws = cls(path)
        ws.models_dir.mkdir(exist_ok=True)
        ws.jobs_dir.mkdir(exist_ok=True)
        ws.tmp_dir.mkdir(exist_ok=True)
        return ws

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    def inside(self, path: str | os.PathLike[str]) -> Path:
        """Resolve ``path`` and refuse it unless it lies inside the workspace root."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root):
            raise WorkbenchError(
                f"Refusing to use '{path}': it lies outside the workspace ({self.root}).",
                "Only files inside the workspace can be used.",
            )
        return resolved


def roots_text(roots: Sequence[Path]) -> str:
    return ", ".join(f"'{r}'" for r in roots)


def confined_server_path(text: str, roots: Sequence[Path], what: str, hint: str,
                         error: type[WorkbenchError] = WorkbenchError) -> Path:
    """``text``, a path on the server that must lie below one of ``roots`` once symbolic links are resolved (a
    link leading outside is refused); relative paths are taken below the first root. Returns it resolved; it
    need not exist. ``error`` (a WorkbenchError subclass) names ``what`` is refused, with ``hint``."""
    text = str(text).strip()
    if not text:
        raise error(f"No {what} given.", f"Give a path below {roots_text(roots)}.")
    if "\x00" in text:
        raise error(f"The {what} path contains a NUL character.")
    resolved_roots = [Path(r).resolve() for r in roots]
    p = Path(text).expanduser()
    if not p.is_absolute():
        p = resolved_roots[0] / p
    try:
        real = p.resolve()
    except OSError as err:  # a folder on the way swapped for a link while it was resolved (EINVAL), a loop
        raise error(f"'{text}' could not be resolved ({err.strerror}): a folder on the way changed meanwhile or "
                    "holds a loop of links.", hint) from err
    if not any(real.is_relative_to(r) for r in resolved_roots):
        lexical = Path(os.path.abspath(p))  # ".." folded, links not followed
        via_link = any(lexical.is_relative_to(r) for r in [*resolved_roots, *map(Path, roots)])
        how = " (through a symbolic link)" if via_link else ""
        raise error(f"'{text}' lies{how} outside the folders allowed for {what}.", hint)
    return real
