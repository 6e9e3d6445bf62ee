"""qaportal: teleradiology second opinions and radiology quality assurance."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

PACKAGE_DIR = Path(__file__).resolve().parent


SOURCE_TREE = (PACKAGE_DIR.parent / "pyproject.toml").is_file()


def _template_folder() -> str:
    """Return the templates folder: the checkout's top level, or the installed copy."""
    if SOURCE_TREE:
        return str(PACKAGE_DIR.parent / "templates")
    return str(PACKAGE_DIR / "templates")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the portal: configuration, extensions, blueprints, CLI and hooks."""
    from qaportal import config as config_module
    from qaportal import hooks, navigation, ratelimit, templating
    from qaportal.extensions import csrf, db, login_manager, migrate

    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=_template_folder(),
        instance_path=_instance_path(config),
    )
    config_module.load(app, config)
    from qaportal.studies.receive import UploadRequest

    app.request_class = UploadRequest  # uploads received into files the store can adopt
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    if app.config["PROXY_FIX"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    from qaportal.admin import bp as admin_bp
    from qaportal.auditlog import bp as audit_bp
    from qaportal.auth import bp as auth_bp
    from qaportal.dicomweb import bp as dicomweb_bp
    from qaportal.exports import bp as exports_bp
    from qaportal.feeds import demo as _feeds_demo  # noqa: F401 - registers its demo step
    from qaportal.feeds.fhir_routes import bp as fhir_bp
    from qaportal.home import bp as home_bp
    from qaportal.marks import bp as marks_bp
    from qaportal.notifications import bp as notifications_bp
    from qaportal.ohif import bp as ohif_bp
    from qaportal.opinions import bp as opinions_bp
    from qaportal.qa import bp as qa_bp
    from qaportal.reports import bp as reports_bp
    from qaportal.reviews import bp as reviews_bp
    from qaportal.studies import bp as studies_bp

    for bp in (auth_bp, home_bp, admin_bp, audit_bp, studies_bp, notifications_bp,
               opinions_bp, reviews_bp, qa_bp, reports_bp, dicomweb_bp, fhir_bp, exports_bp,
               marks_bp, ohif_bp):
        app.register_blueprint(bp)

    from qaportal import request_session
    from qaportal.auth import tokens
    from qaportal.dicomweb import cors as dicomweb_cors

    tokens.init_app(app)  # Bearer authentication: the first hook, before require_login
    dicomweb_cors.init_app(app)  # CORS preflights before it (they carry no credentials)
    hooks.init_app(app)
    ratelimit.init_app(app)
    from qaportal.ohif import warm as ohif_warm

    ohif_warm.init_app(app)  # compress the viewer's first-open files once serving starts
    navigation.init_app(app)
    templating.init_app(app)
    request_session.init_app(app)  # last: its hook goes first (rows survive a view's commit)

    from qaportal.cli import register_commands

    register_commands(app)
    from qaportal.studies.deid import remove_leftover_zips

    remove_leftover_zips(app.config["UPLOAD_TMP"])  # from before downloads were unnamed
    # Set up the ORM's mappers now (a tenth of a second of CPU), not in the first request
    # each gunicorn worker serves, whatever it is.
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    if app.config["AUDIT_KEY_CHECK"]:
        from qaportal import audit_key

        audit_key.check_at_start(app)  # another server's key: refuse to start
    if app.config["GC_FREEZE"] and not app.testing:
        from qaportal import gc_settle

        gc_settle.freeze_start_up()
    return app


def _instance_path(config: dict[str, Any] | None) -> str | None:
    """INSTANCE_PATH given to create_app, else QAPORTAL_INSTANCE_PATH, else Flask's default."""
    given = (config or {}).get("INSTANCE_PATH") or os.environ.get("QAPORTAL_INSTANCE_PATH")
    return os.path.abspath(given) if given else None


def _migrations_dir() -> Path:
    return PACKAGE_DIR.parent / "migrations" if SOURCE_TREE else PACKAGE_DIR / "migrations"
