"""``GET /v1/reports/kpis``: the KPI report (``cloud_sync.reports``) as JSON or CSV."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from cloud_sync.api.deps import CallerDep, ConnDep, check_depot
from cloud_sync.reports import Report, build_report
from cloud_sync.reports.csv_export import to_csv
from cloud_sync.reports.kpis import Scope

router = APIRouter(prefix="/v1/reports", tags=["reports"])
#: Longest period one report covers (a year): bounds the events one request reads.
MAX_PERIOD_S = 366 * 86_400.0


class KpiPublic(BaseModel):
    name: str
    value: float | None
    unit: str
    owner: str = Field(description="role that owns acting on it")
    threshold: float | None
    breached: bool | None
    links: list[str] = Field(description="API calls listing the records behind the figure")


class ScopePublic(BaseModel):
    kind: str
    key: str
    vehicles: int
    provisional: bool
    provisional_reasons: list[str]
    kpis: list[KpiPublic]


class ReportPublic(BaseModel):
    start: float
    end: float
    generated_at: float
    fuel_price: float | None
    provisional: bool = Field(description="true while any vehicle may still hold data for the period")
    fleet: ScopePublic
    depots: list[ScopePublic]
    vehicles: list[ScopePublic]


def _scope(s: Scope) -> ScopePublic:
    return ScopePublic(kind=s.kind, key=s.key, vehicles=s.vehicles, provisional=s.provisional,
                       provisional_reasons=s.provisional_reasons,
                       kpis=[KpiPublic(name=k.name, value=k.value, unit=k.unit, owner=k.owner, threshold=k.threshold,
                                       breached=k.breached, links=list(k.links)) for k in s.kpis.values()])


def _public(r: Report) -> ReportPublic:
    return ReportPublic(start=r.start, end=r.end, generated_at=r.generated_at, fuel_price=r.fuel_price,
                        provisional=r.provisional, fleet=_scope(r.fleet), depots=[_scope(d) for d in r.depots],
                        vehicles=[_scope(v) for v in r.vehicles])


@router.get("/kpis", summary="KPIs per vehicle, depot and fleet for a period (JSON or CSV)",
            response_model=ReportPublic,
            responses={200: {"content": {"text/csv": {}}, "description": "the report (format=csv: CSV)"},
                       403: {"description": "a depot the caller may not see"}})
def get_kpis(
    conn: ConnDep, caller: CallerDep,
    start: Annotated[float, Query(alias="from", allow_inf_nan=False, description="period start, unix seconds")],
    end: Annotated[float, Query(alias="to", allow_inf_nan=False, description="period end (exclusive)")],
    depot: Annotated[str | None, Query(max_length=128, description="one depot only")] = None,
    fuel_price: Annotated[float | None, Query(ge=0, le=1000, allow_inf_nan=False,
                                              description="price per litre for idle fuel cost")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    if not 0 < end - start <= MAX_PERIOD_S:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"to must be after from, by at most {MAX_PERIOD_S / 86_400:.0f} days")
    if depot is not None:
        check_depot(caller, depot)
        depots: frozenset[str] | None = frozenset({depot})
    else:
        depots = caller.depots
    report = build_report(conn, start, end, depots=depots, fuel_price=fuel_price, now=time.time())
    if format == "csv":
        return PlainTextResponse(to_csv(report), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="kpis.csv"'})
    return _public(report)
