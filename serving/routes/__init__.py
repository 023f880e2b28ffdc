"""The API's routers, one file per resource; `serving.app` includes them."""
