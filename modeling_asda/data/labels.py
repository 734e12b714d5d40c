# Copyright 2026 The ASDA for Hugging Face authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The class list of a classification dataset: `LabelVocabulary` maps labels (class names, AudioSet mids, ClassLabel
ids, lists of them) to class indices. `LabelVocabulary.from_label_file` is the package's one reader of label files
(AudioSet's `index,mid,display_name` csv, or one name per line), used by fine-tuning and the checkpoint converter."""

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class LabelVocabulary:
    """Class names in index order, and every spelling of a label (AudioSet mid, display name) that maps to an index."""

    names: list[str]
    index: dict[str, int]
    multi_label: bool
    separator: str = ","

    @classmethod
    def from_names(cls, names: Sequence[str], multi_label: bool, separator: str = ",") -> "LabelVocabulary":
        names = [str(name) for name in names]
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate class names: {sorted({name for name in names if names.count(name) > 1})}.")
        return cls(names, {name: position for position, name in enumerate(names)}, multi_label, separator)

    @classmethod
    def from_label_file(cls, path: str | os.PathLike, multi_label: bool, separator: str = ",") -> "LabelVocabulary":
        """Read `index,mid,display_name` rows (AudioSet's label csv, with or without its header) or one name per line.

        Labels may then be given as mids or as display names.
        """
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row]
        if rows and rows[0][0].strip().lower() == "index":
            rows = rows[1:]
        if rows and len(rows[0]) >= 3:
            indices = [int(row[0]) for row in rows]
            if indices != list(range(len(rows))):
                raise ValueError(f"{path}: the index column must run 0, 1, 2, ... in order.")
            vocabulary = cls.from_names([row[2] for row in rows], multi_label, separator)
            for position, row in enumerate(rows):
                key = row[1].strip()
                if vocabulary.index.get(key, position) != position:
                    raise ValueError(f"{path}: {key!r} names two different classes.")
                vocabulary.index[key] = position
            return vocabulary
        return cls.from_names([row[0].strip() for row in rows], multi_label, separator)

    @classmethod
    def from_values(cls, values: Iterable, multi_label: bool, separator: str = ",") -> "LabelVocabulary":
        """The sorted distinct labels found in `values` (numerically when they are all integers)."""
        vocabulary = cls([], {}, multi_label, separator)
        names = {name for value in values for name in vocabulary.split(value)}
        numeric = all(name.lstrip("-").isdigit() for name in names)
        return cls.from_names(sorted(names, key=int if numeric else None), multi_label, separator)

    def split(self, value) -> list[str]:
        """One raw label value -> its label strings."""
        if isinstance(value, (list, tuple, np.ndarray)):
            return [str(item).strip() for item in value]
        if self.multi_label and isinstance(value, str):
            return [item.strip() for item in value.split(self.separator) if item.strip()]
        return [str(value).strip()]

    def encode(self, value) -> int | list[int]:
        """A raw label value -> a class index (single-label) or a sorted list of class indices (multi-label)."""
        names = self.split(value)
        unknown = [name for name in names if name not in self.index]
        if unknown:
            raise ValueError(f"Unknown label(s) {unknown} (the vocabulary has {len(self.names)} classes).")
        if self.multi_label:
            return sorted({self.index[name] for name in names})
        if len(names) != 1:
            raise ValueError(f"Single-label data, but {value!r} holds {len(names)} labels; pass multi_label=True.")
        return self.index[names[0]]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: position for position, name in enumerate(self.names)}


__all__ = ["LabelVocabulary"]
