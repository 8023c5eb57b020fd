"""Performance benchmarks (docs/performance.md): ``python -m aid_model.bench sampling`` and
``python -m aid_model.bench training`` print Markdown tables measured on random-weight
models of SVD's shape (``aid_model.bench.models``)."""
