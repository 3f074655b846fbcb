"""HTTP routes, one module per part of the surface; `receiver.app` assembles them."""

# Registers the ``{name:text}`` path convertor before any route using it is built.
from receiver.routes import path_text as path_text
