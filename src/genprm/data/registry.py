"""Registry of the problem datasets the pipeline knows by name.

Each :class:`DatasetSpec` says where a dataset lives locally (a folder name under a data
root, one file per split) and on the Hugging Face Hub (id, split names, configs), and how
its rows map onto :class:`genprm.records.Problem`. Field names are looked up from the
shared candidate lists in :mod:`genprm.data.loaders`, so a spec only names what differs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DatasetSpec", "LOADERS", "UnknownDatasetError", "get_spec"]


class UnknownDatasetError(KeyError):
    """A dataset name that is not registered. The message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one named problem dataset."""

    name: str
    """Registry key; also the ``source`` of every Problem and the prefix of its id."""
    local_dir: str
    """Folder name under a data root (``<root>/<local_dir>/<split>.jsonl``)."""
    splits: tuple[str, ...]
    default_split: str
    hub_id: str
    hub_splits: Mapping[str, str] = field(default_factory=dict)
    """Our split name -> the Hub's split name, where they differ."""
    hub_configs: tuple[str, ...] = ()
    """Configs of ``hub_id`` to load and concatenate (only for the default ``hub_id``)."""
    metadata_fields: tuple[str, ...] = ()
    """Raw fields copied into ``Problem.metadata`` when present."""
    answer_from_solution: bool = False
    """Without an answer field, take the last ``\\boxed{}`` of the solution."""
    skip_unanswered: bool = False
    """Skip (count, warn) rows without any answer instead of raising."""

    def hub_split(self, split: str) -> str:
        return self.hub_splits.get(split, split)


_MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)

LOADERS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="math",
            local_dir="math",
            splits=("train", "test"),
            default_split="train",
            hub_id="EleutherAI/hendrycks_math",
            hub_configs=_MATH_SUBJECTS,
            metadata_fields=("level", "type"),
            answer_from_solution=True,
            skip_unanswered=True,
        ),
        DatasetSpec(
            name="math500",
            local_dir="math500",
            splits=("test",),
            default_split="test",
            hub_id="HuggingFaceH4/MATH-500",
            metadata_fields=("level", "subject"),
        ),
        DatasetSpec(
            name="aime24",
            local_dir="aime24",
            splits=("test",),
            default_split="test",
            hub_id="Maxwell-Jia/AIME_2024",
            hub_splits={"test": "train"},
            metadata_fields=("url",),
        ),
        DatasetSpec(
            name="amc23",
            local_dir="amc23",
            splits=("test",),
            default_split="test",
            hub_id="math-ai/amc23",
            metadata_fields=("url",),
        ),
        DatasetSpec(
            name="minerva_math",
            local_dir="minerva_math",
            splits=("test",),
            default_split="test",
            hub_id="math-ai/minervamath",
            metadata_fields=("type",),
            answer_from_solution=True,
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    """The spec registered as ``name`` (case-insensitive).

    Raises :class:`UnknownDatasetError` listing the known names and the closest match.
    """
    key = name.strip().lower()
    if key in LOADERS:
        return LOADERS[key]
    known = sorted(LOADERS)
    msg = f"unknown dataset {name!r}; known: {', '.join(known)}"
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        msg += f" (did you mean {close[0]!r}?)"
    if key == "processbench":
        msg += "; ProcessBench has its own loader: genprm.data.load_processbench"
    raise UnknownDatasetError(msg)
