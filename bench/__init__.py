"""The benchmark (``scripts/bench.py``): shopstream measured against bare
Faust, the raw client, a pass-through latency floor and itself."""
