"""The built-in metrics plugins, one module each, registered through the
``dropsonde.metrics`` entry-point group exactly as third-party plugins are."""
