"""Contact gateway: enforces a housing provider's contact restrictions on every inbound contact."""

__version__ = "0.1.0"
