"""Serves the Swagger UI files from the swagger-ui-bundle package, so /docs needs no CDN."""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

DOCS_ASSETS_URL = "/docs-assets/"

bp = Blueprint("docs_assets", __name__)


@bp.get(f"{DOCS_ASSETS_URL}<path:filename>")
def asset(filename: str) -> Response:
    return send_from_directory(str(swagger_ui_path), filename, max_age=86400)
