"""The ``payhook`` command line."""
