"""Comments are screened by the cell's text moderation when posted: removed or held with a
statement of reasons, reviewed, restricted per jurisdiction, and never shown where they must not
be. The model is trained here on (a sample of) the real labelled data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import sqlalchemy as sa
from apiclient import Api, auth

from api.staff_helpers import h, make_staff
from carveout.core import settings
from carveout.datamap import TABLES
from carveout.moderation import RULES_FILE, TextModel, textdata
from carveout.moderation.classifier import MODEL_DIR
from carveout.moderation.training import fit

DATASETS = settings.datasets_dir()
NEEDS = [f for files in textdata.FILES.values() for f in files]
pytestmark = pytest.mark.skipif(
    any(not (DATASETS / f).exists() for f in NEEDS),
    reason=f"the labelled moderation text is not in {DATASETS}",
)
RULES = """
[[rule]]
label = "spam"
action = "reject"
ground = "terms"
rule = "Community guidelines: spam and scams"
category = "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"
"""


@pytest.fixture(scope="session")
def model() -> TextModel:
    """Trained as `moderation train` trains, on all the spam data and 1,500 rows of each other
    label (seeded), so the test stays quick while spam keeps an automatic threshold."""
    data = {}
    for label in textdata.LABELS:
        d = textdata.load(DATASETS, label)
        if label != "spam":
            d = textdata.Labelled(d.texts[::7][:1500], d.labels[::7][:1500], d.source)
        data[label] = d
    trained = fit(data, seed=0)
    assert trained.thresholds["spam"].auto is not None, "spam must be able to act alone"
    return trained


def _first(model: TextModel, texts: Iterable[str], want: str) -> str:
    """The first text (<= 300 chars) whose bands give `want`: clear, review or remove."""
    for text in texts:
        if not text.strip() or len(text) > 300 or any(ord(c) < 32 for c in text):
            continue
        bands = {s.label: s.band for s in model.classify(text)}
        if want == "remove" and bands["spam"] == "auto":
            return text
        if want == "review" and "review" in bands.values() and "auto" not in bands.values():
            return text
        if want == "clear" and set(bands.values()) == {"clear"}:
            return text
    raise AssertionError(f"no text of the data lands in the {want} band")


@pytest.fixture
def texts(model: TextModel) -> dict[str, str]:
    spam = textdata.load(DATASETS, "spam")
    hate = textdata.load(DATASETS, "hate")
    pool = [t for t, y in zip(spam.texts, spam.labels, strict=True) if y == 0]
    return {
        "remove": _first(
            model, (t for t, y in zip(spam.texts, spam.labels, strict=True) if y), "remove"
        ),
        "review": _first(model, pool + hate.texts, "review"),
        "clear": _first(model, pool, "clear"),
    }


def _setup(api: Api, model: TextModel) -> tuple[dict[str, str], str]:
    moderator = make_staff(api, "US", "moderator")
    cell = api.deployment.cell("global")
    model.save(cell.root / MODEL_DIR)
    (cell.root / RULES_FILE).write_text(RULES)
    return moderator, cell.name


def _listed(api: Api, video_id: str, who: dict[str, str]) -> dict[str, str]:
    r = api.client.get(f"/v1/videos/{video_id}/comments", headers=auth(who))
    assert r.status_code == 200, r.text
    return {c["id"]: c["status"] for c in r.json()["items"]}


def _post(api: Api, video_id: str, who: dict[str, str], body: str) -> dict[str, Any]:
    r = api.client.post(f"/v1/videos/{video_id}/comments", headers=auth(who), json={"body": body})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def test_posted_comments_are_removed_held_or_shown_as_the_thresholds_say(
    api: Api, model: TextModel, texts: dict[str, str]
) -> None:
    creator, author, viewer = api.signup("CA"), api.signup("GB"), api.signup("NZ")
    video = api.upload(creator, seed=3)["id"]  # before the model: its caption is not screened
    moderator, _ = _setup(api, model)

    clean = _post(api, video, author, texts["clear"])
    held = _post(api, video, author, texts["review"])
    spam = _post(api, video, author, texts["remove"])

    assert (clean["status"], clean["decision_id"]) == ("visible", None)
    assert held["status"] == "hidden" and held["decision_id"]
    assert spam["status"] == "removed" and spam["decision_id"]
    # Others see the clean comment only; the author also sees the one held for review.
    assert _listed(api, video, viewer) == {clean["id"]: "visible"}
    assert _listed(api, video, author) == {clean["id"]: "visible", held["id"]: "hidden"}
    # The removal carries a statement of reasons, shown to the author and moderators only.
    r = api.client.get(f"/v1/comments/{spam['id']}/decisions", headers=auth(author))
    (decision,) = r.json()
    assert decision["id"] == spam["decision_id"] and decision["target_kind"] == "comment"
    assert decision["decision_visibility"] == "rejected"
    assert decision["decision_ground"] == "terms"
    assert decision["rule"] == "Community guidelines: spam and scams"
    assert decision["category"] == "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"
    assert decision["automated_detection"] and decision["automated_decision"]
    assert decision["source"] == "automated" and "comment scored" in decision["facts"]
    assert decision["signals"]["text"]["spam"] >= model.thresholds["spam"].auto  # type: ignore[operator]
    assert decision["territorial_scope"] == ["*"]
    denied = api.client.get(f"/v1/comments/{spam['id']}/decisions", headers=auth(viewer))
    assert denied.status_code == 403
    # The uncertain one waits in the review queue; the removal does not.
    queue = api.client.get("/v1/moderation/queue", headers=h(moderator)).json()
    assert [(i["target_kind"], i["target_id"], i["origin"]) for i in queue] == [
        ("comment", held["id"], "automated")
    ]
    # Only the comment shown to others is an interaction event.
    with api.deployment.cell("global").store.connect() as conn:
        events = conn.execute(
            sa.select(sa.func.count()).where(TABLES["events"].c.kind == "comment")
        ).scalar_one()
    assert events == 1
    # The reviewer publishes the held comment: everyone sees it at once.
    r = api.client.post(
        f"/v1/moderation/queue/{queue[0]['id']}/decision",
        headers=auth(moderator),
        json={"visibility": "published", "facts": "banter, not abuse"},
    )
    assert r.status_code == 200, r.text
    assert _listed(api, video, viewer) == {clean["id"]: "visible", held["id"]: "visible"}
    # The author appeals the removal: it joins the queue.
    r = api.client.post(
        f"/v1/moderation/decisions/{spam['decision_id']}/appeal",
        headers=auth(author),
        json={"statement": "this is not spam"},
    )
    assert r.status_code == 201, r.text
    (item,) = api.client.get("/v1/moderation/queue", headers=h(moderator)).json()
    assert (item["origin"], item["target_id"]) == ("appeal", spam["id"])


def test_a_restricted_comment_is_hidden_only_in_the_restricting_jurisdiction(
    api: Api, model: TextModel, texts: dict[str, str]
) -> None:
    creator, author = api.signup("CA"), api.signup("GB")
    sg_viewer, ca_viewer = api.signup("SG"), api.signup("CA")
    video = api.upload(creator, seed=4)["id"]
    moderator, _ = _setup(api, model)
    comment = _post(api, video, author, texts["clear"])
    r = api.client.post(
        "/v1/reports",
        headers=auth(sg_viewer),
        json={"target_kind": "comment", "target_id": comment["id"], "reason": "unlawful here"},
    )
    assert r.status_code == 201, r.text
    r = api.client.post(
        f"/v1/moderation/queue/{r.json()['id']}/decision",
        headers=auth(moderator),
        json={
            "visibility": "restricted",
            "facts": "unlawful in SG",
            "ground": "illegal",
            "rule": "example law",
            "jurisdictions": ["SG"],
        },
    )
    assert r.status_code == 200, r.text
    assert _listed(api, video, sg_viewer) == {}
    assert _listed(api, video, ca_viewer) == {comment["id"]: "restricted"}
    assert _listed(api, video, author) == {comment["id"]: "restricted"}
    # A later decision lifting the restriction replaces it.
    r = api.client.post(
        "/v1/reports",
        headers=auth(ca_viewer),
        json={"target_kind": "comment", "target_id": comment["id"], "reason": "check again"},
    )
    r = api.client.post(
        f"/v1/moderation/queue/{r.json()['id']}/decision",
        headers=auth(moderator),
        json={"visibility": "published", "facts": "lawful after all"},
    )
    assert r.status_code == 200, r.text
    assert _listed(api, video, sg_viewer) == {comment["id"]: "visible"}


def test_refused_comments_store_nothing(api: Api, model: TextModel, texts: dict[str, str]) -> None:
    creator, author = api.signup("CA"), api.signup("GB")
    video = api.upload(creator, seed=5)["id"]
    held = api.upload(creator, seed=6)["id"]
    _setup(api, model)
    with api.deployment.cell("global").store.begin() as conn:
        conn.execute(
            sa.update(TABLES["videos"])
            .where(TABLES["videos"].c.id == held)
            .values(status="processing")
        )
    before = api.fingerprints()
    url = f"/v1/videos/{video}/comments"
    for body in ("spam\x07 " + texts["remove"], "evil \u202e txt", "   "):
        r = api.client.post(url, headers=auth(author), json={"body": body})
        assert r.status_code == 422, body
        assert r.json()["detail"]
    # A video held for review cannot be commented on by others (it is not theirs to see).
    r = api.client.post(f"/v1/videos/{held}/comments", headers=auth(author), json={"body": "hi"})
    assert r.status_code == 404
    api.assert_unchanged(before)


def test_without_a_trained_model_comments_are_shown(api: Api) -> None:
    creator, author = api.signup("CA"), api.signup("GB")
    video = api.upload(creator, seed=7)["id"]
    cell = api.deployment.cell("global")
    assert not (cell.root / MODEL_DIR).exists()
    posted = _post(api, video, author, "free money, click here now!!!")
    assert (posted["status"], posted["decision_id"]) == ("visible", None)
