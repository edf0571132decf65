"""Built-in defenses; one module per plugin."""
