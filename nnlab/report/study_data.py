"""The data a study trained on, as a report needs them: the shape its manifest records, and
the arrays themselves for the sections that show examples."""

from __future__ import annotations

from typing import Any

from nnlab.datasets import Dataset
from nnlab.report.summaries import StudyResults
from nnlab.study.data_spec import DataSpec
from nnlab.study.task import load_dataset


def load_data(data: DataSpec) -> Dataset:
    """The study's data set, loaded once (`nnlab.study.task.load_dataset`: several sections
    read its test examples). A Dataset object given to a study from Python cannot be
    loaded from its results folder: NNLabError saying so."""
    return load_dataset(data)


def data_record(results: StudyResults) -> dict[str, Any]:
    """The data's identity as manifest.json records it (name, source, digest, n_classes,
    image_shape, n_features, sizes); for a study older than that record, its data loaded."""
    recorded = results.manifest.get("data")
    if isinstance(recorded, dict):
        return recorded
    return load_data(results.spec.data).identity(results.spec.data.source())


def is_images(image_shape: list[int] | tuple[int, ...]) -> bool:
    """Whether examples of this (channels, height, width) are images: at least 2 x 2."""
    return min(image_shape[1:]) >= 2
