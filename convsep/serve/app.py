"""The web app: a FastAPI application over the job manager, and ``run_server`` (uvicorn).

JSON API (the page uses it too):
    GET    /api/info                      models, their sources, the upload limit
    GET    /api/models                    the models' quality (real validation set) and speed
    POST   /api/jobs                      multipart ``file`` (+ ``model``, ``stems``, ``two_stems``) -> {"id": ...}
    GET    /api/jobs                      {"jobs": [job, ...]}
    GET    /api/jobs/{id}                 status, progress in [0, 1], stems with their URLs when done
    GET    /api/jobs/{id}/stems/{name}    the stem (?format=wav|flac|mp3); ?download=1 as an attachment
    GET    /api/jobs/{id}/zip             every stem in one zip (?format=wav|flac|mp3)
    GET    /api/jobs/{id}/stem.mp4        the stems as NI Stems, for DJ software
    POST   /api/jobs/{id}/mix             {"gains": {stem: gain}, "format": "wav"} -> the mix of the stems
    DELETE /api/jobs/{id}                 forget the job and remove its files

Every answer carries a Content-Security-Policy (no frames, scripts from the app only) and the
usual security headers. With a ``--host`` beyond this computer every request needs the token
that the printed URL carries (``?token=``; the page keeps it in a same-site cookie).
"""
from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import shutil
import socket
import threading
import urllib.parse
import webbrowser
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from convsep.errors import ConvSepError
from convsep.io.audio import AUDIO_SUFFIXES
from convsep.io.mixdown import MEDIA_TYPES, check_format
from convsep.serve.jobs import STEM_EXT, JobManager

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}   # the only files served
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
COPY_BLOCK = 1 << 20
NAME_LENGTH = 120
TOKEN_COOKIE = "convsep_token"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass
class ServeOptions:
    models: list[str | None] | None = None   # None: the bundled offline models, the default first
    max_upload_bytes: int = 200_000_000
    queue_size: int = 16
    workers: int = 1
    threads: int | None = None
    keep_seconds: float = 3600.0
    root: Path | None = None          # the jobs' folder (default: a new temporary folder)
    token: str | None = None          # required on every request when set (a non-loopback --host)


class UploadTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether or not they declare
    their length (the declared length is checked before anything is read)."""

    def __init__(self, app: ASGIApp, limit: int, shown: int | None = None):
        self.app, self.limit = app, limit
        self.shown = shown or limit       # the limit users set (the body may exceed it by its framing)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(self.shown)(scope, receive, send)
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
            await _too_large(self.shown)(scope, receive, send)


class HostCheck:
    """Refuses requests whose ``Host`` is not one of ``hosts`` (400, as JSON)."""

    def __init__(self, app: ASGIApp, hosts: list[str]):
        self.app, self.hosts = app, set(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.hosts:
                response = JSONResponse({"error": "invalid Host header (this server answers to localhost only)"},
                                        status_code=400, headers=SECURITY_HEADERS)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"file too large: the limit is {megabytes(limit)}"}, status_code=413,
                        headers=SECURITY_HEADERS)


def megabytes(size: int) -> str:
    """1_000_000 -> "1 MB", 1_500_000 -> "1.5 MB" (as the page shows the limit)."""
    return f"{size / 1e6:.1f}".rstrip("0").rstrip(".") + " MB"


def display_name(filename: str | None) -> str:
    """An upload's file name for display: no folders, no control characters, at most
    ``NAME_LENGTH`` characters with its extension kept. Browsers send ``"`` as ``%22`` (and
    CR, LF as ``%0D``, ``%0A``); those come back. A backslash is an ordinary character of a
    name (a browser sends no folders), so only ``/`` separates folders."""
    name = re.sub(r"%(22|0D|0A)", lambda m: urllib.parse.unquote(m.group(0)), filename or "", flags=re.I)
    name = name.split("/")[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().lstrip(".")
    if len(name) > NAME_LENGTH:
        match = re.search(r"(\.[A-Za-z0-9]{1,5})$", name)
        suffix = match.group(1) if match else ""
        name = name[: NAME_LENGTH - len(suffix) - 1].rstrip() + "\u2026" + suffix
    return name or "upload"


def audio_suffix(filename: str) -> str:
    """The upload's (checked) audio extension, e.g. ".mp3"; ConvSepError otherwise."""
    match = re.search(r"(\.[A-Za-z0-9]{1,5})$", filename)
    suffix = match.group(1).lower() if match else ""
    if suffix not in AUDIO_SUFFIXES:
        raise ConvSepError(f"not an audio file type convsep reads "
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

    # No interactive docs: they would load scripts from a CDN on the app's origin.
    app = FastAPI(title="convsep", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = "not found"
        elif exc.status_code == 405:
            detail = f"method {request.method} is not allowed here"
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:3]:
            where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
            problems.append(f"{where or 'request'}: {str(error.get('msg', 'invalid')).lower()}")
        return JSONResponse({"error": "; ".join(problems) or "invalid request"}, status_code=400)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        # a page from another site may not create or delete jobs (scripts send no Origin)
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin and origin.split("://", 1)[-1] != request.headers.get("host"):
            response: Any = JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        elif options.token and not _has_token(request, options.token):
            response = JSONResponse({"error": "this server needs the token of the URL it printed (?token=...)"},
                                    status_code=401)
        else:
            response = await call_next(request)
            if options.token and request.query_params.get("token") == options.token:
                response.set_cookie(TOKEN_COOKIE, options.token, httponly=True, samesite="strict")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def manager(request: Request) -> JobManager:
        return request.app.state.jobs

    def job_or_404(request: Request, job_id: str):
        job = manager(request).get(job_id)
        if job is None:
            raise _error(404, "no such job (it may have expired)")
        return job

    def format_or_400(fmt: str) -> str:
        try:
            return check_format(fmt)
        except ConvSepError as exc:
            raise _error(400, str(exc))

    @app.get("/", include_in_schema=False)
    async def index(request: Request):
        if options.token and request.query_params.get("token"):
            response = RedirectResponse("/", status_code=303)     # the token leaves the address bar
            response.set_cookie(TOKEN_COOKIE, options.token, httponly=True, samesite="strict")
            return response
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
        try:
            for card in jobs.cards():
                models.append({**card, "sources": list(jobs.separator(card["name"]).sources)})
        except ConvSepError as exc:
            raise _error(500, str(exc))
        return {"models": models, "max_upload_bytes": options.max_upload_bytes,
                "formats": sorted(s.lstrip(".") for s in AUDIO_SUFFIXES), "downloads": ["wav", "flac", "mp3"]}

    @app.get("/api/models")
    def list_models(request: Request) -> dict:
        """The model choices with their quality on the real validation set and their speed."""
        jobs = manager(request)
        try:
            cards = jobs.cards()
        except ConvSepError as exc:
            raise _error(500, str(exc))
        return {"models": cards}

    @app.post("/api/jobs", status_code=201)
    def create_job(request: Request, file: UploadFile = File(...), model: str | None = Form(None),
                   stems: str | None = Form(None), two_stems: str | None = Form(None)) -> dict:
        jobs = manager(request)
        filename = display_name(file.filename)
        stem_list = [s.strip() for s in stems.split(",") if s.strip()] if stems else None
        try:
            suffix = audio_suffix(_full_name(file.filename))
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
                        raise _error(413, f"file too large: the limit is {megabytes(options.max_upload_bytes)}")
                    out.write(block)
            if size == 0:
                raise _error(400, "the file is empty")
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
        manager(request).jobs()           # brings queue positions up to date
        return job_or_404(request, job_id).public()

    @app.delete("/api/jobs/{job_id}")
    def delete_job(request: Request, job_id: str) -> dict:
        if not manager(request).delete(job_id):
            raise _error(404, "no such job (it may have expired)")
        return {"deleted": job_id}

    # Conversions, zips and mixes are built in the thread pool that runs these (plain def)
    # handlers, under the job's own lock: other requests are answered meanwhile.
    @app.get("/api/jobs/{job_id}/stems/{name}")
    def get_stem(request: Request, job_id: str, name: str, download: bool = False, format: str = STEM_EXT) -> FileResponse:
        job = job_or_404(request, job_id)
        fmt = format_or_400(format)
        try:
            path = manager(request).stem_file(job, name, fmt)
        except (ConvSepError, OSError) as exc:
            raise _error(500, f"could not convert the stem: {exc}")
        if path is None:
            raise _error(404, f"no stem {name[:40]!r} in this job" if job.status == "done"
                         else f"the job is {job.status}, its stems are not ready")
        return FileResponse(path, media_type=MEDIA_TYPES[fmt],
                            filename=f"{job.track} - {name}.{fmt}" if download else None,
                            content_disposition_type="attachment" if download else "inline")

    @app.get("/api/jobs/{job_id}/zip")
    def get_zip(request: Request, job_id: str, format: str = STEM_EXT) -> FileResponse:
        job = job_or_404(request, job_id)
        fmt = format_or_400(format)
        if job.status != "done":
            raise _error(404, f"the job is {job.status}, its stems are not ready")
        try:
            path = manager(request).zip_path(job, fmt)
        except (ConvSepError, OSError) as exc:
            raise _error(500, f"could not build the zip: {exc}")
        suffix = "" if fmt == STEM_EXT else f" ({fmt})"
        return FileResponse(path, media_type="application/zip", filename=f"{job.track} - stems{suffix}.zip")

    @app.get("/api/jobs/{job_id}/stem.mp4")
    def get_stem_mp4(request: Request, job_id: str) -> FileResponse:
        job = job_or_404(request, job_id)
        if job.status != "done":
            raise _error(404, f"the job is {job.status}, its stems are not ready")
        try:
            path = manager(request).stem_mp4_path(job)
        except ConvSepError as exc:
            raise _error(400 if "needs the four stems" in str(exc) else 500, str(exc))
        return FileResponse(path, media_type="video/mp4", filename=f"{job.track}.stem.mp4")

    @app.post("/api/jobs/{job_id}/mix")
    def post_mix(request: Request, job_id: str, body: dict = Body(...)) -> FileResponse:
        job = job_or_404(request, job_id)
        if job.status != "done":
            raise _error(404, f"the job is {job.status}, its stems are not ready")
        gains, fmt = body.get("gains", {}), body.get("format", STEM_EXT)
        if not isinstance(gains, dict) or not isinstance(fmt, str):
            raise _error(400, 'expected {"gains": {"vocals": 0.0, ...}, "format": "wav"}')
        fmt = format_or_400(fmt)
        try:
            path = manager(request).mix_path(job, gains, fmt)
        except ConvSepError as exc:
            raise _error(400, str(exc))
        except OSError:             # removed meanwhile
            raise _error(404, "no such job (it may have expired)")
        return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"{job.track} - mix.{fmt}",
                            background=BackgroundTask(path.unlink, missing_ok=True))

    app.add_middleware(BodyLimit, limit=options.max_upload_bytes + 1_000_000,    # + multipart framing
                       shown=options.max_upload_bytes)
    if allowed_hosts:
        app.add_middleware(HostCheck, hosts=allowed_hosts)
    return app


def _full_name(filename: str | None) -> str:
    """The upload's name as sent, less its folders: its extension is checked on this, before
    the name is shortened for display."""
    return (filename or "").replace("\\", "/").split("/")[-1].strip()


def _has_token(request: Request, token: str) -> bool:
    sent = (request.query_params.get("token") or request.headers.get("x-convsep-token")
            or request.cookies.get(TOKEN_COOKIE) or "")
    return hmac.compare_digest(sent.encode(), token.encode())


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
    local = host in LOOPBACK
    # On localhost, refuse other Host names too (a web page cannot reach the app by DNS rebinding).
    # Beyond it, every request needs a random token, which the printed URL carries.
    allowed = ["127.0.0.1", "localhost", "[::1]", "::1"] if local else None
    if not local and not options.token:
        options.token = secrets.token_urlsafe(18)
    app = create_app(options, allowed_hosts=allowed)
    wildcard = host in ("0.0.0.0", "::")
    shown = "127.0.0.1" if wildcard else host
    query = f"?token={options.token}" if options.token else ""
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/{query}"
    if options.token:
        print(f"convsep serve: warning: listening on {host}, beyond this computer: anyone on the network "
              "who has the URL with its token can use the app", flush=True)
    print(f"convsep serve: {url}  (Ctrl+C to stop)", flush=True)
    if wildcard:
        print(f"convsep serve: from other computers: http://{socket.gethostname()}:{port}/{query}", flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3, http=half_open_protocol(),
                            timeout_keep_alive=5, h11_max_incomplete_event_size=32 * 1024)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0


REQUEST_IDLE_SECONDS = 30.0


def half_open_protocol(idle: float = REQUEST_IDLE_SECONDS) -> type:
    """uvicorn's h11 protocol, closing a connection whose request stays incomplete (half-sent
    headers or body) with no byte for ``idle`` seconds. uvicorn times out idle keep-alive
    connections, not these."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HalfOpenTimeout(H11Protocol):
        _idle_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:      # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._arm()

        def connection_lost(self, exc) -> None:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            self._idle_timer = self.loop.call_later(idle, self._expire)

        def _expire(self) -> None:
            self._idle_timer = None
            state = self.conn.their_state
            waiting = state is h11.SEND_BODY or (state is h11.IDLE and bool(self.conn.trailing_data[0]))
            if waiting and self.flow.read_paused:      # we stopped reading, not the client
                self._arm()
            elif waiting or (state is h11.IDLE and self.cycle is None):
                self.transport.close()      # half-sent, or connected and never spoke
            elif state is not h11.CLOSED and not self.transport.is_closing():
                self._arm()

    return HalfOpenTimeout
