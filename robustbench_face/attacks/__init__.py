"""Built-in attacks; one module per plugin."""
