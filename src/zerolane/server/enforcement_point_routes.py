"""Admin endpoints for enforcement points: who may ask ``POST /v1/decide``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictStr

from zerolane.server.deployment import Deployment
from zerolane.server.schemas import Strict
from zerolane.server.security import Admin
from zerolane.store.records import EnforcementPoint

router = APIRouter(tags=["admin"])


class AddPointBody(Strict):
    name: StrictStr = Field(max_length=63, description="a short name, e.g. edge-nginx")
    urls: list[StrictStr] = Field(
        min_length=1, max_length=64, description="the public URLs (prefixes) it serves"
    )


class PointOut(BaseModel):
    name: str
    urls: list[str]
    created_at: float


class AddedPointOut(PointOut):
    #: shown once: only its hash is stored
    credential: str


def _out(point: EnforcementPoint) -> PointOut:
    return PointOut(name=point.name, urls=list(point.urls), created_at=point.created_at)


def _deployment(request: Request) -> Deployment:
    deployment: Deployment = request.app.state.deployment
    return deployment


@router.post("/v1/admin/enforcement-points", response_model=AddedPointOut, status_code=201)
def add_point(body: AddPointBody, request: Request, actor: Admin) -> AddedPointOut:
    """Register an enforcement point; its credential is in this answer only."""
    credential, point = _deployment(request).enforcement_points.add(body.name, body.urls, actor)
    return AddedPointOut(**_out(point).model_dump(), credential=credential)


@router.get("/v1/admin/enforcement-points", response_model=list[PointOut])
def list_points(request: Request, _: Admin) -> list[PointOut]:
    return [_out(point) for point in _deployment(request).enforcement_points.list()]


@router.delete("/v1/admin/enforcement-points/{name}", response_model=PointOut)
def remove_point(name: str, request: Request, actor: Admin) -> PointOut:
    """Remove an enforcement point: its credential is refused from now on."""
    return _out(_deployment(request).enforcement_points.remove(name, actor))
