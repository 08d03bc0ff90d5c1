"""The web app: a FastAPI application over the job manager, and ``run_server`` (uvicorn).

JSON API (the page uses it too):
    GET    /api/info                      models, their sources, the upload limit
    POST   /api/jobs                      multipart ``file`` (+ ``model``, ``stems``, ``two_stems``) -> {"id": ...}
    GET    /api/jobs                      {"jobs": [job, ...]}
    GET    /api/jobs/{id}                 status, progress in [0, 1], stems with their URLs when done
    GET    /api/jobs/{id}/stems/{name}    the stem (WAV); ?download=1 as an attachment
    GET    /api/jobs/{id}/zip             every stem in one zip
    DELETE /api/jobs/{id}                 forget the job and remove its files
"""
from __future__ import annotations

import re
import shutil
import socket
import threading
import webbrowser
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from convsep.errors import ConvSepError
from convsep.io.audio import AUDIO_SUFFIXES
from convsep.serve.jobs import STEM_EXT, JobManager

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}   # the only files served
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
COPY_BLOCK = 1 << 20


@dataclass
class ServeOptions:
    models: list[str | None] = field(default_factory=lambda: [None])
    max_upload_bytes: int = 200_000_000
    queue_size: int = 16
    workers: int = 1
    threads: int | None = None
    keep_seconds: float = 3600.0
    root: Path | None = None          # the jobs' folder (default: a new temporary folder)


class UploadTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether or not they declare
    their length (the declared length is checked before anything is read)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(self.limit)(scope, receive, send)
        seen = 0
        exceeded = started = False

        async def counted() -> dict:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                exceeded = True
                raise UploadTooLarge
            return message

        async def sending(message: dict) -> None:
            nonlocal started
            if exceeded:        # whatever the app answers to a cut-off body, the answer is 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _too_large(self.limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"file too large: the limit is {limit / 1e6:.0f} MB"}, status_code=413)


def display_name(filename: str | None) -> str:
    """An upload's file name for display: no folders, no control characters, 120 chars."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().lstrip(".")
    return name[:120] or "upload"


def audio_suffix(filename: str) -> str:
    """The upload's (checked) audio extension, e.g. ".mp3"; ConvSepError otherwise."""
    match = re.search(r"(\.[A-Za-z0-9]{1,5})$", filename)
    suffix = match.group(1).lower() if match else ""
    if suffix not in AUDIO_SUFFIXES:
        raise ConvSepError(f"{filename}: not an audio file type convsep reads "
                           f"({', '.join(sorted(s.lstrip('.') for s in AUDIO_SUFFIXES))})")
    return suffix


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def create_app(options: ServeOptions | None = None, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The application; its job manager starts with it and removes its files on shutdown."""
    options = options or ServeOptions()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.jobs = JobManager(options.models, options.queue_size, options.workers,
                                    options.keep_seconds, options.root, options.threads)
        try:
            yield
        finally:
            app.state.jobs.close()

    app = FastAPI(title="convsep", lifespan=lifespan, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.middleware("http")
    async def same_origin_writes(request: Request, call_next):
        # a page from another site may not create or delete jobs (scripts send no Origin)
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin and origin.split("://", 1)[-1] != request.headers.get("host"):
            return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        return await call_next(request)

    def manager(request: Request) -> JobManager:
        return request.app.state.jobs

    def job_or_404(request: Request, job_id: str):
        job = manager(request).get(job_id)
        if job is None:
            raise _error(404, "no such job (it may have expired)")
        return job

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise _error(404, "not found")
        return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name])

    @app.get("/api/info")
    def info(request: Request) -> dict:
        jobs = manager(request)
        models = []
        for name in jobs.models:
            try:
                sources = list(jobs.separator(name).sources)
            except ConvSepError as exc:
                raise _error(500, str(exc))
            models.append({"name": name, "sources": sources})
        return {"models": models, "max_upload_bytes": options.max_upload_bytes,
                "formats": sorted(s.lstrip(".") for s in AUDIO_SUFFIXES)}

    @app.post("/api/jobs", status_code=201)
    def create_job(request: Request, file: UploadFile = File(...), model: str | None = Form(None),
                   stems: str | None = Form(None), two_stems: str | None = Form(None)) -> dict:
        jobs = manager(request)
        filename = display_name(file.filename)
        stem_list = [s.strip() for s in stems.split(",") if s.strip()] if stems else None
        try:
            suffix = audio_suffix(filename)
            model = jobs.check_request(model or None, stem_list, two_stems or None)
        except ConvSepError as exc:
            raise _error(400, str(exc))
        job_id, folder = jobs.new_folder()
        upload = folder / f"input{suffix}"
        try:
            size = 0
            with open(upload, "wb") as out:
                while block := file.file.read(COPY_BLOCK):
                    size += len(block)
                    if size > options.max_upload_bytes:
                        raise _error(413, f"file too large: the limit is {options.max_upload_bytes / 1e6:.0f} MB")
                    out.write(block)
            if size == 0:
                raise _error(400, f"{filename}: the file is empty")
            job = jobs.submit(job_id, folder, upload, filename, model, stem_list, two_stems or None)
        except ConvSepError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise _error(503, str(exc))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return {"id": job.id, "url": f"/api/jobs/{job.id}"}

    @app.get("/api/jobs")
    def list_jobs(request: Request) -> dict:
        return {"jobs": [job.public() for job in manager(request).jobs()]}

    @app.get("/api/jobs/{job_id}")
    def get_job(request: Request, job_id: str) -> dict:
        return job_or_404(request, job_id).public()

    @app.delete("/api/jobs/{job_id}")
    def delete_job(request: Request, job_id: str) -> dict:
        if not manager(request).delete(job_id):
            raise _error(404, "no such job (it may have expired)")
        return {"deleted": job_id}

    @app.get("/api/jobs/{job_id}/stems/{name}")
    def get_stem(request: Request, job_id: str, name: str, download: bool = False) -> FileResponse:
        job = job_or_404(request, job_id)
        path = manager(request).stem_path(job, name)
        if path is None:
            raise _error(404, f"no stem {name[:40]!r} in this job" if job.status == "done"
                         else f"the job is {job.status}, its stems are not ready")
        return FileResponse(path, media_type="audio/wav",
                            filename=f"{job.track} - {name}.{STEM_EXT}" if download else None,
                            content_disposition_type="attachment" if download else "inline")

    @app.get("/api/jobs/{job_id}/zip")
    def get_zip(request: Request, job_id: str) -> FileResponse:
        job = job_or_404(request, job_id)
        if job.status != "done":
            raise _error(404, f"the job is {job.status}, its stems are not ready")
        return FileResponse(manager(request).zip_path(job), media_type="application/zip",
                            filename=f"{job.track} - stems.zip")

    app.add_middleware(BodyLimit, limit=options.max_upload_bytes + 1_000_000)   # + multipart framing
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    return app


def run_server(options: ServeOptions, host: str = "127.0.0.1", port: int = 8000,
               open_browser: bool = False) -> int:
    """Serves until Ctrl+C; the temporary folder is removed on the way out."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConvSepError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    port = sock.getsockname()[1]
    # On localhost, refuse other Host names too (a web page cannot reach the app by DNS rebinding).
    allowed = None if host not in LOOPBACK else ["127.0.0.1", "localhost", "[::1]", "::1"]
    app = create_app(options, allowed_hosts=allowed)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"
    print(f"convsep serve: {url}  (Ctrl+C to stop)", flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3))
    server.run(sockets=[sock])
    return 0
