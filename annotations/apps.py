from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "DDI annotations"

    def ready(self) -> None:
        from annotations import tokens  # noqa: F401  (connects the token revocation signals)
        from annotations.api import schema  # noqa: F401  (registers the token auth scheme)
