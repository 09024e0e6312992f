"""The floor of an HTTP round trip: a FastAPI POST that validates a pydantic body of leads and
answers a small JSON, served by the same uvicorn (httptools, uvloop) as `leadloop serve`.

Run by `make bench` as `uvicorn benchmarks.serving.bare_app:app`.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

app = FastAPI()


class Lead(BaseModel):
    model_config = ConfigDict(extra="allow")
    lead_id: str


class Leads(BaseModel):
    leads: list[Lead]


@app.post("/v1/scores")
async def scores(body: Leads) -> dict[str, object]:
    return {"model_version": "bare", "scores": [{"lead_id": x.lead_id} for x in body.leads]}
