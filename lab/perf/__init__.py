"""Performance benchmarks (docs/performance.md): ``python -m lab.perf sampling`` and
``python -m lab.perf training`` print Markdown tables measured on random-weight
models of SVD's shape (``lab.perf.models``); ``python -m lab.perf.native``, run in a
ComfyUI host, compares Apply AID on ComfyUI's own SVD with the library (§10)."""
