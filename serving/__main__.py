"""`python -m serving`: the gateway as a deployment runs it (the image `onboard deploy` writes), every setting
from ONBOARD_* environment variables (serving/settings.py). A start-up failure is one line on stderr, exit 1."""

from __future__ import annotations

import logging
import sys


def main() -> int:
    from rag.errors import OnboardError
    from serving.app import run
    from serving.settings import ServeSettings

    try:
        settings = ServeSettings()
        if settings.log_format == "text":  # (json: uvicorn's log config sets up the root logger)
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
            for chatty in ("httpx", "httpcore", "chromadb"):  # a line per upstream request is noise
                logging.getLogger(chatty).setLevel(logging.WARNING)
        run(settings)
    except OnboardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
