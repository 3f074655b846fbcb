"""Signature schemes, one module per family; each verifies in constant time and can also sign (for tests
and ``callstream replay``). Adapters choose the family their provider uses."""
