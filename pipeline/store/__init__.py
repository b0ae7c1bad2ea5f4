"""The store: what a sweep's results are on disk, and everything that reads or writes them.

* :mod:`.grid`       the chunk grid: chunk keys (a pure function of the spec) ↔ slices, flats
* :mod:`.sweep`      the Zarr v3 sweep store: template (made atomically), paths, reading it
* :mod:`.handle`     :class:`~.handle.Store`: a store path that knows its kind (sweep, zoom,
                     frame, refined), its markers, identity, lease and verification
* :mod:`.identity`   the store's identity token, checked by every chunk write
* :mod:`.writer`     chunk writes on the workers: region writes, then the done marker
* :mod:`.variables`  the store's variables: the experiment's, + ``computed`` when refined
* :mod:`.markers`    done markers: per-chunk files and the consolidated index
* :mod:`.lease`      one driver per store: the lease, its heartbeat, stale-lease takeover
* :mod:`.verify`     scrub the done chunks (exist, decode, fingerprint); un-mark damage
* :mod:`.points`     a refined store's point files (one per round and chunk)
* :mod:`.zoom`       a zoom store's layout: frames as groups, the root's attrs
* :mod:`.partial`    the words a partial store's results carry

Nothing here starts a cluster or knows where chunks run (that is :mod:`pipeline.run`).
Importing this package imports none of its modules; import the one you need.
"""
