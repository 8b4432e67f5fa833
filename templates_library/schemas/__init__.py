"""JSON Schemas of the pack format, loaded with importlib.resources (data only, no code)."""
