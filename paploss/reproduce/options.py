"""``paploss-reproduce``'s typed options: built from its parsed command line
(:func:`paploss.reproduce.command.parse`) and passed to the runner and the report. Each field is
the parser's option of the same name with the parser's default (``tests/test_options.py`` checks
both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def _proxy() -> list[str]:
    return ["proxy"]


@dataclass(frozen=True, kw_only=True)
class ReproduceOptions:
    """``paploss-reproduce``'s options (``paploss-reproduce --help`` describes each)."""

    experiments: list[str]
    budget: str = "full"
    data: list[str] = field(default_factory=_proxy)
    storage: str | None = None
    work_dir: Path | None = None
    report: Path = Path("docs/reproduction.md")
    report_only: bool = False
    device: str = "auto"
    workers: int = 1
