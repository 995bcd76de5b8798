"""Reports: the run as a JSON document, and renderers that only render it."""
