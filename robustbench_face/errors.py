"""Exceptions. Library code raises these; only the CLI turns them into exit codes."""


class RbfError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class UnknownNameError(RbfError, LookupError):
    """A victim / attack / defense / dataset / variant name that is not registered."""


class PluginError(RbfError):
    """A plugin that cannot be registered (duplicate name, bad entry point)."""


class AssetError(RbfError):
    """A weight or data file that is missing and could not be fetched."""


class ChecksumError(AssetError):
    """A file whose sha256 differs from its card. The file is never used."""


class DataError(RbfError):
    """A dataset, image or label file that cannot be read."""


class InputError(RbfError, ValueError):
    """Bad tensors or arguments: non-finite images, wrong shapes, impossible flag combinations."""
