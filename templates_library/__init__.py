"""templates_library."""
