"""Typed result records and their one way into the JSON row.

Owns: the rule that turns a result dataclass into the flat dict the report
and --json print (`as_row`), and the field markers that say how: `FLAT`
merges a nested record's keys into its parent's (in place, left out when the
record is None), `SPREAD` merges a dict's items the same way, `OPTIONAL` leaves a key out while it is None, `EMPTY`
prints a missing sub-record as {}. A plain field is always printed, None as
null. Key order is field order, so a record's fields are declared in the order
the JSON shows them.
Markers are given as field metadata: `field(default=None, metadata=FLAT)`.
Must not import: any other lanchat_bench module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

_FLAT = "flat"
_OPTIONAL = "optional"
_EMPTY = "empty"
_SPREAD = "spread"
_KEY = "key"

# Field metadata, given as `field(default=None, metadata=FLAT)`: a plain dataclasses.field,
# as readers and linters expect.
#: A nested record whose keys appear in the parent's row; None adds no key.
FLAT: Mapping[str, Any] = MappingProxyType({_FLAT: True})
#: A dict whose items appear in the parent's row (keys made at run time, e.g. one per rate).
SPREAD: Mapping[str, Any] = MappingProxyType({_SPREAD: True})
#: A key printed only when set.
OPTIONAL: Mapping[str, Any] = MappingProxyType({_OPTIONAL: True})
#: Printed as "error" only when set: for a record with two error fields in two places (only one is ever set).
OPTIONAL_ERROR: Mapping[str, Any] = MappingProxyType({_OPTIONAL: True, _KEY: "error"})
#: A sub-record printed as a nested object, or as {} when it was never made.
EMPTY: Mapping[str, Any] = MappingProxyType({_EMPTY: True})


def as_row(record: object) -> dict[str, Any]:
    """The record as the flat dict of the JSON output (see the module docstring for the rules)."""
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(f"not a result record: {record!r}")
    row: dict[str, Any] = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        meta = field.metadata
        if meta.get(_FLAT):
            if value is not None:
                row.update(as_row(value))
            continue
        if meta.get(_SPREAD):
            row.update(value or {})
            continue
        if value is None and meta.get(_OPTIONAL):
            continue
        if value is None and meta.get(_EMPTY):
            value = {}
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = as_row(value)
        row[meta.get(_KEY, field.name)] = value
    return row
