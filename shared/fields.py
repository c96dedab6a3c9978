"""The field types of the wire schemas: every request field is one of these, so a value that the
database or the JSON encoder cannot hold is refused with a 422 naming the field, never a 500.

- integers fit a signed 64-bit SQL integer (`Int64`); ids, steps and counts are also >= 0 (`Id`);
- text is encodable as UTF-8 (`Text`: a lone surrogate like "\\ud800" is refused) and bounded;
- metric values are finite (`Finite`: NaN and +-Infinity are refused);
- free-form JSON objects (run config, job info, task options) are bounded in encoded size.

The size limits are documented in docs/reliability.md; change them there too.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

MAX_NAME_CHARS = 200  # names, keys, worker ids, task and grader names
MAX_PATH_CHARS = 4096  # checkpoint paths, dataset references, model references (PATH_MAX)
MAX_SAMPLE_TEXT_CHARS = 200_000  # a prompt, a response, a gold answer
MAX_ERROR_CHARS = 20_000  # the longest failure text the ledger stores
MAX_JSON_BYTES = 256 * 1024  # a run config, a result's info, a spec's options (UTF-8 JSON)
MAX_METRICS = 1_000  # metric names in one result


def _encodable(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"not valid Unicode text ({e.reason} at character {e.start})") from None
    return text


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))
    except UnicodeEncodeError as e:
        raise ValueError(f"contains text that is not valid Unicode ({e.reason})") from None
    except (TypeError, ValueError) as e:  # circular: not JSON
        raise ValueError(f"not a JSON object: {e}") from None
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_JSON_BYTES} bytes")
    return value


Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Id = Annotated[int, Field(ge=0, le=INT64_MAX)]  # row ids, steps, attempts, indexes, counts
Text = Annotated[str, AfterValidator(_encodable)]
Name = Annotated[Text, Field(min_length=1, max_length=MAX_NAME_CHARS)]
PathText = Annotated[Text, Field(min_length=1, max_length=MAX_PATH_CHARS)]
SampleText = Annotated[Text, Field(max_length=MAX_SAMPLE_TEXT_CHARS)]
ErrorText = Annotated[Text, Field(max_length=MAX_ERROR_CHARS)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
Metrics = Annotated[dict[Name, Finite], Field(max_length=MAX_METRICS)]


def _finite_only(value: Any) -> Any:
    """Drop NaN/Infinity (and the nulls JSON turns them into): databases from before `Finite`
    may hold them; shown as missing rather than breaking every reader."""
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if isinstance(v, int | float) and math.isfinite(v)}


StoredMetrics = Annotated[dict[str, float], BeforeValidator(_finite_only)]  # read side of Metrics
