"""Stages 2–4 of the pipeline: plan the chunks, keep the store, run the chunks, zoom.

* :mod:`.plan`        chunk keys (a pure function of the spec) and the cost of a sweep
* :mod:`.store`       the Zarr v3 store: template (made atomically), paths, reading it
* :mod:`.identity`    the store's identity token, checked by every chunk write
* :mod:`.writer`      chunk writes on the workers: region writes, then the done marker
* :mod:`.markers`     done markers: per-chunk files and the consolidated index
* :mod:`.lease`       one driver per store: the lease, its heartbeat, stale-lease takeover
* :mod:`.verify`      scrub the done chunks (exist, decode, fingerprint); un-mark damage
* :mod:`.submit`      the bounded submission window; chunks fused into tasks
* :mod:`.execute`     the driver: submit the missing chunks to Dask, collect, report
* :mod:`.clients`     local Dask clusters (CPU, one worker per GPU) and scheduler addresses
* :mod:`.resources`   one task's peak memory against a worker's, before anything starts
* :mod:`.zoom`        zoom sequences: frames halving around a boundary point
* :mod:`.provenance`  package version and git revision recorded in stores

Importing this package imports none of its modules; import the one you need.
"""
