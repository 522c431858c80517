"""What every part of the OpenAPI document shares."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# Where a $ref finds a schema of the document's components.
REF = "#/components/schemas/"
