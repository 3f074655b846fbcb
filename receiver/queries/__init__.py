"""Read-side operations and the redrive action, shared by the operator commands and the console.

Each function takes a Redis client and key names (or the pipeline) and returns plain data; printing a
table or rendering a page is left to the caller.
"""
