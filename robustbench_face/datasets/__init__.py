"""Built-in dataset loaders, one module per on-disk layout; every dataset is a card in the
top-level ``datasets/`` folder over one of them (see :mod:`._cards`)."""
