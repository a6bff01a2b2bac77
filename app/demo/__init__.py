"""The demo brand and the simulators: seeding, signed demo payments, notification builders.

For ``flask demo …``, the tests and the benchmarks only: nothing in the production packages
imports this package (the CLI registers its commands lazily).
"""
