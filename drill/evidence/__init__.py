"""The evidence format: typed journal events, the hash-chained journal, canonical JSON.

Below `run/` and `report/` (which write and read evidence) and above the foundation; history,
review and SLA code read evidence only through it.
"""
