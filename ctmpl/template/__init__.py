"""Jinja2 templates with consul-template's functions, rendered in a sandbox."""
