"""Helpers shared by the foundation tests: in-process config loading and full renders."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctmpl.brain import Brain
from ctmpl.config.load import build_config
from ctmpl.config.model import Config, TemplateConfig
from ctmpl.sources.base import Catalog
from ctmpl.template.engine import Rendered, Template

ROOT = Path(__file__).resolve().parent.parent


def load(argv: Sequence[str], environ: dict[str, str] | None = None) -> Config:
    """The CLI's layering (env < files < flags), without the no-template check."""
    return build_config(argv, environ or {})


def template(text: str, **options: Any) -> Template:
    """An inline template."""
    return Template(TemplateConfig(destination="/dev/null", contents=text, **options))


async def render_all(tpl: Template, catalog: Catalog, brain: Brain | None = None) -> Rendered:
    """Render, fetch every query still missing from the brain, repeat until nothing is new."""
    brain = brain or Brain()
    for _ in range(10):
        rendered = tpl.render(catalog, brain)
        new = [q for k, q in rendered.deps.queries.items() if not brain.has(k)]
        if not new:
            return rendered
        for query in new:
            data, _ = await query.fetch(0)
            brain.set(query.key, data)
    raise AssertionError("render did not settle")


def run_cli(
    args: Sequence[str], cwd: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ctmpl`` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "ctmpl", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
    )
