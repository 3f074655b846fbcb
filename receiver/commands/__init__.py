"""Implementations of the ``callstream`` subcommands, one module each; wiring lives in `receiver.cli`."""
