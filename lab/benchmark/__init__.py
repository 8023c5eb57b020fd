"""The miniature's benchmark: direction accuracy on held-out scenes, the paper's ablations
retrained at the bundled budget, and the rollouts figure (docs/results.md)."""
