"""Domain errors: a stable code, a human detail, and the HTTP status the API maps them to.

The domain raises these and never an HTTP exception; one handler in ``rempart.api``
turns them into ``{"error": code, "detail": detail}``.
"""

from __future__ import annotations

__all__ = ["RempartError"]


class RempartError(Exception):
    code: str = "error"
    status: int = 400

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"
