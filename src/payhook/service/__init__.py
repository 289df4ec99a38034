"""Use cases: ingest, process, audit. They depend on ports only."""
