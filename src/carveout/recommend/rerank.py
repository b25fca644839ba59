"""Re-rank: exploration slots for fresh videos; creator and category diversity down the page."""

from __future__ import annotations

from dataclasses import dataclass

CATEGORY_WINDOW = 5  # how far down a category change may pull an item


@dataclass(frozen=True)
class Candidate:
    video_id: str
    creator_id: str
    source: str  # candidate source ("embedding", "cowatch", ...), "explore", "popular (no model)"
    score: float
    category: str | None = None


def interleave(
    ranked: list[Candidate], fresh: list[Candidate], explore_share: float, n: int
) -> list[Candidate]:
    """The first n: every 1/explore_share-th slot from `fresh`, the rest from `ranked`, then
    reorder greedily so that no creator appears twice in a row where another choice exists."""
    every = round(1 / explore_share) if explore_share > 0 else 0
    picked: list[Candidate] = []
    taken: set[str] = set()
    queues = (ranked, fresh)
    pos = [0, 0]
    while len(picked) < n:
        want = 1 if every and fresh and (len(picked) + 1) % every == 0 else 0
        for q in (want, 1 - want):
            queue = queues[q]
            while pos[q] < len(queue) and queue[pos[q]].video_id in taken:
                pos[q] += 1
            if pos[q] < len(queue):
                picked.append(queue[pos[q]])
                taken.add(queue[pos[q]].video_id)
                break
        else:
            break
    return no_creator_runs(picked)


def no_creator_runs(items: list[Candidate]) -> list[Candidate]:
    """Stable greedy reorder: the best remaining item whose creator differs from the last one's,
    preferring one whose category differs too (a cold-start page is then not one category)."""
    rest = list(items)
    out: list[Candidate] = []
    while rest:
        last = out[-1] if out else None
        if last is None:
            i = 0
        else:
            other = [k for k, c in enumerate(rest) if c.creator_id != last.creator_id]
            varied = [k for k in other[:CATEGORY_WINDOW] if rest[k].category != last.category]
            i = (varied or other or [0])[0]
        out.append(rest.pop(i))
    return out
