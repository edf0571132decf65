"""Built-in victims; one module per plugin."""
