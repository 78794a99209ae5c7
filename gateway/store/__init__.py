"""SQL lives here: one module per part of the domain, parameterised queries only."""
