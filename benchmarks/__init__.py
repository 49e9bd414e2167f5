"""Benchmarks of instax_async against raw aiohttp (run with ``make bench``)."""
