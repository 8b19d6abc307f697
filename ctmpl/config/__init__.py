"""Configuration: frozen models, duration parsing, file loading, layering and flags."""
