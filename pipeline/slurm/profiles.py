"""dask-jobqueue SLURM profiles: the user's (Dask config or a file) and the shipped ones.

A profile is a ``jobqueue: {NAME: {...}}`` entry of dask-jobqueue's configuration (the format
of ``~/.config/dask/jobqueue.yaml``); :func:`load_profile` resolves one into the keyword
arguments of ``dask_jobqueue.SLURMCluster``. The package ships ``gpu`` and ``cpu`` profiles
(:data:`PROFILE_FILE`, package data, also at ``slurm/jobqueue.yaml`` in a checkout) as
templates and as the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from pipeline.errors import MissingFileError, SlurmError
from pipeline.slurm.commands import one_line

__all__ = ["PROFILE_FILE", "SlurmProfile", "load_profile", "shipped_profiles"]

PROFILE_FILE = Path(str(files("pipeline.slurm").joinpath("jobqueue.yaml")))
"""The profiles shipped with the package (``gpu``, ``cpu``), used when the user's Dask config
has no profile of the requested name."""

# Keys of a profile that are dask-jobqueue *cluster* options, not worker-job options.
_CLUSTER_KEYS = {"scheduler_options", "shared_temp_directory"}


@dataclass(frozen=True)
class SlurmProfile:
    """A resolved dask-jobqueue SLURM profile.

    ``options``: keyword arguments of ``dask_jobqueue.SLURMCluster`` (``name`` → ``job_name``,
    dashes → underscores), merged over dask-jobqueue's ``jobqueue.slurm`` defaults, Nones
    dropped. ``source``: the file or config it came from (for messages).
    """

    name: str
    source: str
    options: Mapping[str, Any]

    @property
    def job_options(self) -> dict[str, Any]:
        """The options of one worker job (what ``SLURMJob`` takes)."""
        return {k: v for k, v in self.options.items() if k not in _CLUSTER_KEYS}

    @property
    def partition(self) -> str | None:
        return self.options.get("queue")

    @property
    def asks_for_gpu(self) -> bool:
        """Whether its worker jobs request a GPU (a ``gpu`` gres among the job's extra
        directives): their workers resolve the ``auto`` backend to CuPy."""
        extra = " ".join(map(str, self.options.get("job_extra_directives") or ()))
        return "gpu" in extra


def _profiles_in_file(path: Path) -> dict[str, Any]:
    from pipeline.errors import SpecError
    from pipeline.spec.yamlfile import parse_yaml  # the spec reader's limits apply here too

    path = Path(path).expanduser()
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise MissingFileError(f"profiles: no such file {str(path)!r}", option="profiles") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SlurmError(
            f"profiles: {str(path)!r} cannot be read ({one_line(str(e))})", option="profiles"
        ) from e
    except SpecError as e:
        where = "" if e.field in ("<file>", "<top>") else f"{e.field}: "
        raise SlurmError(f"profiles: {where}{one_line(str(e.detail))}", option="profiles") from e
    profiles = raw.get("jobqueue") if isinstance(raw, dict) else None
    if not isinstance(profiles, dict):
        raise SlurmError(
            f"profiles: {str(path)!r} has no 'jobqueue:' mapping of profiles "
            "(expected jobqueue: {NAME: {cores: ..., memory: ...}})",
            option="profiles",
        )
    return profiles


def shipped_profiles() -> dict[str, Any]:
    """The raw profiles of :data:`PROFILE_FILE` by name (``{}`` when it is missing)."""
    return _profiles_in_file(PROFILE_FILE) if PROFILE_FILE.is_file() else {}


def load_profile(name: str, profiles: str | Path | None = None) -> SlurmProfile:
    """Resolve profile ``name``.

    From the file ``profiles`` when given; otherwise from the Dask config (``jobqueue.NAME``
    in ``~/.config/dask/*.yaml`` or ``$DASK_CONFIG``), then from :data:`PROFILE_FILE`.
    Raises :class:`~pipeline.errors.SlurmError` naming the profiles that exist when ``name``
    is not found, or the keys that are wrong.
    """
    import dask.config
    import dask_jobqueue  # noqa: F401  (registers the jobqueue.* defaults)

    defaults = dict(dask.config.get("jobqueue.slurm"))
    if profiles is not None:
        found = _profiles_in_file(Path(profiles))
        raw, source = found.get(name), str(Path(profiles).resolve())
        if raw is None:
            raise SlurmError(
                f"profile: no profile {name!r} in {source}; it has: {', '.join(found) or 'none'}",
                option="profile",
            )
    else:
        raw, source = dask.config.get(f"jobqueue.{name}", None), f"Dask config jobqueue.{name}"
        shipped = shipped_profiles()
        if raw is None and name in shipped:
            raw, source = shipped[name], str(PROFILE_FILE)
        if raw is None:
            raise SlurmError(
                f"profile: no profile {name!r} in the Dask config (~/.config/dask, "
                f"$DASK_CONFIG) nor in {PROFILE_FILE}; shipped profiles: "
                f"{', '.join(shipped) or 'none'} (or name a profiles file)",
                option="profile",
            )
    if not isinstance(raw, dict):
        raise SlurmError(
            f"profile {name!r} ({source}): expected a mapping, got {raw!r}", option="profile"
        )
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise SlurmError(
            f"profile {name!r} ({source}): unknown keys {unknown}; dask-jobqueue's SLURM "
            f"keys are: {', '.join(sorted(defaults))}",
            option="profile",
        )
    merged = {**defaults, **raw}
    for req in ("cores", "memory"):
        if merged.get(req) is None:
            raise SlurmError(f"profile {name!r} ({source}): '{req}' is required", option="profile")
    if merged.get("processes") not in (None, 1):
        raise SlurmError(
            f"profile {name!r} ({source}): processes is {merged['processes']}; the sweep runs "
            "one worker process per job (use cores for threads, --gres=gpu:1 for its GPU)",
            option="profile",
        )
    options = {}
    for key, value in merged.items():
        if value is None or key in ("extra", "env-extra", "job-extra", "header-skip"):
            continue  # deprecated spellings, None unless a user sets them
        options["job_name" if key == "name" else key.replace("-", "_")] = value
    options["processes"] = 1
    return SlurmProfile(name=name, source=source, options=options)
