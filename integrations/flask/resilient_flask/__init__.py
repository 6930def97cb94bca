"""Flask integration of resilient (distribution ``resilient-flask``).

::

    from flask import Flask
    from resilient_flask import Resilient

    app = Flask(__name__)
    resilient = Resilient(app)  # reads app.config["RESILIENT_*"]

    @app.get("/search")
    @resilient.limit("5/minute")
    def search(): ...

The guide is ``docs/integrations/flask.md``.
"""

from __future__ import annotations

from resilient_flask._extension import Resilient
from resilient_flask._shutdown import close_all
from resilient_flask._state import ResilientState

__version__ = "0.1.0"

__all__ = ["Resilient", "ResilientState", "__version__", "close_all"]
