"""Side-by-side SVI benchmarks: pyrolite vs Pyro, NumPyro and a hand-written PyTorch step.

Run ``python -m benchmarks.run --help`` from the repository root; see ``benchmarks/README.md``.
"""
