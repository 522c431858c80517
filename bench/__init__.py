"""Load and cost measurements of momo-gateway against its provider simulator, on loopback only.

Run everything with ``python -m bench.run_all``; see bench/README.md for each benchmark alone.
"""
