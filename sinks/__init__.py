"""Ready-made consumers that keep an outside system in step with the transitions stream.

Each sink is a `consumer.Consumer` handler plus its configuration, runnable as ``python -m sinks.<name>``.
"""
