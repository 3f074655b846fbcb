"""Helpers for the reliability tests: real processes, recorded call histories, a reference model."""
