"""The lab: reproduces and studies the project's own results.

It may import ``aid_model``; nothing in ``aid_model`` or ``nodes`` imports it.

- ``lab.miniature``: the bundled miniature's build recipe (``make demo-train``).
- ``lab.benchmark``: the miniature's benchmark and the paper's ablations (``make demo-ablations``).
- ``lab.perf``: performance benchmarks (``python -m lab.perf``; docs/performance.md).
- ``lab.log_summary``: loss and wall time of training runs, from their ``log.jsonl``.
"""
