"""The files of the OHIF build, as radai serves them under ``/viewer/``.

``@ohif/app`` is published prebuilt for the site root: its ``index.html`` loads
``/app.bundle….js`` and sets ``window.PUBLIC_URL = "/"``, and webpack's runtime in the
app bundle and in each worker bundle loads further chunks, workers and WebAssembly codecs
from ``__webpack_require__.p = "/"``. Rebuilding OHIF for another public path needs its
whole monorepo and toolchain, so radai serves the published files and moves these few
absolute references under ``/viewer/`` as it serves them (:func:`rebase_index`,
:func:`rebase_bundle`, and :func:`rebase_stylesheet` for the fonts of its stylesheet);
the patched bytes are kept in memory after the first request.

Parts of the build radai does not use are not served (:data:`EXCLUDED`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Where the viewer lives on radai's web server (its router's ``routerBasename``).
BASE = "/viewer"

#: Top-level entries of the build that are never served: ONNX Runtime Web (136 MB, the
#: runtime of OHIF's in-browser AI segmentation tools, which radai replaces by its own
#: models), the slide microscopy viewer (radai reads no whole-slide images), the
#: service worker and its loader (it would cache patient images in the browser), OHIF's
#: own app-config.js (radai writes one, :mod:`radai.viewer.appconfig`), the Google and
#: OpenID Connect sign-in helpers (radai's session cookie authenticates the viewer),
#: and the hosting files of other web servers.
EXCLUDED = frozenset({
    "ort", "dicom-microscopy-viewer", "sw.js", "init-service-worker.js", "app-config.js",
    "google.js", "oidc-client.min.js", "silent-refresh.html", "_headers", "_redirects",
    "serve.json",
})

#: Media types by file suffix (set here rather than taken from the host's mime.types,
#: which may lack .wasm or .woff2; browsers refuse a module script or a streamed
#: WebAssembly module served with the wrong type).
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".jsonc": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".webapp": "application/x-web-app-manifest+json",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
}

#: webpack's public path as the published bundles set it, and as radai serves them.
_PUBLIC_PATH = b'__webpack_require__.p = "/";'
_REBASED_PUBLIC_PATH = f'__webpack_require__.p = "{BASE}/";'.encode()
#: Content-hashed file names (``2493.bundle.c4af70e46357151f.js``, ``0ddf166f7a343eda.wasm``)
#: never change content, so browsers may keep them.
_HASHED = re.compile(r"(^|\.)[0-9a-f]{16}\.[a-z0-9]+$")


class ViewerMissing(FileNotFoundError):
    """The OHIF build is not installed (scripts/npm-deps.sh fetches it)."""


def default_dist_dir() -> Path:
    """``node_modules/@ohif/app/dist`` of the checkout (radai.web.pages.node_modules_dir)."""
    from radai.web.pages import node_modules_dir

    return node_modules_dir() / "@ohif" / "app" / "dist"


def rebase_index(html: bytes) -> bytes:
    """OHIF's ``index.html`` for serving under :data:`BASE` without its service worker."""
    text = html.decode("utf-8")
    text = text.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{BASE}/"')
    text = re.sub(r'<script[^>]*init-service-worker\.js[^>]*></script>', "", text)
    # Root-relative references ("/x", not protocol-relative "//host/x") move under BASE.
    text = re.sub(r'\b(href|src)="/(?!/)', rf'\1="{BASE}/', text)
    return text.encode("utf-8")


def rebase_stylesheet(css: bytes) -> bytes | None:
    """A stylesheet with root-relative ``url(/…)`` references (fonts) moved under :data:`BASE`."""
    if b"url(/" not in css:
        return None
    return re.sub(rb"url\(/(?!/)", b"url(" + BASE.encode() + b"/", css)


def rebase_bundle(js: bytes) -> bytes | None:
    """A bundle with webpack's public path moved under :data:`BASE`; None if it sets none."""
    if _PUBLIC_PATH not in js:
        return None
    return js.replace(_PUBLIC_PATH, _REBASED_PUBLIC_PATH)


#: Files at the top of the build that may hold root-relative references.
_REBASE_BY_SUFFIX: dict[str, Callable[[bytes], bytes | None]] = {
    ".js": rebase_bundle, ".css": rebase_stylesheet}


@dataclass(frozen=True)
class ViewerFile:
    """What to answer for one path: a file on disk, or bytes rebased in memory."""

    media_type: str
    path: Path | None = None
    content: bytes | None = None
    #: Content-hashed names may be cached for a year; the rest is revalidated.
    immutable: bool = False


class OhifBuild:
    """The served view of one OHIF ``dist`` folder."""

    def __init__(self, dist_dir: Path) -> None:
        self.dist_dir = dist_dir.resolve()
        self._lock = threading.Lock()
        #: File name → rebased bytes, or None when the file needs no change.
        self._rebased: dict[str, bytes | None] = {}

    def check(self) -> None:
        """Raise :class:`ViewerMissing` unless the build is there."""
        if not (self.dist_dir / "index.html").is_file():
            raise ViewerMissing("the OHIF viewer is not installed (run scripts/npm-deps.sh)")

    def index(self) -> ViewerFile:
        """``index.html``, rebased (the answer to every route of the single-page app)."""
        content = self._rebased_bytes("index.html", rebase_index)
        return ViewerFile(MEDIA_TYPES[".html"], content=content)

    def resolve(self, relative: str) -> ViewerFile | None:
        """What to serve for ``/viewer/<relative>``; None for 404.

        Paths without a file suffix are routes of the single-page app (``viewer``,
        ``viewer/dicomweb`` …) and get ``index.html``; files of :data:`EXCLUDED` parts,
        unknown files and anything outside the build get None.
        """
        self.check()
        parts = PurePosixPath(relative).parts
        if any(p in ("..", ".") or p.startswith(".") for p in parts):
            return None
        if parts and parts[0] in EXCLUDED:
            return None
        if not parts or not PurePosixPath(relative).suffix:
            return self.index()
        if parts == ("index.html",):
            return self.index()
        path = (self.dist_dir / Path(*parts)).resolve()
        if not path.is_relative_to(self.dist_dir) or not path.is_file():
            return None
        media_type = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        immutable = bool(_HASHED.search(path.name))
        rebase = _REBASE_BY_SUFFIX.get(path.suffix) if len(parts) == 1 else None
        if rebase is not None:
            content = self._rebased_bytes(path.name, rebase)
            if content is not None:
                return ViewerFile(media_type, content=content, immutable=immutable)
        return ViewerFile(media_type, path=path, immutable=immutable)

    def _rebased_bytes(self, name: str, rebase: Callable[[bytes], bytes | None]) -> bytes | None:
        with self._lock:
            if name in self._rebased:
                return self._rebased[name]
        content = rebase((self.dist_dir / name).read_bytes())
        with self._lock:
            self._rebased[name] = content
        return content
