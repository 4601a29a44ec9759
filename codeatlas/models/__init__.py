"""Every ORM model, imported in one place so Alembic sees the whole schema."""

from codeatlas.db.base import Base
from codeatlas.models.auth import RefreshToken
from codeatlas.models.chat import Chat, ChatMessage
from codeatlas.models.chunk import CodeChunk
from codeatlas.models.code import CodeDocument, DocumentStatus, SearchHistory
from codeatlas.models.job import Job, JobStatus
from codeatlas.models.knowledge import KbEntry, KbEntryChunk
from codeatlas.models.project import (
    Project,
    ProjectInvitation,
    ProjectMembership,
    ProjectRole,
)
from codeatlas.models.user import User

__all__ = [
    "Base",
    "Chat",
    "ChatMessage",
    "CodeChunk",
    "CodeDocument",
    "DocumentStatus",
    "Job",
    "JobStatus",
    "KbEntry",
    "KbEntryChunk",
    "Project",
    "ProjectInvitation",
    "ProjectMembership",
    "ProjectRole",
    "RefreshToken",
    "SearchHistory",
    "User",
]
