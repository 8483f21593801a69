"""Web app URLs (server-rendered pages and HTMX fragments)."""

app_name = "annotations"

urlpatterns: list = []
