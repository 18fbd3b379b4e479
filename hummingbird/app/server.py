"""The web server of ``hummingbird label``: the page (``static/``) and the HTTP API it uses, on Starlette + uvicorn.

Every request needs the token: ``?token=T``, ``Authorization: Bearer T``, or the cookie the page's first
load sets; else 401. Photos are looked up by name in the folder's listing (no path is ever joined from a
request), request bodies are bounded, and the server binds 127.0.0.1 unless told otherwise.

API (JSON unless said): ``GET /api/images`` → ``[{"name", "width", "height", "status", ...}]``;
``GET /api/images/{name}`` → the photo; ``GET /api/thumbnails/{name}`` → JPEG;
``GET|PUT /api/annotations/{name}`` (index PNG; GET ``?format=raw``: bytes, 255 = unlabelled; PUT → ``{"version", ...}``, ``If-Match`` or
``?version=``: 409 when stale); ``GET /api/predictions/{name}`` → index PNG (409 before anything is annotated);
``GET /api/confidence/{name}`` → grayscale PNG; ``GET /api/neighbours/{name}?x=&y=&k=``;
``GET|PUT /api/classes``; ``GET /api/status``; ``POST /api/export`` ``{"dir": PATH}`` → ``{"data_root", "bank", ...}``.
"""

from __future__ import annotations

import io
import json
import secrets
import sys
import threading
from http.cookies import SimpleCookie
from importlib import resources
from urllib.parse import parse_qs

from hummingbird.errors import HummingbirdError

BROWSER_IMAGES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # served as stored; others converted to PNG
MAX_BODY = 32 << 20  # bytes of one request body (an index PNG of a 6000x4000 photo is far smaller)
COOKIE = "hummingbird_token"
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}


class TokenGuard:
    """ASGI middleware: 401 unless the request carries the token (query, bearer header or cookie)."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    def _given(self, scope) -> list[str]:
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        for key, value in scope.get("headers", []):
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                given.append(value[7:].decode("latin-1").strip())
            elif key == b"cookie":
                morsel = SimpleCookie(value.decode("latin-1")).get(COOKIE)
                if morsel is not None:
                    given.append(morsel.value)
        return given

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not any(secrets.compare_digest(g.encode(), self.token.encode())
                                               for g in self._given(scope)):
            from starlette.responses import JSONResponse

            response = JSONResponse({"error": "missing or wrong token: open the URL hummingbird label printed "
                                              "(…/?token=…) or send Authorization: Bearer <token>"}, 401)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _static(name: str) -> bytes:
    return resources.files("hummingbird.app").joinpath("static", name).read_bytes()


def create_app(labeller, token: str):
    """The ASGI application serving ``labeller`` (a :class:`hummingbird.app.session.Labeller`) behind ``token``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    from hummingbird.app.indexpng import BadAnnotation, encode_index_png
    from hummingbird.app.session import NothingAnnotated
    from hummingbird.app.state import StaleVersion

    thumbnails: dict[str, bytes] = {}

    def error(status: int, message: str, **extra) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status)

    def photo(request: Request) -> str:
        name = request.path_params["name"]
        if name not in labeller.photos:
            raise LookupError(name)
        return name

    def guarded(handler):
        async def endpoint(request: Request):
            try:
                return await handler(request)
            except LookupError as exc:
                return error(404, f"no image {exc.args[0]!r} in {labeller.photos_dir} (only the folder's own "
                                  f"images are served)")
            except StaleVersion as exc:
                return error(409, str(exc), version=exc.current)
            except NothingAnnotated as exc:
                return error(409, str(exc))
            except (BadAnnotation, HummingbirdError) as exc:
                return error(400, str(exc))
            except BodyTooLarge as exc:
                return error(413, str(exc))
            except ValueError as exc:
                return error(400, f"bad request: {exc}")
        return endpoint

    async def body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise BodyTooLarge(f"request body of {length} bytes; at most {MAX_BODY} are accepted")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY:
                raise BodyTooLarge(f"request body over {MAX_BODY} bytes; refused")
            chunks.append(chunk)
        return b"".join(chunks)

    async def json_body(request: Request) -> dict:
        data = await body(request)
        try:
            payload = json.loads(data or b"null")
        except ValueError as exc:
            raise ValueError(f"body is not JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")  # noqa: TRY004 - answered as a 400
        return payload

    def png(data: bytes, **headers) -> Response:
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store", **headers})

    def raw(values, **headers) -> Response:
        """``(H, W)`` uint8 values as bytes, row by row (``?format=raw``: what the page reads)."""
        return Response(values.astype("uint8").tobytes(), media_type="application/octet-stream",
                        headers={"Cache-Control": "no-store", "X-Width": str(values.shape[1]),
                                 "X-Height": str(values.shape[0]), **headers})

    async def page(request: Request):
        response = Response(_static("index.html"), media_type=STATIC["index.html"],
                            headers={"Cache-Control": "no-store"})
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    async def static(request: Request):
        name = request.path_params["file"]
        if name not in STATIC:
            return error(404, f"no file {name!r}")
        return Response(_static(name), media_type=STATIC[name])

    async def images(request: Request):
        confidence = request.query_params.get("confidence") in ("1", "true")
        return JSONResponse(await run_in_threadpool(labeller.images, confidence))

    async def image_file(request: Request):
        name = photo(request)
        if labeller.photos[name].suffix.lower() in BROWSER_IMAGES:
            return FileResponse(labeller.photos[name])

        def converted():  # TIFF and the like: sent as PNG, upright, 8-bit RGB
            out = io.BytesIO()
            labeller.image(name).save(out, format="PNG")
            return out.getvalue()
        return Response(await run_in_threadpool(converted), media_type="image/png")

    async def thumbnail(request: Request):
        name = photo(request)
        if name not in thumbnails:
            def make():
                img = labeller.image(name)
                img.thumbnail((160, 160))
                out = io.BytesIO()
                img.save(out, format="JPEG", quality=85)
                return out.getvalue()
            thumbnails[name] = await run_in_threadpool(make)
        return Response(thumbnails[name], media_type="image/jpeg")

    async def get_annotation(request: Request):
        name = photo(request)
        values, version = await run_in_threadpool(labeller.annotation, name)
        if values is None:
            return error(404, f"{name}: not annotated yet", version=0)
        if request.query_params.get("format") == "raw":
            return raw(values, **{"X-Version": str(version)})
        return png(encode_index_png(values, labeller.palette), **{"X-Version": str(version), "ETag": f'"{version}"'})

    async def put_annotation(request: Request):
        name = photo(request)
        expected = request.headers.get("if-match") or request.query_params.get("version")
        expected = int(expected.strip('"')) if expected is not None else None
        data = await body(request)
        return JSONResponse(await run_in_threadpool(labeller.put_annotation, name, data, expected))

    async def prediction(request: Request):
        name = photo(request)
        labels, score, _ = await run_in_threadpool(labeller.prediction, name)
        if request.query_params.get("format") == "raw":
            return raw(labels, **{"X-Confidence": f"{score:.4f}"})
        return png(encode_index_png(labels, labeller.palette), **{"X-Confidence": f"{score:.4f}",
                                                                  "X-Memory-Version": str(labeller.memory_version)})

    async def confidence(request: Request):
        name = photo(request)
        _, score, values = await run_in_threadpool(labeller.prediction, name)
        return png(encode_index_png(values), **{"X-Confidence": f"{score:.4f}"})

    async def neighbours(request: Request):
        name = photo(request)
        q = request.query_params
        try:
            x, y, k = float(q["x"]), float(q["y"]), int(q.get("k", 8))
        except (KeyError, ValueError):
            raise ValueError("give x=, y= (pixels of the image) and optionally k= (neighbours, 1..64)") from None
        if not 1 <= k <= 64:
            raise ValueError(f"k={k}: give 1..64 neighbours")
        return JSONResponse(await run_in_threadpool(labeller.neighbours, name, x, y, k))

    async def classes(request: Request):
        if request.method == "PUT":
            payload = await json_body(request)
            names = payload.get("names")
            if not isinstance(names, list):
                raise ValueError('give {"names": [...]}')
            return JSONResponse(await run_in_threadpool(labeller.set_classes, names, payload.get("colours")))
        return JSONResponse(labeller.classes())

    async def status(request: Request):
        bank = labeller.segmenter.bank
        return JSONResponse({"first_pass": dict(labeller.features.progress), "memory_rows": len(bank),
                             "annotated": labeller.annotated_count(), "memory_version": labeller.memory_version,
                             "input_size": labeller.segmenter.input_size, "classes": labeller.classes(),
                             "photos": str(labeller.photos_dir)})

    async def export(request: Request):
        payload = await json_body(request)
        if not isinstance(payload.get("dir"), str) or not payload["dir"]:
            raise ValueError('give {"dir": "/absolute/folder"}')
        return JSONResponse(await run_in_threadpool(labeller.export, payload["dir"]))

    routes = [
        Route("/", guarded(page)),
        Route("/static/{file}", guarded(static)),
        Route("/api/status", guarded(status)),
        Route("/api/images", guarded(images)),
        Route("/api/images/{name}", guarded(image_file)),
        Route("/api/thumbnails/{name}", guarded(thumbnail)),
        Route("/api/annotations/{name}", guarded(get_annotation), methods=["GET"]),
        Route("/api/annotations/{name}", guarded(put_annotation), methods=["PUT"]),
        Route("/api/predictions/{name}", guarded(prediction)),
        Route("/api/confidence/{name}", guarded(confidence)),
        Route("/api/neighbours/{name}", guarded(neighbours)),
        Route("/api/classes", guarded(classes), methods=["GET", "PUT"]),
        Route("/api/export", guarded(export), methods=["POST"]),
    ]
    return TokenGuard(Starlette(routes=routes), token)


class BodyTooLarge(Exception):
    """A request body beyond :data:`MAX_BODY`."""


def serve(labeller, host: str = "127.0.0.1", port: int = 0, token: str | None = None, ready=None) -> None:
    """Serve until interrupted; once listening, print the URL (one line on stdout) and call ``ready(url)``."""
    import socket

    import uvicorn

    token = token or secrets.token_urlsafe(24)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"hummingbird label: warning: listening on {host}: anyone who can reach this machine and has the "
              f"token can read the photos and change the labels", file=sys.stderr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        from hummingbird.errors import ConfigError

        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{bound}/?token={token}"
    server = uvicorn.Server(uvicorn.Config(create_app(labeller, token), log_level="warning", access_log=False,
                                           limit_concurrency=64, timeout_keep_alive=5, lifespan="off"))

    def announce():
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            print(url, flush=True)
            if ready is not None:
                ready(url)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        labeller.close()
