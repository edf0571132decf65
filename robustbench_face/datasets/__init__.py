"""Built-in datasets; one module per plugin."""
