"""Which array backend computes a chunk.

``numpy`` is the readable reference and the default without a GPU. ``auto`` resolves, on the
worker that runs a task, to the best backend available there. (The CuPy backend of DESIGN §3
plugs in here; until it exists, asking for it is a clear error.)
"""

from __future__ import annotations

__all__ = ["BACKENDS", "resolve_backend"]

BACKENDS = ("auto", "numpy")


def resolve_backend(name: str) -> str:
    """Map a requested backend (``auto`` or a concrete name) to an available one.

    Raises ``ValueError`` naming the allowed values for an unknown or unavailable backend.
    """
    if name not in BACKENDS:
        raise ValueError(
            f"backend: unknown or unavailable value {name!r} (allowed: {', '.join(BACKENDS)})"
        )
    return "numpy"
