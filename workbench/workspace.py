"""Where the workbench keeps its files.

One root folder (``WORKBENCH_HOME``, default ``~/.trt-workbench``) holds ``models/<digest>/`` and
``jobs/<job id>/``. Every path handed out is checked to stay below the root.
"""

from __future__ import annotations

import os
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
