"""Flask extensions, created unbound and bound in create_app."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from qaportal import sqlite_journal  # noqa: F401 - SQLite files in WAL mode
from qaportal.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
