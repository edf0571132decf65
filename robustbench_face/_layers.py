"""Who may import whom: the package's layers, lowest first (``docs/architecture.md``).

A module may import modules of a strictly lower layer, and modules of its own sub-package
(``attacks.cond_patch`` may import ``attacks._regions``); nothing imports the package root,
which is the public facade. ``tests/test_architecture.py`` reads this table and the source of
every module (imports inside functions included) and fails on any import that goes sideways
or up, and on any cycle.
"""

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "_version", "_layers", "interrupt"),  # 0: what everything may raise or read
    ("registry", "options", "assets", "preprocess"),  # 1: names, typed options, assets, input spec
    ("cards", "types", "factory", "activations"),  # 2: cards, protocols, create_*, layer hooks
    ("metrics", "sanity", "results", "fetch"),      # 3: pure functions over numbers; the CSV; rbf fetch
    ("heads",),                                     # 4: targets, objectives, scoring per head
    ("datasets",),                                  # 5: loaders
    ("align",),                                     # 6: face alignment (reads images)
    ("victims", "defenses", "attacks"),             # 7: the plugins
    ("adaptive", "measure", "clean_cache"),         # 8: wrappers, measurement, shared clean work
    ("tasks",),                                     # 9: one template, one module per field
    ("runner", "training", "plugin", "table", "page"),  # 10: a run, a training, a plugin, tables, the page
    ("sweeps", "demo", "bench", "publish", "interpret"),  # 11: runs of runs, rbf demo, publishing, rbf interpret
    ("cli",),                                       # 12: the commands
)


def layer_of(module: str) -> int:
    """Layer of ``robustbench_face.<part>...`` by its first part below the package.

    >>> layer_of("robustbench_face.attacks.cond_patch.train"), layer_of("robustbench_face.errors")
    (7, 0)
    """
    part = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise KeyError(f"{module}: not in any layer of robustbench_face/_layers.py; add it there")
