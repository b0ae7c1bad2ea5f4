"""The ``refine:`` block of a spec: adaptive boundary refinement of the image plane.

A refined sweep computes the plane on a coarse lattice (every ``coarse``-th pixel), then
halves the blocks whose computed samples hold more than one class (plus ``guard`` blocks
around them) ``levels`` times, down to the target resolution (every pixel when ``levels`` is
``log2(coarse)``, the default). A seeded share ``audit`` of the pixels of the blocks left
whole is computed too: an audit pixel whose class differs from its block's makes the block
refine. The algorithm is :mod:`pipeline.run.refine_plan`; the driver
:mod:`pipeline.run.refine`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import SpecError
from pipeline.spec.fields import check_keys

__all__ = ["DEFAULT_REFINE", "REFINE_KEYS", "RefineSpec", "parse_refine"]

REFINE_KEYS = ("coarse", "levels", "guard", "audit", "audit_seed")


@dataclass(frozen=True)
class RefineSpec:
    """Validated ``refine:`` block.

    ``coarse``: the coarse lattice spacing in pixels (a power of two >= 2); ``levels``: how
    many times blocks are halved (1..log2(coarse); the final spacing is
    ``coarse / 2**levels`` pixels, 1 = every pixel of a boundary block computed);
    ``guard``: blocks on each side of a mixed block that are refined with it (>= 0);
    ``audit``: share of the pixels of unrefined blocks computed as audits, in [0, 0.5];
    ``audit_seed``: seed of the audit draw (>= 0).
    """

    coarse: int = 16
    levels: int | None = None
    guard: int = 1
    audit: float = 0.01
    audit_seed: int = 0

    @property
    def n_levels(self) -> int:
        """Number of halvings (``levels``, default ``log2(coarse)``)."""
        return self.levels if self.levels is not None else int(math.log2(self.coarse))

    @property
    def final(self) -> int:
        """The final lattice spacing in pixels (1: every pixel of a boundary block)."""
        return self.coarse >> self.n_levels

    def to_dict(self) -> dict[str, Any]:
        """Canonical dict (``levels`` resolved)."""
        return {
            "coarse": self.coarse,
            "levels": self.n_levels,
            "guard": self.guard,
            "audit": self.audit,
            "audit_seed": self.audit_seed,
        }


DEFAULT_REFINE = RefineSpec()
"""What ``--refine`` uses when the spec has no ``refine:`` block."""


def _int(raw: Mapping[str, Any], key: str, default: int | None) -> int | None:
    v = raw.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise SpecError(f"refine.{key}", f"value {v!r} is not an integer")
    return v


def parse_refine(raw: Any, plane_sizes: tuple[int, int]) -> RefineSpec:
    """Validate a ``refine:`` mapping for a plane of ``plane_sizes`` pixels; one-line
    :class:`~pipeline.errors.SpecError` naming the field, the value and what is allowed."""
    if raw is True or raw == {}:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError("refine", f"expected a mapping of {', '.join(REFINE_KEYS)}, got {raw!r}")
    check_keys(raw, REFINE_KEYS, "refine")
    coarse = _int(raw, "coarse", DEFAULT_REFINE.coarse)
    assert coarse is not None
    if coarse < 2 or coarse & (coarse - 1):
        raise SpecError("refine.coarse", f"value {coarse} is not a power of two >= 2")
    smallest = min(plane_sizes)
    if coarse > smallest - 1:
        raise SpecError(
            "refine.coarse",
            f"value {coarse} is larger than the plane allows (at most {smallest - 1}: "
            f"the plane's shorter axis has {smallest} pixels)",
        )
    top = int(math.log2(coarse))
    levels = _int(raw, "levels", None)
    if levels is not None and not 1 <= levels <= top:
        raise SpecError(
            "refine.levels", f"value {levels} is outside 1..{top} (log2 of coarse = {coarse})"
        )
    guard = _int(raw, "guard", DEFAULT_REFINE.guard)
    assert guard is not None
    if guard < 0:
        raise SpecError("refine.guard", f"value {guard} is not an integer >= 0")
    audit = raw.get("audit", DEFAULT_REFINE.audit)
    if isinstance(audit, bool) or not isinstance(audit, int | float) or not 0 <= audit <= 0.5:
        raise SpecError("refine.audit", f"value {audit!r} is not a share in [0, 0.5]")
    seed = _int(raw, "audit_seed", DEFAULT_REFINE.audit_seed)
    assert seed is not None
    if not 0 <= seed < 2**32:
        raise SpecError("refine.audit_seed", f"value {seed} is outside 0..2^32-1")
    return RefineSpec(coarse, levels if levels is not None else top, guard, float(audit), seed)
