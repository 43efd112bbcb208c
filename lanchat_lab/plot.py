"""Pictures of lab results (`--plot FILE.png`). The only module that imports matplotlib, lazily."""

from __future__ import annotations

from typing import Any


def matplotlib_missing() -> str | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib: pip install 'lanchat[lab]' (or pip install matplotlib)"
    return None


def plot(result: dict[str, Any], path: str) -> None:
    raise NotImplementedError
