"""Content: writers (templates, or an OpenAI-compatible API), when a month's posts go out, and
composing a post's parts into a text every platform takes. The content worker's actors call
`generate_month` and `regenerate_post`; the API uses the same checks before it accepts a job.
"""

from herald_common.content.composing import (
    Parts,
    TextRules,
    compose,
    normalize_hashtag,
    parts_of,
    shorten,
)
from herald_common.content.editing import refusal, rewrite_post
from herald_common.content.generation import (
    Preferences,
    generate_month,
    month_bounds,
    plan_month,
    regenerate_post,
    topics_for,
)
from herald_common.content.scheduling import MonthFull, month_is_over, plan_times
from herald_common.content.writers import (
    Brief,
    MalformedAnswer,
    NoUsableAnswer,
    OpenAIWriter,
    TemplateWriter,
    Writer,
    WriterError,
    WriterRefused,
    WriterUnavailable,
    write_fitting,
    writer_from_settings,
)

__all__ = [
    "Brief",
    "MalformedAnswer",
    "MonthFull",
    "NoUsableAnswer",
    "OpenAIWriter",
    "Parts",
    "Preferences",
    "TemplateWriter",
    "TextRules",
    "Writer",
    "WriterError",
    "WriterRefused",
    "WriterUnavailable",
    "compose",
    "generate_month",
    "month_bounds",
    "month_is_over",
    "normalize_hashtag",
    "parts_of",
    "plan_month",
    "plan_times",
    "refusal",
    "regenerate_post",
    "rewrite_post",
    "shorten",
    "topics_for",
    "write_fitting",
    "writer_from_settings",
]
