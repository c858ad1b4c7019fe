"""The runner: scheduler, monitor, scenario, stop conditions and the hash-chained journal."""
