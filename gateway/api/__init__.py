"""HTTP handlers, one module per area; each exposes `setup(app)` registering its routes and roles."""
