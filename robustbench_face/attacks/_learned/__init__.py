"""What the learned patch attacks (``cond_patch``, ``patch_universal``) share, below both.

* :mod:`.data`: the training split, embedded once on every surrogate (``TrainData``), batches
  of source / target rows, the surrogates themselves and the on-disk data cache;
* :mod:`.io`: checkpoints (float16 safetensors, metadata, a JSON card beside them), universal
  patches, and the shipped checkpoints a card names (``checkpoints/``, sha256-checked);
* :mod:`.loop`: the training loop (steps, resume state, EMA logs, history, periodic saves,
  progress bar, wall time);
* :mod:`.losses`: the pull / push objective.

Nothing here imports an attack: the attacks import this package, never the other way round,
so neither attack module depends on the other.
"""
