"""Split rules: which split a whole group of images (a person, a CK+ subject) belongs to.

A learned attack must be scored on people it never saw, so splits are assigned per group, never
per image. The rule is a short string on a dataset card (``[options] split_rule``) or a
``--dataset name:split_rule=...`` option, read by :func:`parse_split_rule`. Used by
``identity_folders`` (group = the identity folder) and ``class_folders`` (group = the file-name
prefix before the first ``_``, CK+'s subject).
"""

from __future__ import annotations

import re
from typing import Callable

from ..errors import DataError, InputError

_RANGE = re.compile(r"(?P<prefix>[^\d]*)(?P<lo>[0-9]+)\.\.(?P<prefix2>[^\d]*)(?P<hi>[0-9]+)")
_MODULO = re.compile(r"(?P<prefix>[^\d*]*)\*%(?P<k>[0-9]+)=(?P<r>[0-9]+)")


def _numbered(prefix: str, test: Callable[[int], bool]) -> Callable[[str], bool]:
    number = re.compile(re.escape(prefix) + "([0-9]+)")

    def matches(name: str) -> bool:
        n = number.fullmatch(name)
        return n is not None and test(int(n[1]))

    return matches


def _matcher(pattern: str, rule: str) -> Callable[[str], bool]:
    if pattern == "*":
        return lambda name: True
    m = _MODULO.fullmatch(pattern)
    if m is not None and int(m["k"]) > 0 and int(m["r"]) < int(m["k"]):
        k, r = int(m["k"]), int(m["r"])
        return _numbered(m["prefix"], lambda n: n % k == r)
    m = _RANGE.fullmatch(pattern)
    if m is None or m["prefix2"] not in ("", m["prefix"]) or int(m["lo"]) > int(m["hi"]):
        raise InputError(f"split rule {rule!r}: {pattern!r} is neither '*', a range like s1..s30 "
                         "nor a residue like S*%3=0")
    lo, hi = int(m["lo"]), int(m["hi"])
    return _numbered(m["prefix"], lambda n: lo <= n <= hi)


def parse_split_rule(rule: str) -> Callable[[str], str]:
    """A split rule over group names (identity folders, CK+ subjects), as cards write it.

    ``rule`` is comma-separated ``<groups>:<split>`` items, tried in order. ``<groups>`` is

    * ``<prefix><lo>..<prefix><hi>``: the names made of the prefix and then a whole number from
      lo to hi inclusive (``s1..s30``, ``07201..07429``; leading zeros are allowed);
    * ``<prefix>*%<k>=<r>``: the prefix and then a number ``n`` with ``n % k == r`` (``S*%3=0``:
      every third subject number), a split that interleaves groups recorded at different times
      instead of cutting them by number;
    * ``*``: any name.

    Whole groups go to one split, so splits never share a person. A name that no item matches
    raises :class:`DataError` (end the rule with ``*:<split>`` to catch the rest).

    >>> rule = parse_split_rule("s1..s30:train, *:holdout")
    >>> [rule(f) for f in ("s1", "s30", "s31", "s40", "extra")]
    ['train', 'train', 'holdout', 'holdout', 'holdout']
    >>> rule = parse_split_rule("S*%3=0:holdout, *:train")
    >>> [rule(f) for f in ("S003", "S010", "S999", "S1000")]
    ['holdout', 'train', 'holdout', 'train']
    """
    items = []
    for item in filter(None, (i.strip() for i in rule.split(","))):
        pattern, colon, split = (x.strip() for x in item.rpartition(":"))
        if not colon or not pattern or not split:
            raise InputError(f"split rule {rule!r}: item {item!r} is not <groups>:<split>")
        items.append((_matcher(pattern, rule), split))
    if not items:
        raise InputError(f"split rule {rule!r} is empty")

    def split_of(name: str) -> str:
        for matches, split in items:
            if matches(name):
                return split
        raise DataError(f"{name!r} matches no item of the split rule {rule!r}")

    return split_of
