"""The gateway's benchmark: ``python benchmarks/run.py`` (see ``benchmarks/README.md``)."""
