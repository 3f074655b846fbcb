"""HTTP routes, one module per part of the surface; `receiver.app` assembles them."""
