"""What a video is about, as typed group keys (categories, tags) the ranker learns affinities for.

A group key is `<type>:<value>`, e.g. `c1:8` (KuaiRec first-level category 8) or `tag:27`.
Offline, KuaiRec's files give three category levels and tag ids; in a cell, the videos table
gives the category and hashtags. The ranker learns per type, so either source works."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

from carveout.core import InvalidInput

GROUP_TYPES = ("c1", "c2", "c3", "tag")
CATEGORIES_CSV = "kuairec/kuairec_caption_category.csv"
TAGS_CSV = "kuairec/item_categories.csv"
UNKNOWN_ID = "-124"  # KuaiRec's "no category at this level"

VideoGroups = dict[int, dict[str, tuple[str, ...]]]  # video -> type -> keys


def read_kuairec_groups(datasets: Path) -> VideoGroups:
    """Category levels and tag ids of every KuaiRec video; a missing file is an error."""
    groups: VideoGroups = {}
    cats, tags = datasets / CATEGORIES_CSV, datasets / TAGS_CSV
    for path in (cats, tags):
        if not path.is_file():
            raise InvalidInput(f"{path}: not found (KuaiRec, from kuairec.com)")
    with cats.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                video = int(row["video_id"])
            except (TypeError, ValueError, KeyError):
                continue  # a caption's stray line break: KuaiRec has four
            entry = groups.setdefault(video, {})
            for level in (1, 2, 3):
                value = (
                    row.get(f"{('first', 'second', 'third')[level - 1]}_level_category_id")
                    or UNKNOWN_ID
                ).strip()
                if value != UNKNOWN_ID:
                    entry[f"c{level}"] = (f"c{level}:{value}",)
    with tags.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                video = int(row["video_id"])
                values = ast.literal_eval(row["feat"])
            except (TypeError, ValueError, KeyError, SyntaxError):
                raise InvalidInput(f"{tags}: bad row {row!r}") from None
            groups.setdefault(video, {})["tag"] = tuple(f"tag:{int(v)}" for v in values)
    return groups
