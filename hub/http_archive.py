"""HTTP routes for session archives, artifact deletion and garbage collection."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hub.archive import export_session, import_session
from hub.artifact_deletion import delete_artifact
from hub.gc import gc
from hub.http import JSONResponse, _check_token, _hub
from hub.media import safe_name


async def export_route(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    session = hub.session(request.path_params["session"])
    data = await export_session(hub, session.id)
    name = f"{safe_name(session.title, default='session')}.tutti.zip"
    return Response(data, media_type="application/zip",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


async def import_route(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    data = await request.body()
    new_ids = request.query_params.get("new_ids", "true").lower() != "false"
    session_id = await import_session(hub, data, new_ids=new_ids)
    return JSONResponse(hub.session(session_id).model_dump(mode="json"), status_code=201)


async def delete_artifact_route(request: Request) -> Response:
    _check_token(request)
    artifact = await delete_artifact(_hub(request), request.path_params["artifact"])
    return JSONResponse({"deleted": artifact.id, "hash": artifact.hash})


async def gc_route(request: Request) -> Response:
    _check_token(request)
    dry = request.query_params.get("dry_run", "false").lower() == "true"
    report = await gc(_hub(request), dry_run=dry)
    return Response(orjson.dumps(report.to_dict()), media_type="application/json")
