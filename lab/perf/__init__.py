"""Performance benchmarks (docs/performance.md): ``python -m lab.perf sampling`` and
``python -m lab.perf training`` print Markdown tables measured on random-weight
models of SVD's shape (``lab.perf.models``)."""
