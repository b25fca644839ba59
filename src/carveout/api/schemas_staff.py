"""Request and response bodies of the staff routes: accounts, verified erasures, the access log."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from carveout.accounts import AccessEntry, ChainHead, ChainProblem, User


class StaffUserOut(BaseModel):
    """An account as a privacy officer sees it; an erased account's fields are empty."""

    id: str
    domicile: str
    cell: str
    status: str = Field(description="active | erasing | erased")
    handle: str | None
    display_name: str | None
    email: str | None
    birth_year: int | None
    created_at: int

    @classmethod
    def of_cell(cls, user: User, cell: str) -> StaffUserOut:
        return cls(
            id=user.id,
            domicile=user.domicile,
            cell=cell,
            status=user.status,
            handle=user.handle,
            display_name=user.display_name,
            email=user.email,
            birth_year=user.birth_year,
            created_at=user.created_at,
        )


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(max_length=36)
    purpose: str = Field(
        max_length=2000, description="why (1-500 characters); logged, and on the receipt"
    )
    verification: str = Field(
        max_length=2000,
        description="how the request was verified (1-500 characters); on the receipt",
        examples=["identity confirmed by a signed message from the account's email, ticket 4711"],
    )


class AccessEntryOut(BaseModel):
    id: str
    jurisdiction: str = Field(description="the subject's domicile: whose chain it is in")
    seq: int
    staff_id: str
    role: str
    subject_id: str
    action: str
    purpose: str
    created_at: int
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, e: AccessEntry) -> AccessEntryOut:
        fields = {k: v for k, v in vars(e).items() if k != "domicile"}
        return cls(jurisdiction=e.domicile, **fields)


class ChainProblemOut(BaseModel):
    jurisdiction: str
    seq: int
    entry_id: str
    problem: str

    @classmethod
    def of(cls, p: ChainProblem) -> ChainProblemOut:
        return cls(jurisdiction=p.domicile, seq=p.seq, entry_id=p.entry_id, problem=p.what)


class ChainHeadOut(BaseModel):
    jurisdiction: str
    seq: int
    hash: str

    @classmethod
    def of(cls, h: ChainHead) -> ChainHeadOut:
        return cls(jurisdiction=h.domicile, seq=h.seq, hash=h.hash)


class ChainOut(BaseModel):
    intact: bool
    problems: list[ChainProblemOut]
    heads: list[ChainHeadOut] = Field(description="newest entry per jurisdiction: record these")


class AccessLogOut(BaseModel):
    items: list[AccessEntryOut]
    next_cursor: str | None
    chain: ChainOut
