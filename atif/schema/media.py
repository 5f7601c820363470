"""The media types of ATIF content parts, apart from the models so that the rule pass of
:mod:`atif.schema.validate` reads them without building a pydantic model."""

from __future__ import annotations

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
AUDIO_MEDIA_TYPES = (
    "audio/wav",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/ogg",
    "audio/flac",
    "audio/webm",
    "audio/aiff",
)
# Spellings producers emit for the registered audio types (Gemini's audio/mp3 above all).
AUDIO_MEDIA_TYPE_ALIASES = {
    "audio/mp3": "audio/mpeg",
    "audio/mpga": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/x-aac": "audio/aac",
    "audio/x-flac": "audio/flac",
    "audio/x-aiff": "audio/aiff",
}


def normalize_audio_media_type(value: str) -> str:
    """Canonical spelling of an audio MIME type (``audio/mp3`` becomes ``audio/mpeg``)."""
    v = value.strip().lower()
    return AUDIO_MEDIA_TYPE_ALIASES.get(v, v)
