"""The labels of your own data (:mod:`.custom`): their kind (classes or regression targets), classes and encoding.

The kind and the classes come from the training split: names or integers are classes in sorted order, a
``ClassLabel`` keeps its names and order, floats are regression targets. What cannot train a model is refused
with the split, the row and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from datasets import ClassLabel, Value

from .data_files import is_missing

if TYPE_CHECKING:
    from .custom import _Part

__all__ = ["Labels"]


def _number(value: Any) -> float | None:
    """``value`` as a number when it is one (an int, a float, or text that reads as one), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _kind(value: Any) -> str:
    """What a label is: a ``name`` (text), a ``number``, a ``boolean``, or another type (refused)."""
    if isinstance(value, bool):
        return "boolean"
    if _number(value) is not None:
        return "number"
    return "name" if isinstance(value, str) else type(value).__name__


def _class_key(value: Any) -> Any:
    """The class a label value stands for: integers (also written as text) by value, else the value itself."""
    number = _number(value)
    if number is not None and number.is_integer():
        return int(number)
    return number if number is not None else value


def _labelled(part: _Part, column: str) -> list[Any]:
    """The label values of ``part``, checked to be there in every row (``-1`` is a ``ClassLabel``'s none)."""
    values = part.dataset[column][:]
    unlabelled = -1 if isinstance(part.dataset.features[column], ClassLabel) else None
    for row, value in enumerate(values, start=1):
        if is_missing(value) or value == unlabelled:
            raise ValueError(
                f"{part.where}, row {row}: the label is empty"
                + (" (-1: unlabelled)" if value == -1 else "")
                + ": every training and validation row needs one; drop the row or fill it in"
            )
    return values


class Labels(NamedTuple):
    """The label set of a training split: its class names in index order and the key of each class
    (``names`` ``None``: a regression target), the classes the training split has, and whether they are a
    ``ClassLabel``'s (whose names other sources are matched against)."""

    names: tuple[str, ...] | None
    keys: dict[Any, int]
    seen: frozenset[int] = frozenset()
    class_label: bool = False

    @classmethod
    def of(cls, train: _Part, column: str) -> Labels:
        """Infer the kind and the classes from the training split; refuse what cannot train a model."""
        values = _labelled(train, column)
        feature = train.dataset.features[column]
        if isinstance(feature, ClassLabel):
            labels = cls(
                tuple(feature.names), {name: i for i, name in enumerate(feature.names)}, class_label=True
            )
        elif isinstance(feature, Value) and feature.dtype.startswith("float"):
            labels = cls(None, {})
        else:
            labels = cls._inferred(train, column, values)
        if labels.names is None:
            targets = {float(value) for value in values}
            if len(targets) < 2:
                raise ValueError(
                    f"{train.where}: every training target is {next(iter(targets), None)} ({len(values)} rows): "
                    f"regression needs targets that vary; check the label column {column!r} (--label_column)"
                )
            return labels
        seen = frozenset(labels.encode(train, column, train.where))
        if len(seen) < 2:
            raise ValueError(
                f"{train.where}: every training label is {labels.names[next(iter(seen))]!r} ({len(values)} rows): "
                "a classifier needs examples of at least two classes; add training examples of the others "
                "(for scores, write them as floats: a regression)"
            )
        return labels._replace(seen=seen)

    @classmethod
    def _inferred(cls, train: _Part, column: str, values: Sequence[Any]) -> Labels:
        """Names or integers (also as text): classes in sorted order; other numbers: a regression target."""
        first = _kind(values[0]) if values else "name"
        for row, value in enumerate(values, start=1):
            kind = _kind(value)
            if kind not in ("name", "number", "boolean"):
                raise ValueError(
                    f"{train.where}, row {row}: label {value!r} is a {kind}; a label is a name, an integer "
                    "(classes) or a float (a regression target), one per row"
                )
            if kind != first:
                raise ValueError(
                    f"{train.where}, row {row}: label {value!r} is a {kind}, but row 1's label {values[0]!r} is "
                    f"a {first}: the label column {column!r} mixes kinds. Write every label as a name (e.g. "
                    "positive), or every one as a number (integers: classes; floats: regression targets)"
                )
        keys = [_class_key(value) for value in values]
        if first == "number" and not all(isinstance(key, int) for key in keys):
            return cls(None, {})
        ordered = sorted(set(keys))
        return cls(tuple(map(str, ordered)), {key: i for i, key in enumerate(ordered)})

    def encode(self, part: _Part, column: str, train_where: str) -> list[int] | list[float]:
        """The labels of ``part`` as class indices (in the training split's classes) or float targets."""
        values = _labelled(part, column)
        if self.names is None:
            for row, value in enumerate(values, start=1):
                if _kind(value) != "number":
                    raise ValueError(
                        f"{part.where}, row {row}: expected a float target as label (the training labels are "
                        f"regression targets), found {value!r}"
                    )
            return [float(value) for value in values]
        feature = part.dataset.features[column]
        indices = []
        for row, value in enumerate(values, start=1):
            named = feature.int2str(value) if isinstance(feature, ClassLabel) else value
            index = self.keys.get(str(named) if self.class_label else _class_key(named))
            if index is None or (self.seen and index not in self.seen):
                known = [self.names[i] for i in sorted(self.seen)] if self.seen else list(self.names)
                raise ValueError(
                    f"{part.where}, row {row}: label {value!r} does not occur in the training data "
                    f"({train_where}), whose labels are {', '.join(known)}: add training examples of it, or drop "
                    "the rows that have it"
                )
            indices.append(index)
        return indices
