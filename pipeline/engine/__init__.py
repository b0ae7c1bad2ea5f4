"""Stages 2–4 of the pipeline: plan the chunks, keep the store, run the chunks, zoom.

* :mod:`.plan`        chunk keys (a pure function of the spec) and the cost of a sweep
* :mod:`.store`       the Zarr v3 store: template first, region writes, done markers
* :mod:`.execute`     the driver: submit the missing chunks to Dask, collect, report
* :mod:`.clients`     local Dask clusters (CPU, one worker per GPU) and scheduler addresses
* :mod:`.resources`   one task's peak memory against a worker's, before anything starts
* :mod:`.zoom`        zoom sequences: frames halving around a boundary point
* :mod:`.provenance`  package version and git revision recorded in stores

Importing this package imports none of its modules; import the one you need.
"""
