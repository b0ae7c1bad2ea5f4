"""Phase-diagram sweeps of random deep networks (package API is filled in below)."""
